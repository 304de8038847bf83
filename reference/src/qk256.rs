//! QK256 — `I2SQk256NoScale`, the row-padded kernel layout of I2_S codes
//! (formats.md, "QK256").
//!
//! Each row is `ceil(cols / 256)` blocks of 256 elements / 64 bytes, so the row stride is
//! `ceil(cols / 256) * 64` bytes. Inside a block, column `j` (`0..256`) lives in the
//! 128-element half `h = j / 128`, laid out exactly like an I2_S block: byte
//! `h * 32 + j % 32`, bit shift `6 - 2 * ((j % 128) / 32)`. Elements past `cols` are
//! padding, written as code 1 and never read into a result. No scale in the bytes: the
//! per-tensor scale is passed beside them.

/// Elements per QK256 block.
const BLOCK: usize = 256;
/// Bytes per QK256 block.
const BLOCK_BYTES: usize = 64;

/// Bytes per row: `ceil(cols / 256) * 64` (0 for `cols == 0`).
pub fn qk256_row_stride_bytes(cols: usize) -> usize {
    cols.div_ceil(BLOCK) * BLOCK_BYTES
}

fn check_bytes(qs: &[u8], rows: usize, cols: usize) {
    let stride = qk256_row_stride_bytes(cols);
    assert_eq!(
        qs.len(),
        rows * stride,
        "QK256: got {} bytes, expected rows * stride = {rows} * {stride} (cols = {cols})",
        qs.len()
    );
}

/// Byte offset inside a row and bit shift of column `col`.
fn locate(col: usize) -> (usize, u32) {
    let block = col / BLOCK;
    let j = col % BLOCK;
    let half = j / 128;
    let within = j % 128;
    let byte = block * BLOCK_BYTES + half * 32 + within % 32;
    let shift = 6 - 2 * (within / 32) as u32;
    (byte, shift)
}

/// The `rows * cols` codes (each `0..=3`), row-major, padding skipped.
///
/// # Panics
/// If `qs.len() != rows * qk256_row_stride_bytes(cols)`.
pub fn unpack_codes_qk256(qs: &[u8], rows: usize, cols: usize) -> Vec<u8> {
    check_bytes(qs, rows, cols);
    let stride = qk256_row_stride_bytes(cols);
    let mut codes = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for col in 0..cols {
            let (byte, shift) = locate(col);
            codes.push((qs[r * stride + byte] >> shift) & 3);
        }
    }
    codes
}

/// Packs `codes [rows, cols]` (each `0..=3`) into `rows * qk256_row_stride_bytes(cols)`
/// bytes, padding elements written as code 1.
///
/// # Panics
/// If `codes.len() != rows * cols` or a code is greater than 3.
pub fn pack_qk256(codes: &[u8], rows: usize, cols: usize) -> Vec<u8> {
    assert_eq!(
        codes.len(),
        rows * cols,
        "QK256: codes.len() != rows * cols = {rows} * {cols}"
    );
    let stride = qk256_row_stride_bytes(cols);
    let mut out = vec![0u8; rows * stride];
    for r in 0..rows {
        for col in 0..stride / BLOCK_BYTES * BLOCK {
            let c = if col < cols { codes[r * cols + col] } else { 1 };
            assert!(
                c <= 3,
                "QK256: code {c} at row {r}, col {col} does not fit in 2 bits"
            );
            let (byte, shift) = locate(col);
            out[r * stride + byte] |= c << shift;
        }
    }
    out
}

/// Weights `[rows, cols]`: `(c - 1) * scale` (exact in f32).
///
/// # Panics
/// If `qs.len() != rows * qk256_row_stride_bytes(cols)`.
pub fn dequantize_qk256(qs: &[u8], rows: usize, cols: usize, scale: f32) -> Vec<f32> {
    unpack_codes_qk256(qs, rows, cols)
        .into_iter()
        .map(|c| (f32::from(c) - 1.0) * scale)
        .collect()
}

/// FP32 GEMV/GEMM, same order as [`crate::gemv_f32_i2s`]: `y[t][r]` is the sequential f32
/// sum over `col = 0..cols` of `((c - 1) * scale) * x[t][col]`.
///
/// # Panics
/// If `qs.len() != rows * qk256_row_stride_bytes(cols)` or `x.len() != tokens * cols`.
pub fn gemv_f32_qk256(
    qs: &[u8],
    rows: usize,
    cols: usize,
    scale: f32,
    x: &[f32],
    tokens: usize,
) -> Vec<f32> {
    let w = dequantize_qk256(qs, rows, cols, scale);
    crate::dense::gemv_f32_dense(&w, rows, cols, x, tokens)
}

/// bitnet.cpp's int8-activation numerics (see [`crate::gemv_i8_i2s`]) on QK256 codes with
/// the per-tensor `scale` given: `y = ((Σ c·q) as f32 - (Σ q) as f32) / s * scale`.
///
/// # Panics
/// If `qs.len() != rows * qk256_row_stride_bytes(cols)` or `x.len() != tokens * cols`.
pub fn gemv_i8_qk256(
    qs: &[u8],
    rows: usize,
    cols: usize,
    scale: f32,
    x: &[f32],
    tokens: usize,
) -> Vec<f32> {
    let codes = unpack_codes_qk256(qs, rows, cols);
    crate::act::gemv_i8_codes(&codes, rows, cols, scale, x, tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stride() {
        assert_eq!(qk256_row_stride_bytes(0), 0);
        assert_eq!(qk256_row_stride_bytes(1), 64);
        assert_eq!(qk256_row_stride_bytes(256), 64);
        assert_eq!(qk256_row_stride_bytes(257), 128);
        assert_eq!(qk256_row_stride_bytes(2560), 640);
    }

    #[test]
    fn single_block_layout_and_padding() {
        // One row of 130 columns: one block, columns 130..256 padded with code 1.
        let mut codes = vec![1u8; 130];
        codes[0] = 2; // byte 0, bits 7:6
        codes[96] = 0; // byte 0, bits 1:0
        codes[128] = 2; // second half: byte 32, bits 7:6
        codes[129] = 0; // byte 33, bits 7:6
        let qs = pack_qk256(&codes, 1, 130);
        assert_eq!(qs.len(), 64);
        assert_eq!(qs[0], 0b10_01_01_00);
        assert_eq!(qs[1], 0b01_01_01_01);
        assert_eq!(qs[32], 0b10_01_01_01);
        assert_eq!(qs[33], 0b00_01_01_01);
        assert_eq!(qs[34], 0b01_01_01_01);
        assert_eq!(unpack_codes_qk256(&qs, 1, 130), codes);
    }

    #[test]
    fn round_trip_two_rows_two_blocks() {
        let (rows, cols) = (2, 300);
        let codes: Vec<u8> = (0..rows * cols)
            .map(|i| ((i * 7 + i / 5) % 3) as u8)
            .collect();
        let qs = pack_qk256(&codes, rows, cols);
        assert_eq!(qs.len(), rows * 128);
        assert_eq!(unpack_codes_qk256(&qs, rows, cols), codes);
        let w = dequantize_qk256(&qs, rows, cols, 2.0);
        assert!(
            w.iter()
                .zip(&codes)
                .all(|(&v, &c)| v == (f32::from(c) - 1.0) * 2.0)
        );
    }

    #[test]
    fn matches_i2s_when_cols_multiple_of_256() {
        let (rows, cols) = (3, 512);
        let codes: Vec<u8> = (0..rows * cols)
            .map(|i| ((i * 5 + i / 3) % 3) as u8)
            .collect();
        let i2s = crate::pack_i2s_codes(&codes, 1.0);
        assert_eq!(pack_qk256(&codes, rows, cols), &i2s[..rows * cols / 4]);
    }
}
