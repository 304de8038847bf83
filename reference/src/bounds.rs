//! Derived error bounds for the f32 paths. Integer paths have no bound: they are bit-exact.
//!
//! Both twins compute `S = Σ_i w_i · x_i` over `n` terms where `w_i = (c_i − 1)·scale` is
//! exact in f32 (a multiplication by −1, 0, 1 or 2). With unit roundoff `u = 2⁻²⁴` and
//! `γ_k = k·u / (1 − k·u)` (Higham, *Accuracy and Stability*, §3.1):
//!
//! - the kernels multiply-add in any order (lanes, FMA or not): `|k − S| ≤ γ_n · Σ|w_i x_i|`;
//! - the reference rounds each product `((c−1)·x)·scale` once (`(c−1)·x` is exact) and then
//!   adds sequentially: `|r − S| ≤ u·Σ|w x| + γ_{n−1}(1 + u)·Σ|w x| ≤ γ_{n+1} · Σ|w_i x_i|`;
//!
//! so `|k − r| ≤ (γ_n + γ_{n+1}) · Σ|w_i x_i| ≤ 2·γ_{n+1} · Σ|w_i x_i|`. Products that land
//! in the subnormal range carry an absolute error of at most `η = 2⁻¹⁵⁰` each; adding
//! `2·n·η` covers them. The magnitudes `Σ|w_i x_i|` are computed in f64 from the data.

/// `γ_k` for f32.
pub fn gamma(k: usize) -> f64 {
    let u = f64::from(f32::EPSILON) / 2.0;
    let ku = k as f64 * u;
    ku / (1.0 - ku)
}

/// The bound `2·γ_{n+1}·Σ|w_i x_i| + 2·n·η` on `|kernel − reference|` for one output.
pub fn dot_bound(w: &[f32], x: &[f32]) -> f64 {
    let n = w.len();
    let mag: f64 = w
        .iter()
        .zip(x)
        .map(|(&a, &b)| (f64::from(a) * f64::from(b)).abs())
        .sum();
    let eta = 2f64.powi(-150);
    2.0 * gamma(n + 1) * mag + 2.0 * n as f64 * eta
}

/// Checks every output of an f32 GEMM `[tokens, rows]` against the bound, given the dequantized
/// weights `[rows, cols]` and activations `[tokens, cols]`. Returns the worst ratio
/// `|k − r| / bound` (≤ 1 when the check passes).
pub fn check_gemm_f32(
    kernel: &[f32],
    reference: &[f32],
    w: &[f32],
    x: &[f32],
    rows: usize,
    cols: usize,
    tokens: usize,
) -> Result<f64, String> {
    let mut worst = 0f64;
    for t in 0..tokens {
        for r in 0..rows {
            let (k, rf) = (kernel[t * rows + r], reference[t * rows + r]);
            let b = dot_bound(&w[r * cols..(r + 1) * cols], &x[t * cols..(t + 1) * cols]);
            let d = (f64::from(k) - f64::from(rf)).abs();
            if d > b || k.is_nan() != rf.is_nan() {
                return Err(format!(
                    "token {t} row {r}: kernel {k} vs reference {rf}, |diff| {d:e} > bound {b:e}"
                ));
            }
            if b > 0.0 {
                worst = worst.max(d / b);
            }
        }
    }
    Ok(worst)
}
