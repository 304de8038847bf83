//! Packed ternary (BitNet b1.58, 1.58-bit) weight formats and their kernels.
//!
//! - [`format`](mod@format): one struct per packed layout ([`I2s`], [`I2SQk256NoScale`], [`Tq2_0`],
//!   [`Tq1_0`]), each over owned or borrowed bytes, with validating constructors and one
//!   [`TernaryMatrix`] impl (unpack, f32 GEMM, int8-activation GEMM).
//! - [`act`]: activation quantizers (bitnet.cpp per-token int8, llama.cpp Q8_K).
//! - [`Isa`] / [`Exec`]: the instruction set (detected once, forcible per call) and threads.
//!
//! GEMV is GEMM with `tokens = 1`. Every wrong length is a [`KernelError`], never a panic.

pub mod act;
pub mod dense;
pub mod dense_i8;
pub mod error;
pub mod exec;
pub mod format;
pub mod isa;
pub mod quant;
mod scratch;
mod simd;
mod team;

pub use act::{Activations, ActsI8, ActsQ8K, BlockQ8K};
pub use error::{KernelError, Result};
pub use exec::Exec;
pub use format::i2s::I2s;
pub use format::qk256::I2SQk256NoScale;
pub use format::tq1_0::Tq1_0;
pub use format::tq2_0::Tq2_0;
pub use format::{Format, TernaryMatrix};
pub use isa::Isa;
pub use simd::prefetch_l2;

/// Test data shared by the unit tests.
#[cfg(test)]
mod testing {
    /// A 64-bit linear congruential generator (Knuth's MMIX constants): each call returns
    /// the next state. Reproducible test data without a dependency.
    pub(crate) fn lcg(seed: u64) -> impl FnMut() -> u64 {
        let mut state = seed;
        move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state
        }
    }
}
