//! The one FP32 dot-product order shared by every `gemv_f32_*` function.

/// `y [tokens, rows] = x [tokens, cols] · wᵀ` with `w [rows, cols]` row-major f32.
///
/// Order (the lab derives its error bound from it): for each `(t, r)`, one f32
/// accumulator starts at `+0.0` and does `acc = acc + w[r][col] * x[t][col]` for
/// `col = 0, 1, …, cols - 1`; the product and the sum are each rounded to f32 (no FMA,
/// no reassociation). With exact weights this is the textbook recursive sum of `cols`
/// rounded products.
///
/// # Panics
/// If `w.len() != rows * cols` or `x.len() != tokens * cols`.
pub(crate) fn gemv_f32_dense(
    w: &[f32],
    rows: usize,
    cols: usize,
    x: &[f32],
    tokens: usize,
) -> Vec<f32> {
    assert_eq!(
        w.len(),
        rows * cols,
        "weights: len != rows * cols = {rows} * {cols}"
    );
    assert_eq!(
        x.len(),
        tokens * cols,
        "x: len {} != tokens * cols = {tokens} * {cols}",
        x.len()
    );
    let mut y = Vec::with_capacity(tokens * rows);
    for t in 0..tokens {
        let xt = &x[t * cols..(t + 1) * cols];
        for r in 0..rows {
            let wr = &w[r * cols..(r + 1) * cols];
            let mut acc = 0.0f32;
            for col in 0..cols {
                acc += wr[col] * xt[col];
            }
            y.push(acc);
        }
    }
    y
}
