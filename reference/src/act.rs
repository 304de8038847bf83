//! bitnet.cpp's per-token int8 activation quantization (`quantize_row_i8_s`) and the
//! int8-activation product of I2_S-style codes (formats.md, "Activations").

/// One token row quantized to int8 the bitnet.cpp way.
#[derive(Debug, Clone, PartialEq)]
pub struct ActI8 {
    /// `q[i] = clamp(round_half_even(x[i] * scale), -128, 127)`.
    pub q: Vec<i8>,
    /// `scale = (127 / max(1e-5, max |x|)) as f32`: quantized units per unit of `x`.
    pub scale: f32,
    /// `Σ q[i]`, exact.
    pub sum: i32,
}

/// bitnet.cpp's `quantize_row_i8_s` for one token row `x`.
///
/// - `max = max(1e-5, max_i |x[i]|)` in f64 (`1e-5` is the f64 literal);
/// - `scale = (127.0 / max) as f32` (division in f64, one rounding to f32);
/// - `q[i] = x[i] * scale` multiplied in f32, rounded to the nearest integer with ties to
///   even (ggml's `nearest_int`), clamped to `[-128, 127]`;
/// - `sum = Σ q[i]` in i32.
///
/// NaN inputs are not supported (the result is unspecified but does not panic).
pub fn quantize_activations_i8(x: &[f32]) -> ActI8 {
    let mut max = 1e-5f64;
    for &v in x {
        max = max.max(f64::from(v).abs());
    }
    let scale = (127.0 / max) as f32;
    let mut q = Vec::with_capacity(x.len());
    let mut sum = 0i32;
    for &v in x {
        let r = (v * scale).round_ties_even().clamp(-128.0, 127.0) as i32;
        sum += r;
        q.push(r as i8);
    }
    ActI8 { q, scale, sum }
}

/// The int8-activation GEMV on already-unpacked codes `[rows, cols]` (shared by I2_S and
/// QK256, whose numerics are the same): per token quantize `x` with
/// [`quantize_activations_i8`], per row `sumi = Σ c * q` exact in i32, then
/// `y = ((sumi as f32) - (sum as f32)) / scale_x * w_scale` in f32, in that order.
/// (The integer-to-f32 conversions are exact while `|Σ c·q| <= 2^24`, i.e. for
/// `cols <= 43690` even with stray code 3; the subtraction is then exact too.)
///
/// # Panics
/// If `codes.len() != rows * cols` or `x.len() != tokens * cols`.
pub(crate) fn gemv_i8_codes(
    codes: &[u8],
    rows: usize,
    cols: usize,
    w_scale: f32,
    x: &[f32],
    tokens: usize,
) -> Vec<f32> {
    assert_eq!(
        codes.len(),
        rows * cols,
        "codes: len != rows * cols = {rows} * {cols}"
    );
    assert_eq!(
        x.len(),
        tokens * cols,
        "x: len {} != tokens * cols = {tokens} * {cols}",
        x.len()
    );
    let mut y = Vec::with_capacity(tokens * rows);
    for t in 0..tokens {
        let act = quantize_activations_i8(&x[t * cols..(t + 1) * cols]);
        for r in 0..rows {
            let row = &codes[r * cols..(r + 1) * cols];
            let mut sumi = 0i32;
            for (&c, &q) in row.iter().zip(&act.q) {
                sumi += i32::from(c) * i32::from(q);
            }
            y.push((sumi as f32 - act.sum as f32) / act.scale * w_scale);
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_sum_and_ties() {
        // max |x| = 127/64 → scale = 64 exactly; 0.5/64, 1.5/64, 2.5/64 land on exact ties.
        let x = [
            127.0f32 / 64.0,
            -127.0 / 64.0,
            0.5 / 64.0,
            1.5 / 64.0,
            -2.5 / 64.0,
            0.0,
        ];
        let a = quantize_activations_i8(&x);
        assert_eq!(a.scale, 64.0);
        assert_eq!(a.q, vec![127, -127, 0, 2, -2, 0]);
        assert_eq!(a.sum, 0);
    }

    #[test]
    fn tiny_input_uses_floor() {
        let a = quantize_activations_i8(&[1e-7, -1e-7]);
        assert_eq!(a.scale, (127.0f64 / 1e-5) as f32);
        assert_eq!(a.q, vec![1, -1]);
    }
}
