//! Scalar FP32 reference twin of the ternary (BitNet b1.58) weight formats, written straight
//! from `docs/formats.md`: plain loops, one module per format, no code shared with
//! `bitnet-kernels`. It is a test oracle: functions `assert!` on bad dimensions (each
//! documents it under `# Panics`).
//!
//! Conventions: a weight matrix has `rows` outputs and `cols` inputs, row-major; activations
//! `x [tokens, cols]` and results `y [tokens, rows]` are row-major. A ternary value `t` is
//! stored as the code `c = t + 1 ∈ {0, 1, 2}`; every decoder computes with `c - 1`, so a
//! stray code 3 (never written by any producer) acts as `+2`.
//!
//! Modules: [`i2s`] (GGUF type 36, bitnet.cpp), [`qk256`] (row-padded I2_S codes),
//! [`tq2_0`] (type 35), [`tq1_0`] (type 34), [`ternary`] (absmean ternarization),
//! [`act`] (bitnet.cpp int8 activations), [`q8k`] (llama.cpp Q8_K activations),
//! [`bounds`] (the derived error bound of the f32 products against this twin), [`testdata`]
//! (a deterministic generator for test inputs), [`block`] (the FP32 / int8 forward of one
//! BitNet transformer block, for the runner's graph).

pub mod act;
pub mod block;
pub mod bounds;
mod dense;
pub mod head_i8;
pub mod i2s;
pub mod q8k;
pub mod qk256;
pub mod ternary;
pub mod testdata;
pub mod tq1_0;
pub mod tq2_0;

pub use act::{ActI8, quantize_activations_i8};
pub use block::{
    BlockActivation, BlockConfig, BlockTrace, BlockWeights, ProjectionNumerics, TernaryWeight,
    block_forward_ref,
};
pub use head_i8::{HeadI8, gemv_head_i8, repack_head_i8};
pub use i2s::{
    dequantize_i2s, gemv_f32_i2s, gemv_i8_i2s, i2s_scale, i2s_tensor_bytes, pack_i2s_codes,
    quantize_i2s, unpack_codes_i2s,
};
pub use q8k::{BlockQ8K, quantize_row_q8_k};
pub use qk256::{
    dequantize_qk256, gemv_f32_qk256, gemv_i8_qk256, pack_qk256, qk256_row_stride_bytes,
    unpack_codes_qk256,
};
pub use ternary::quantize_absmean_ternary;
pub use tq1_0::{
    dequantize_tq1_0, gemv_f32_tq1_0, gemv_q8k_tq1_0, pack_tq1_0_codes, quantize_tq1_0,
    unpack_codes_tq1_0,
};
pub use tq2_0::{
    dequantize_tq2_0, gemv_f32_tq2_0, gemv_q8k_tq2_0, pack_tq2_0_codes, quantize_tq2_0,
    unpack_codes_tq2_0,
};
