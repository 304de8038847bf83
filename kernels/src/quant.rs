//! Weight ternarization from full precision.

/// BitNet b1.58 absmean ternarization: `s = mean|W|` (accumulated in f64, rounded to f32),
/// `t = clamp(round(W / s), -1, 1)` (round half away from zero). Returns the codes
/// `c = t + 1` and `s`. An all-zero input gives `s = 0` and all codes 1.
pub fn absmean_ternary(weights: &[f32]) -> (Vec<u8>, f32) {
    if weights.is_empty() {
        return (Vec::new(), 0.0);
    }
    let s = (weights.iter().map(|w| w.abs() as f64).sum::<f64>() / weights.len() as f64) as f32;
    let codes = weights
        .iter()
        .map(|&w| {
            if s == 0.0 {
                1
            } else {
                ((w / s).round().clamp(-1.0, 1.0) as i32 + 1) as u8
            }
        })
        .collect();
    (codes, s)
}
