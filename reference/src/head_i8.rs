//! The opt-in int8 output head, written from its definition (kernels' `dense_i8` docs):
//! per-row absmax repack to `-127..=127` and the int8 × int8 product with bitnet.cpp
//! per-token int8 activations.

use crate::act::quantize_activations_i8;

/// `rows x cols` int8 values with one f32 scale per row (value = q · scale).
#[derive(Debug, Clone, PartialEq)]
pub struct HeadI8 {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// `[rows, cols]` in `-127..=127`.
    pub q: Vec<i8>,
    /// Per-row scale.
    pub scale: Vec<f32>,
}

/// Repacks row-major f32 weights `w [rows, cols]`: `s = max|row| / 127` in f32 (rows of
/// zeros, or so small that `s` underflows to 0, get `s = 0` and all-zero values), then
/// `q = clamp(round_half_even(w / s), -127, 127)` with the division in f32.
///
/// # Panics
/// If `w.len() != rows * cols`.
pub fn repack_head_i8(w: &[f32], rows: usize, cols: usize) -> HeadI8 {
    assert_eq!(w.len(), rows * cols, "weights: len != rows * cols");
    let mut q = vec![0i8; rows * cols];
    let mut scale = vec![0f32; rows];
    for r in 0..rows {
        let row = &w[r * cols..(r + 1) * cols];
        let mut amax = 0f32;
        for &v in row {
            if v.abs() > amax {
                amax = v.abs();
            }
        }
        let s = amax / 127.0;
        if s == 0.0 {
            continue;
        }
        scale[r] = s;
        for c in 0..cols {
            let v = (row[c] / s).round_ties_even();
            q[r * cols + c] = v.clamp(-127.0, 127.0) as i8;
        }
    }
    HeadI8 {
        rows,
        cols,
        q,
        scale,
    }
}

/// `y[r] = (Σ_c q[r,c] · q_x[c]) as f32 · (scale[r] / s_x)` with `(q_x, s_x)` the
/// bitnet.cpp int8 quantization of `x` ([`quantize_activations_i8`]).
///
/// # Panics
/// If `x.len() != head.cols`.
pub fn gemv_head_i8(head: &HeadI8, x: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), head.cols, "x: len != cols");
    let a = quantize_activations_i8(x);
    (0..head.rows)
        .map(|r| {
            let mut isum = 0i64;
            for c in 0..head.cols {
                isum += i64::from(head.q[r * head.cols + c]) * i64::from(a.q[c]);
            }
            isum as i32 as f32 * (head.scale[r] / a.scale)
        })
        .collect()
}
