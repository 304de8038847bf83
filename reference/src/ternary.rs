//! BitNet b1.58 absmean ternarization of a weight tensor.

/// Absmean ternarization: `s = mean |w|`, `t = clamp(round(w / s), -1, 1)`.
///
/// - `s`: `Σ |w|` accumulated in f64 in index order, divided by `w.len()` in f64, then
///   rounded once to f32.
/// - `t`: `w / s` divided in f32, rounded half away from zero (`f32::round`), clamped to
///   `[-1, 1]`.
/// - `s == 0` (all-zero or empty input): every `t` is 0 and the returned scale is `0.0`.
///
/// Returns `(t, s)`; `t[i] * s` approximates `w[i]`. NaN inputs are not supported.
pub fn quantize_absmean_ternary(weights: &[f32]) -> (Vec<i8>, f32) {
    let mut sum = 0.0f64;
    for &w in weights {
        sum += f64::from(w).abs();
    }
    let s = if weights.is_empty() {
        0.0
    } else {
        (sum / weights.len() as f64) as f32
    };
    if s == 0.0 {
        return (vec![0; weights.len()], 0.0);
    }
    let t = weights
        .iter()
        .map(|&w| (w / s).round().clamp(-1.0, 1.0) as i8)
        .collect();
    (t, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        // mean |w| = (2 + 1 + 0 + 1 + 0.5 + 1.5) / 6 = 1.
        let (t, s) = quantize_absmean_ternary(&[2.0, -1.0, 0.0, 1.0, 0.5, -1.5]);
        assert_eq!(s, 1.0);
        // 0.5 → 1 (half away from zero), -1.5 → -2 → clamped to -1.
        assert_eq!(t, vec![1, -1, 0, 1, 1, -1]);
    }

    #[test]
    fn zeros() {
        assert_eq!(quantize_absmean_ternary(&[0.0; 4]), (vec![0; 4], 0.0));
        assert_eq!(quantize_absmean_ternary(&[]), (vec![], 0.0));
    }
}
