//! TQ1_0 — GGUF type 34 (llama.cpp), 1.6875 bits per weight (formats.md, "TQ1_0").
//!
//! Each row is `cols / 256` blocks of 54 bytes: `qs[48]`, `qh[4]`, f16 `d` (little-endian).
//! Codes `c ∈ {0,1,2}` are base-3 digits, most significant first:
//! - `qs[m]`, `m < 32`: block elements `m + 32 n`, `n = 0..5`;
//! - `qs[32 + m]`, `m < 16`: elements `160 + 16 n + m`, `n = 0..5`;
//! - `qh[m]`, `m < 4`: elements `240 + 4 n + m`, `n = 0..4` (fifth digit 0);
//!
//! digit `n` having weight `3^(4 - n)`. A packed byte `b ∈ 0..=242` is stored as
//! `(b * 256 + 242) / 243`; digit `n` of a stored byte `s` decodes as
//! `c = (((s * 3^n) mod 256) * 3) >> 8`. Weight value `(c - 1) * d`.

use half::f16;

use crate::q8k::QK_K;
use crate::tq2_0::quantize_block_ternary;

/// Bytes per TQ1_0 block.
const BLOCK_BYTES: usize = 54;
/// Byte offset of the f16 scale inside a block.
const D_OFFSET: usize = 52;

fn check_dims(cols: usize) {
    assert!(
        cols.is_multiple_of(QK_K),
        "TQ1_0: cols {cols} is not a multiple of {QK_K}"
    );
}

fn check_bytes(packed: &[u8], rows: usize, cols: usize) {
    check_dims(cols);
    let expected = rows * cols / QK_K * BLOCK_BYTES;
    assert_eq!(
        packed.len(),
        expected,
        "TQ1_0: got {} bytes, expected {expected} for rows = {rows}, cols = {cols}",
        packed.len()
    );
}

/// Byte (0..52, `qs` then `qh`) and base-3 digit position `n` (0 = most significant,
/// weight `3^(4-n)`) of block element `j`.
fn locate(j: usize) -> (usize, u32) {
    if j < 160 {
        (j % 32, (j / 32) as u32)
    } else if j < 240 {
        let i = j - 160;
        (32 + i % 16, (i / 16) as u32)
    } else {
        let i = j - 240;
        (48 + i % 4, (i / 4) as u32)
    }
}

/// Code of digit `n` of stored byte `s`: `u = s * 3^n mod 256`, `c = (u * 3) >> 8`.
fn decode_digit(s: u8, n: u32) -> u8 {
    let u = s.wrapping_mul(3u8.pow(n));
    ((u16::from(u) * 3) >> 8) as u8
}

/// The `rows * cols` codes (each `0..=2`), row-major.
///
/// # Panics
/// If `cols % 256 != 0` or `packed.len() != rows * cols / 256 * 54`.
pub fn unpack_codes_tq1_0(packed: &[u8], rows: usize, cols: usize) -> Vec<u8> {
    check_bytes(packed, rows, cols);
    let mut codes = Vec::with_capacity(rows * cols);
    for block in packed.chunks_exact(BLOCK_BYTES) {
        for j in 0..QK_K {
            let (byte, n) = locate(j);
            codes.push(decode_digit(block[byte], n));
        }
    }
    codes
}

/// The per-block scales `d` (f16 → f32), one per 256 elements, in block order.
fn block_scales(packed: &[u8]) -> Vec<f32> {
    packed
        .chunks_exact(BLOCK_BYTES)
        .map(|b| f16::from_le_bytes([b[D_OFFSET], b[D_OFFSET + 1]]).to_f32())
        .collect()
}

/// Weights `[rows, cols]`: `(c - 1) as f32 * d` with `d` the block's f16 scale as f32
/// (as gguf-py's `dequantize`: a `-1` code with `d == 0` gives `-0.0`).
///
/// # Panics
/// If `cols % 256 != 0` or `packed.len() != rows * cols / 256 * 54`.
pub fn dequantize_tq1_0(packed: &[u8], rows: usize, cols: usize) -> Vec<f32> {
    let codes = unpack_codes_tq1_0(packed, rows, cols);
    let scales = block_scales(packed);
    codes
        .iter()
        .enumerate()
        .map(|(e, &c)| (f32::from(c) - 1.0) * scales[e / QK_K])
        .collect()
}

/// Packs `codes [rows, cols]` (each `0..=2`) and one scale per block
/// (`scales.len() == rows * cols / 256`, stored as f16, round to nearest even).
///
/// # Panics
/// If `cols % 256 != 0`, `codes.len() != rows * cols`, `scales.len() != rows * cols / 256`
/// or a code is greater than 2 (base 3 cannot hold it).
pub fn pack_tq1_0_codes(codes: &[u8], scales: &[f32], rows: usize, cols: usize) -> Vec<u8> {
    check_dims(cols);
    assert_eq!(
        codes.len(),
        rows * cols,
        "TQ1_0: codes.len() != rows * cols = {rows} * {cols}"
    );
    assert_eq!(
        scales.len(),
        rows * cols / QK_K,
        "TQ1_0: scales.len() != rows * cols / 256"
    );
    let mut out = Vec::with_capacity(scales.len() * BLOCK_BYTES);
    for (blk, &d) in codes.chunks_exact(QK_K).zip(scales) {
        // Base-3 value of each of the 52 bytes, before the 256/243 scaling.
        let mut value = [0u16; 52];
        for (j, &c) in blk.iter().enumerate() {
            assert!(c <= 2, "TQ1_0: code {c} is not a base-3 digit");
            let (byte, n) = locate(j);
            value[byte] += u16::from(c) * 3u16.pow(4 - n);
        }
        for v in value {
            // The formats.md formula as written (it is a ceiling division by 243).
            #[allow(clippy::manual_div_ceil)]
            out.push(((v * 256 + 242) / 243) as u8);
        }
        // Software rounding (half's `const` form, the same bits as `from_f32`): no F16C
        // instruction in the twin, so it also runs under Miri (which lacks `vcvtps2ph`).
        out.extend_from_slice(&f16::from_f32_const(d).to_le_bytes());
    }
    out
}

/// gguf-py's TQ1_0 quantizer (`gguf.quants.quantize(x, TQ1_0)`, same as llama.cpp's
/// `quantize_row_tq1_0_ref`): per block `d = max |x|`, `c = round_half_away(x * (1/d)) + 1`
/// (f32), `d` stored as f16 (nearest even) — the same rule as [`crate::quantize_tq2_0`].
///
/// # Panics
/// If `cols % 256 != 0` or `x.len() != rows * cols`.
pub fn quantize_tq1_0(x: &[f32], rows: usize, cols: usize) -> Vec<u8> {
    check_dims(cols);
    assert_eq!(
        x.len(),
        rows * cols,
        "TQ1_0: x.len() != rows * cols = {rows} * {cols}"
    );
    let mut codes = Vec::with_capacity(x.len());
    let mut scales = Vec::with_capacity(x.len() / QK_K);
    for blk in x.chunks_exact(QK_K) {
        let (c, d) = quantize_block_ternary(blk);
        codes.extend(c);
        scales.push(d);
    }
    pack_tq1_0_codes(&codes, &scales, rows, cols)
}

/// FP32 GEMV/GEMM: `y[t][r]` is the sequential f32 sum over `col = 0..cols` of
/// `((c - 1) * d_block) * x[t][col]` (weights exact; order as [`crate::gemv_f32_i2s`]).
///
/// # Panics
/// If the TQ1_0 dimensions are invalid or `x.len() != tokens * cols`.
pub fn gemv_f32_tq1_0(
    packed: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    tokens: usize,
) -> Vec<f32> {
    let w = dequantize_tq1_0(packed, rows, cols);
    crate::dense::gemv_f32_dense(&w, rows, cols, x, tokens)
}

/// llama.cpp's TQ1_0 × Q8_K product in the scalar `ggml_vec_dot_tq1_0_q8_K` order:
/// per token and row, `sumf = 0; for each block: sumf += (sumi as f32) * (d_x * d_w)` with
/// `sumi = Σ (c - 1) * q` exact in i32 and `d_w` the block's f16 scale as f32.
///
/// # Panics
/// If the TQ1_0 dimensions are invalid or `x.len() != tokens * cols`.
pub fn gemv_q8k_tq1_0(
    packed: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    tokens: usize,
) -> Vec<f32> {
    let codes = unpack_codes_tq1_0(packed, rows, cols);
    let scales = block_scales(packed);
    crate::q8k::gemv_q8k_codes(&codes, &scales, rows, cols, x, tokens)
}

#[cfg(test)]
#[allow(clippy::manual_div_ceil)]
mod tests {
    use super::*;

    #[test]
    fn digit_decoding_all_bytes() {
        // Every base-3 value b in 0..243 survives the 256/243 scaling for all five digits.
        for b in 0u16..243 {
            let s = ((b * 256 + 242) / 243) as u8;
            let mut rest = b;
            for n in (0..5).rev() {
                assert_eq!(
                    u16::from(decode_digit(s, n)),
                    rest % 3,
                    "b = {b}, digit {n}"
                );
                rest /= 3;
            }
        }
    }

    #[test]
    fn single_block_layout() {
        let mut codes = vec![0u8; 256];
        codes[0] = 2; // qs[0], digit 0 (weight 81)
        codes[128 + 3] = 1; // qs[3], digit 4 (weight 1)
        codes[160 + 16 + 2] = 2; // qs[34], digit 1 (weight 27)
        codes[240 + 12 + 1] = 1; // qh[1], digit 3 (weight 3)
        let packed = pack_tq1_0_codes(&codes, &[1.0], 1, 256);
        assert_eq!(packed.len(), 54);
        let stored = |b: u16| ((b * 256 + 242) / 243) as u8;
        assert_eq!(packed[0], stored(162));
        assert_eq!(packed[3], stored(1));
        assert_eq!(packed[34], stored(54));
        assert_eq!(packed[49], stored(3));
        assert_eq!(packed[1], 0);
        assert_eq!(&packed[52..], &[0x00, 0x3c]); // f16 1.0
        assert_eq!(unpack_codes_tq1_0(&packed, 1, 256), codes);
        let w = dequantize_tq1_0(&packed, 1, 256);
        assert_eq!((w[0], w[131], w[1]), (1.0, 0.0, -1.0));
    }

    #[test]
    fn round_trip() {
        let (rows, cols) = (2, 512);
        let codes: Vec<u8> = (0..rows * cols)
            .map(|i| ((i * 7 + i / 11) % 3) as u8)
            .collect();
        let scales = [0.25f32, 3.0, 0.5, 1.0]; // exact in f16
        let packed = pack_tq1_0_codes(&codes, &scales, rows, cols);
        assert_eq!(unpack_codes_tq1_0(&packed, rows, cols), codes);
        // Re-quantizing the exact dequantized values gives the same bytes back.
        assert_eq!(
            quantize_tq1_0(&dequantize_tq1_0(&packed, rows, cols), rows, cols),
            packed
        );
    }
}
