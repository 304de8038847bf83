//! An int8 copy of a dense matrix with one scale per row: the opt-in output head that reads
//! half the bytes of F16 per decoded token (repacked once at load, in anonymous memory).
//!
//! Repack (per row `r`): `s_r = max_c |W[r,c]| / 127` (f32; 0 for an all-zero row),
//! `q[r,c] = clamp(round_half_even(W[r,c] / s_r), -127, 127)`.
//! Product: the input is quantized with bitnet.cpp's per-token int8 rule
//! ([`crate::act::quantize_i8`]: `x ≈ q_x / s_x`), then
//! `y[r] = (Σ_c q[r,c] · q_x[c]) as f32 · (s_r / s_x)` — an exact integer sum, so every
//! ISA and thread count gives the same bits.

use crate::act::quantize_i8_into;
use crate::dense::Dense;
use crate::error::{KernelError, Result, check_len};
use crate::exec::Exec;

/// A `rows x cols` int8 matrix with per-row f32 scales (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct DenseI8 {
    rows: usize,
    cols: usize,
    /// `[rows, cols]`, every value in `-127..=127`.
    q: Vec<i8>,
    /// Per-row scale `s_r` (value = q · s_r).
    scale: Vec<f32>,
}

impl DenseI8 {
    /// Repacks `w` (F32, F16 or BF16) row by row, rows split across `exec`'s threads.
    /// Errors on a non-finite weight (the first such row is named).
    pub fn from_dense(w: &Dense<'_>, exec: &Exec) -> Result<DenseI8> {
        let (rows, cols) = (w.rows(), w.cols());
        let mut q = vec![0i8; rows * cols];
        let mut scale = vec![0f32; rows];
        let bad = std::sync::Mutex::new(None::<usize>);
        exec.for_paired_items(&mut q, cols, &mut scale, 1, rows * cols, |r0, qs, ss| {
            let mut row = vec![0f32; cols];
            for (i, (qr, s)) in qs.chunks_exact_mut(cols).zip(ss).enumerate() {
                let r = r0 + i;
                // In range by construction: r < rows and row.len() == cols.
                if w.row_to_f32(r, &mut row).is_err() || row.iter().any(|v| !v.is_finite()) {
                    let mut b = bad.lock().unwrap_or_else(|e| e.into_inner());
                    *b = Some(b.map_or(r, |x| x.min(r)));
                    return;
                }
                *s = quantize_row(&row, qr);
            }
        });
        if let Some(row) = bad.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(KernelError::NonFiniteWeight { row });
        }
        Ok(DenseI8 {
            rows,
            cols,
            q,
            scale,
        })
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Bytes read per product (int8 values plus scales).
    pub fn bytes(&self) -> usize {
        self.q.len() + 4 * self.scale.len()
    }
    /// The int8 values, `[rows, cols]`.
    pub fn values(&self) -> &[i8] {
        &self.q
    }
    /// The per-row scales.
    pub fn scales(&self) -> &[f32] {
        &self.scale
    }

    /// `y[r] = Σ_c W[r, c] · x[c]` for one token (`x.len() == cols`, `y.len() == rows`),
    /// through int8 activations. Errors on wrong lengths or a non-finite `x`.
    pub fn gemv(&self, x: &[f32], y: &mut [f32], exec: &Exec) -> Result<()> {
        check_len("x", x.len(), self.cols)?;
        check_len("y", y.len(), self.rows)?;
        let k = exec.kernels()?;
        crate::scratch::with_acts(|a| {
            quantize_i8_into(x, self.cols, 1, exec, a)?;
            let qx = &a.q[..self.cols];
            let sx = a.scale[0];
            let x_sum = a.sum[0];
            let cols = self.cols;
            exec.for_row_chunks(self.rows, 1, self.rows * cols, y, |r0, out| {
                for (i, o) in out.iter_mut().enumerate() {
                    let r = r0 + i;
                    let isum = (k.dot_i8)(&self.q[r * cols..(r + 1) * cols], qx, x_sum);
                    *o = isum as f32 * (self.scale[r] / sx);
                }
            });
            Ok(())
        })
    }
}

/// `x.round_ties_even()` (up to the sign of a zero) for `|x| ≤ 2²²` (here `|x| ≤ 127·(1 + 2⁻²⁴)`), without the libm
/// call: adding and removing `1.5·2²³` leaves no fraction bits, so the FPU's
/// round-to-nearest-even does the rounding (Rust never reassociates float arithmetic).
#[inline]
fn round_half_even_small(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (x + MAGIC) - MAGIC
}

/// Quantizes one row into `q`; returns its scale.
fn quantize_row(row: &[f32], q: &mut [i8]) -> f32 {
    let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
    if amax == 0.0 {
        q.fill(0);
        return 0.0;
    }
    let s = amax / 127.0;
    if s == 0.0 {
        // A row of subnormals below 127 · 2^-149: it rounds to zero.
        q.fill(0);
        return 0.0;
    }
    for (o, &v) in q.iter_mut().zip(row) {
        *o = round_half_even_small(v / s).clamp(-127.0, 127.0) as i8;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::round_half_even_small;
    use crate::isa::Isa;
    use crate::simd;

    #[test]
    fn fast_rounding_equals_ties_even() {
        for i in -300_000..=300_000 {
            let x = i as f32 / 1024.0; // covers every tie k + 0.5 and many non-ties
            // Equal as integers (a negative x rounding to 0 may give +0 here, -0 there).
            assert_eq!(
                round_half_even_small(x) as i32,
                x.round_ties_even() as i32,
                "{x}"
            );
        }
        for x in [127.00001f32, -127.00001, 126.5, -126.5, 0.5, -0.5, 1.5, 2.5] {
            assert_eq!(round_half_even_small(x), x.round_ties_even(), "{x}");
        }
    }

    /// Every ISA's `dot_i8` equals the exact sum at the extremes its contract allows
    /// (`x = -128`, `w = ±127`, all lengths around the vector widths and tails).
    #[test]
    fn dot_i8_exact_at_extremes_on_every_isa() {
        let scalar = simd::table(Isa::Scalar).unwrap();
        for isa in Isa::available() {
            let k = simd::table(isa).unwrap();
            for n in (0..=200).chain([255, 256, 257, 2560]) {
                for pattern in 0..4 {
                    let w: Vec<i8> = (0..n)
                        .map(|i| match pattern {
                            0 => 127,
                            1 => -127,
                            2 => [127, -127, 0, 5][i % 4],
                            _ => ((i * 37 % 255) as i32 - 127) as i8,
                        })
                        .collect();
                    let x: Vec<i8> = (0..n)
                        .map(|i| match pattern {
                            0 | 1 => -128,
                            2 => [-128, 127, -128, 1][i % 4],
                            _ => ((i * 91 % 256) as i32 - 128) as i8,
                        })
                        .collect();
                    let exact: i64 = w.iter().zip(&x).map(|(&a, &b)| a as i64 * b as i64).sum();
                    let x_sum: i32 = x.iter().map(|&v| i32::from(v)).sum();
                    assert_eq!((scalar.dot_i8)(&w, &x, x_sum) as i64, exact);
                    assert_eq!(
                        (k.dot_i8)(&w, &x, x_sum) as i64,
                        exact,
                        "{isa} n {n} pattern {pattern}"
                    );
                }
            }
        }
    }
}
