//! TQ2_0 — GGUF type 35 (llama.cpp), 2.0625 bits per weight (formats.md, "TQ2_0").
//!
//! Each row is `cols / 256` blocks of 66 bytes: `qs[64]` then the f16 scale `d`
//! (little-endian). Block element `j = ch*128 + l*32 + k` (`ch ∈ 0..2`, `l ∈ 0..4`,
//! `k ∈ 0..32`) lives in `qs[ch*32 + k]` at bit shift `2*l` (group 0 in the low bits, the
//! reverse of I2_S). Weight value `(c - 1) * d`.

use half::f16;

use crate::q8k::QK_K;

/// Bytes per TQ2_0 block.
const BLOCK_BYTES: usize = 66;

fn check_dims(cols: usize) {
    assert!(
        cols.is_multiple_of(QK_K),
        "TQ2_0: cols {cols} is not a multiple of {QK_K}"
    );
}

fn check_bytes(packed: &[u8], rows: usize, cols: usize) {
    check_dims(cols);
    let expected = rows * cols / QK_K * BLOCK_BYTES;
    assert_eq!(
        packed.len(),
        expected,
        "TQ2_0: got {} bytes, expected {expected} for rows = {rows}, cols = {cols}",
        packed.len()
    );
}

/// `qs` byte and bit shift of block element `j`.
fn locate(j: usize) -> (usize, u32) {
    let ch = j / 128;
    let l = (j % 128) / 32;
    let k = j % 32;
    (ch * 32 + k, 2 * l as u32)
}

/// gguf-py's per-block ternary quantizer, shared by TQ2_0 and TQ1_0
/// (`TQ2_0.quantize_blocks` / `TQ1_0.quantize_blocks`), for one 256-element block:
/// - `d = max |x|` (f32);
/// - `id = 1 / d` in f32, or `0` when `d == 0`;
/// - `c = round_half_away(x * id) + 1`, the product in f32 (note: `x * (1/d)`, not `x / d`).
///
/// Returns `(codes, d)`; `d` is the full-precision f32 that the caller stores as f16
/// (round to nearest even).
pub(crate) fn quantize_block_ternary(x: &[f32]) -> (Vec<u8>, f32) {
    assert_eq!(x.len(), QK_K);
    let mut d = 0.0f32;
    for &v in x {
        d = d.max(v.abs());
    }
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    // For finite input `|x * id| <= 1 + 2^-23` already rounds into [-1, 1]; the clamp only
    // keeps the codes in 0..=2 where `1 / d` overflows (an f32-subnormal block max) or on NaN,
    // inputs outside gguf-py's well-defined domain.
    let codes = x
        .iter()
        .map(|&v| ((v * id).round().clamp(-1.0, 1.0) as i32 + 1) as u8)
        .collect();
    (codes, d)
}

/// The `rows * cols` codes (each `0..=3`), row-major.
///
/// # Panics
/// If `cols % 256 != 0` or `packed.len() != rows * cols / 256 * 66`.
pub fn unpack_codes_tq2_0(packed: &[u8], rows: usize, cols: usize) -> Vec<u8> {
    check_bytes(packed, rows, cols);
    let mut codes = Vec::with_capacity(rows * cols);
    for block in packed.chunks_exact(BLOCK_BYTES) {
        for j in 0..QK_K {
            let (byte, shift) = locate(j);
            codes.push((block[byte] >> shift) & 3);
        }
    }
    codes
}

/// The per-block scales `d` (f16 → f32), one per 256 elements, in block order.
fn block_scales(packed: &[u8]) -> Vec<f32> {
    packed
        .chunks_exact(BLOCK_BYTES)
        .map(|b| f16::from_le_bytes([b[64], b[65]]).to_f32())
        .collect()
}

/// Weights `[rows, cols]`: `(c - 1) as f32 * d` with `d` the block's f16 scale as f32
/// (as gguf-py's `dequantize`: a `-1` code with `d == 0` gives `-0.0`).
///
/// # Panics
/// If `cols % 256 != 0` or `packed.len() != rows * cols / 256 * 66`.
pub fn dequantize_tq2_0(packed: &[u8], rows: usize, cols: usize) -> Vec<f32> {
    let codes = unpack_codes_tq2_0(packed, rows, cols);
    let scales = block_scales(packed);
    codes
        .iter()
        .enumerate()
        .map(|(e, &c)| (f32::from(c) - 1.0) * scales[e / QK_K])
        .collect()
}

/// Packs `codes [rows, cols]` (each `0..=3`) and one scale per block
/// (`scales.len() == rows * cols / 256`, stored as f16, round to nearest even).
///
/// # Panics
/// If `cols % 256 != 0`, `codes.len() != rows * cols`, `scales.len() != rows * cols / 256`
/// or a code is greater than 3.
pub fn pack_tq2_0_codes(codes: &[u8], scales: &[f32], rows: usize, cols: usize) -> Vec<u8> {
    check_dims(cols);
    assert_eq!(
        codes.len(),
        rows * cols,
        "TQ2_0: codes.len() != rows * cols = {rows} * {cols}"
    );
    assert_eq!(
        scales.len(),
        rows * cols / QK_K,
        "TQ2_0: scales.len() != rows * cols / 256"
    );
    let mut out = Vec::with_capacity(scales.len() * BLOCK_BYTES);
    for (blk, &d) in codes.chunks_exact(QK_K).zip(scales) {
        let mut qs = [0u8; 64];
        for (j, &c) in blk.iter().enumerate() {
            assert!(c <= 3, "TQ2_0: code {c} does not fit in 2 bits");
            let (byte, shift) = locate(j);
            qs[byte] |= c << shift;
        }
        out.extend_from_slice(&qs);
        // Software rounding (half's `const` form, the same bits as `from_f32`): no F16C
        // instruction in the twin, so it also runs under Miri (which lacks `vcvtps2ph`).
        out.extend_from_slice(&f16::from_f32_const(d).to_le_bytes());
    }
    out
}

/// gguf-py's TQ2_0 quantizer (`gguf.quants.quantize(x, TQ2_0)`, same as llama.cpp's
/// `quantize_row_tq2_0_ref`): per block `d = max |x|`, `c = round_half_away(x * (1/d)) + 1`
/// (f32), `d` stored as f16 (nearest even). See `quantize_block_ternary` in this module.
///
/// # Panics
/// If `cols % 256 != 0` or `x.len() != rows * cols`.
pub fn quantize_tq2_0(x: &[f32], rows: usize, cols: usize) -> Vec<u8> {
    check_dims(cols);
    assert_eq!(
        x.len(),
        rows * cols,
        "TQ2_0: x.len() != rows * cols = {rows} * {cols}"
    );
    let mut codes = Vec::with_capacity(x.len());
    let mut scales = Vec::with_capacity(x.len() / QK_K);
    for blk in x.chunks_exact(QK_K) {
        let (c, d) = quantize_block_ternary(blk);
        codes.extend(c);
        scales.push(d);
    }
    pack_tq2_0_codes(&codes, &scales, rows, cols)
}

/// FP32 GEMV/GEMM: `y[t][r]` is the sequential f32 sum over `col = 0..cols` of
/// `((c - 1) * d_block) * x[t][col]` (weights exact; order as [`crate::gemv_f32_i2s`]).
///
/// # Panics
/// If the TQ2_0 dimensions are invalid or `x.len() != tokens * cols`.
pub fn gemv_f32_tq2_0(
    packed: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    tokens: usize,
) -> Vec<f32> {
    let w = dequantize_tq2_0(packed, rows, cols);
    crate::dense::gemv_f32_dense(&w, rows, cols, x, tokens)
}

/// llama.cpp's TQ2_0 × Q8_K product in the scalar `ggml_vec_dot_tq2_0_q8_K` order:
/// per token and row, `sumf = 0; for each block: sumf += (sumi as f32) * (d_x * d_w)` with
/// `sumi = Σ (c - 1) * q` exact in i32 and `d_w` the block's f16 scale as f32.
///
/// # Panics
/// If the TQ2_0 dimensions are invalid or `x.len() != tokens * cols`.
pub fn gemv_q8k_tq2_0(
    packed: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    tokens: usize,
) -> Vec<f32> {
    let codes = unpack_codes_tq2_0(packed, rows, cols);
    let scales = block_scales(packed);
    crate::q8k::gemv_q8k_codes(&codes, &scales, rows, cols, x, tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_block_layout() {
        let mut codes = vec![1u8; 256];
        codes[0] = 2; // qs[0], bits 1:0
        codes[32] = 0; // qs[0], bits 3:2
        codes[96] = 2; // qs[0], bits 7:6
        codes[128 + 64 + 5] = 0; // ch 1, l 2, k 5: qs[37], bits 5:4
        let packed = pack_tq2_0_codes(&codes, &[0.5], 1, 256);
        assert_eq!(packed.len(), 66);
        assert_eq!(packed[0], 0b10_01_00_10);
        assert_eq!(packed[1], 0b01_01_01_01);
        assert_eq!(packed[37], 0b01_00_01_01);
        assert_eq!(&packed[64..], &[0x00, 0x38]); // f16 0.5
        assert_eq!(unpack_codes_tq2_0(&packed, 1, 256), codes);
        let w = dequantize_tq2_0(&packed, 1, 256);
        assert_eq!((w[0], w[32], w[1]), (0.5, -0.5, 0.0));
    }

    #[test]
    fn quantizer_ties_and_round_trip() {
        let mut x = vec![0.0f32; 512];
        x[0] = 2.0;
        x[1] = 1.0; // 0.5 → 1 (half away from zero)
        x[2] = -1.0; // -0.5 → -1
        x[3] = 0.99; // 0.495 → 0
        let packed = quantize_tq2_0(&x, 1, 512);
        let codes = unpack_codes_tq2_0(&packed, 1, 512);
        assert_eq!(&codes[..4], &[2, 2, 0, 1]);
        assert!(codes[256..].iter().all(|&c| c == 1));
        assert_eq!(&packed[64..66], &f16::from_f32(2.0).to_le_bytes());
        assert_eq!(&packed[130..132], &[0, 0]);
        assert_eq!(pack_tq2_0_codes(&codes, &[2.0, 0.0], 1, 512), packed);
    }
}
