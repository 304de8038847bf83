//! I2_S — GGUF type 36, bitnet.cpp's whole-tensor 2-bit ternary format (formats.md, "I2_S").
//!
//! Layout of a tensor of `n = rows * cols` elements (`n % 128 == 0`):
//! - bytes `0 .. n/4`: codes in 128-element / 32-byte blocks. Element `e` lives in byte
//!   `(e / 128) * 32 + (e % 128) % 32` at bit shift `6 - 2 * ((e % 128) / 32)`.
//! - bytes `n/4 .. n/4 + 4`: the per-tensor `f32` scale (little-endian).
//! - bytes `n/4 + 4 .. n/4 + 32`: padding (written as zero).
//!
//! Code `c = t + 1` for a ternary value `t`; weight value `(c - 1) * scale`.

/// Elements per I2_S block.
const BLOCK: usize = 128;
/// Bytes per I2_S block of codes.
const BLOCK_BYTES: usize = 32;
/// Bytes after the codes: 4 for the f32 scale, 28 of padding.
const TAIL_BYTES: usize = 32;

fn check_n(n: usize) {
    assert!(
        n.is_multiple_of(BLOCK),
        "I2_S: element count {n} is not a multiple of {BLOCK}"
    );
}

fn check_tensor(packed: &[u8], n: usize) {
    check_n(n);
    assert_eq!(
        packed.len(),
        i2s_tensor_bytes(n),
        "I2_S: got {} bytes, expected n/4 + 32 = {} for n = {n}",
        packed.len(),
        i2s_tensor_bytes(n)
    );
}

/// Byte index and bit shift of flat element `e` inside the code bytes.
fn locate(e: usize) -> (usize, u32) {
    let block = e / BLOCK;
    let within = e % BLOCK;
    let byte = block * BLOCK_BYTES + within % 32;
    let shift = 6 - 2 * (within / 32) as u32;
    (byte, shift)
}

/// Size in bytes of an I2_S tensor of `n` elements: `n / 4` code bytes + 32 (scale and padding).
///
/// # Panics
/// If `n % 128 != 0`.
pub fn i2s_tensor_bytes(n: usize) -> usize {
    check_n(n);
    n / 4 + TAIL_BYTES
}

/// The `n` codes (each in `0..=3`) of an I2_S tensor, in flat row-major element order.
///
/// # Panics
/// If `n % 128 != 0` or `packed.len() != n / 4 + 32`.
pub fn unpack_codes_i2s(packed: &[u8], n: usize) -> Vec<u8> {
    check_tensor(packed, n);
    let mut codes = Vec::with_capacity(n);
    for e in 0..n {
        let (byte, shift) = locate(e);
        codes.push((packed[byte] >> shift) & 3);
    }
    codes
}

/// The per-tensor scale: the little-endian `f32` at byte offset `n / 4`.
///
/// # Panics
/// If `n % 128 != 0` or `packed.len() != n / 4 + 32`.
pub fn i2s_scale(packed: &[u8], n: usize) -> f32 {
    check_tensor(packed, n);
    let at = n / 4;
    f32::from_le_bytes([packed[at], packed[at + 1], packed[at + 2], packed[at + 3]])
}

/// Weights `[rows, cols]` row-major: `(c - 1) * scale` (exact in f32; a stray code 3 gives `2 * scale`).
///
/// # Panics
/// If `rows * cols % 128 != 0` or `packed.len() != rows * cols / 4 + 32`.
pub fn dequantize_i2s(packed: &[u8], rows: usize, cols: usize) -> Vec<f32> {
    let n = rows * cols;
    let scale = i2s_scale(packed, n);
    unpack_codes_i2s(packed, n)
        .into_iter()
        .map(|c| (f32::from(c) - 1.0) * scale)
        .collect()
}

/// Packs `codes` (flat row-major, each `0..=3`) and `scale` into I2_S tensor bytes
/// (`codes.len() / 4 + 32`; padding bytes zero).
///
/// # Panics
/// If `codes.len() % 128 != 0` or a code is greater than 3.
pub fn pack_i2s_codes(codes: &[u8], scale: f32) -> Vec<u8> {
    let n = codes.len();
    let mut out = vec![0u8; i2s_tensor_bytes(n)];
    for (e, &c) in codes.iter().enumerate() {
        assert!(
            c <= 3,
            "I2_S: code {c} at element {e} does not fit in 2 bits"
        );
        let (byte, shift) = locate(e);
        out[byte] |= c << shift;
    }
    out[n / 4..n / 4 + 4].copy_from_slice(&scale.to_le_bytes());
    out
}

/// bitnet.cpp's `quantize_i2_s` for ternary-valued input `weights [rows, cols]`.
///
/// `scale = max |w|` (taken in f64, stored as f32 — exact, as every `|w|` is an f32);
/// per element, with `a = |w|` in f64: `c = 1` if `a < 1e-6`, else `c = 2` if
/// `w * scale > 0` (f64) else `c = 0`. Non-ternary inputs are reduced to their sign.
///
/// # Panics
/// If `weights.len() != rows * cols` or `rows * cols % 128 != 0`.
pub fn quantize_i2s(weights: &[f32], rows: usize, cols: usize) -> Vec<u8> {
    let n = rows * cols;
    assert_eq!(
        weights.len(),
        n,
        "I2_S: weights.len() != rows * cols = {rows} * {cols}"
    );
    check_n(n);
    let mut max = 0.0f64;
    for &w in weights {
        max = max.max(f64::from(w).abs());
    }
    let codes: Vec<u8> = weights
        .iter()
        .map(|&w| {
            let w = f64::from(w);
            if w.abs() < 1e-6 {
                1
            } else if w * max > 0.0 {
                2
            } else {
                0
            }
        })
        .collect();
    pack_i2s_codes(&codes, max as f32)
}

/// FP32 GEMV/GEMM without activation quantization: `x [tokens, cols]` row-major,
/// returns `y [tokens, rows]` with `y[t][r] = Σ_col w[r][col] * x[t][col]`, where
/// `w = (c - 1) * scale` (exact). Order: one f32 accumulator starting at `0.0`,
/// `acc += w * x` for `col = 0, 1, …, cols - 1` (one rounding for the product, one for
/// the sum; no FMA).
///
/// # Panics
/// If the I2_S dimensions are invalid (see [`dequantize_i2s`]) or `x.len() != tokens * cols`.
pub fn gemv_f32_i2s(packed: &[u8], rows: usize, cols: usize, x: &[f32], tokens: usize) -> Vec<f32> {
    let w = dequantize_i2s(packed, rows, cols);
    crate::dense::gemv_f32_dense(&w, rows, cols, x, tokens)
}

/// bitnet.cpp's int8-activation GEMV/GEMM (`ggml_mul_mat` with an I2_S weight):
/// `x [tokens, cols]` f32 in, `y [tokens, rows]` out.
///
/// Per token, [`crate::quantize_activations_i8`] gives `q`, `s`, `Σq`; per row the exact
/// integer `sumi = Σ_col c * q` (i32, `c` the raw code), then in f32:
/// `y = ((sumi as f32) - (Σq as f32)) / s * scale` (subtract, divide, multiply, each
/// rounded to f32 in that order).
///
/// # Panics
/// If the I2_S dimensions are invalid (see [`dequantize_i2s`]) or `x.len() != tokens * cols`.
pub fn gemv_i8_i2s(packed: &[u8], rows: usize, cols: usize, x: &[f32], tokens: usize) -> Vec<f32> {
    let n = rows * cols;
    let scale = i2s_scale(packed, n);
    let codes = unpack_codes_i2s(packed, n);
    crate::act::gemv_i8_codes(&codes, rows, cols, scale, x, tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_block_layout() {
        // Element g, g+32, g+64, g+96 share byte g, in bits 7:6, 5:4, 3:2, 1:0.
        let mut codes = vec![1u8; 128];
        codes[0] = 2; // byte 0, bits 7:6
        codes[32] = 0; // byte 0, bits 5:4
        codes[64] = 2; // byte 0, bits 3:2
        codes[96] = 1; // byte 0, bits 1:0
        codes[31] = 0; // byte 31, bits 7:6
        codes[127] = 2; // byte 31, bits 1:0
        let packed = pack_i2s_codes(&codes, 0.5);
        assert_eq!(packed.len(), 64);
        assert_eq!(packed[0], 0b10_00_10_01);
        assert_eq!(packed[1], 0b01_01_01_01);
        assert_eq!(packed[31], 0b00_01_01_10);
        assert_eq!(&packed[32..36], &0.5f32.to_le_bytes());
        assert!(packed[36..].iter().all(|&b| b == 0));
        assert_eq!(unpack_codes_i2s(&packed, 128), codes);
        let w = dequantize_i2s(&packed, 1, 128);
        assert_eq!((w[0], w[32], w[96]), (0.5, -0.5, 0.0));
    }

    #[test]
    fn second_block_offset() {
        let mut codes = vec![1u8; 256];
        codes[128 + 33] = 2; // block 1, byte 32 + 1, bits 5:4
        let packed = pack_i2s_codes(&codes, 1.0);
        assert_eq!(packed[33], 0b01_10_01_01);
        assert_eq!(unpack_codes_i2s(&packed, 256), codes);
    }

    #[test]
    fn quantize_rule_and_round_trip() {
        let s = 0.75f32;
        let w: Vec<f32> = (0..256).map(|i| [s, 0.0, -s, 5e-7][i % 4]).collect();
        let packed = quantize_i2s(&w, 2, 128);
        assert_eq!(i2s_scale(&packed, 256), s);
        let codes = unpack_codes_i2s(&packed, 256);
        assert_eq!(&codes[..4], &[2, 1, 0, 1]);
        let back = dequantize_i2s(&packed, 2, 128);
        for (i, (&a, &b)) in w.iter().zip(&back).enumerate() {
            let expect = if a.abs() < 1e-6 { 0.0 } else { a };
            assert_eq!(expect, b, "element {i}");
        }
        assert_eq!(pack_i2s_codes(&codes, s), packed);
    }
}
