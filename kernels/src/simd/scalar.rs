//! The portable path: plain loops over the same layouts as the SIMD kernels.

use super::KernelTable;
use crate::act::BlockQ8K;
use crate::format::{i2s, tq1_0, tq2_0};

pub(crate) static TABLE: KernelTable = KernelTable {
    i2_dot,
    i2_dot_tokens,
    i2_dot_tile: None,
    i2_tile_tokens: &[4],
    i2_arrange: None,
    tq2_dot,
    tq2_arrange: None,
    tq2_rows_f32: None,
    tq1_rows_f32: None,
    tq2_tile_f32: None,
    tq1_tile_f32: None,
    tq1_dot,
    absmax_bits,
    norm_absmax,
    quant_i8,
    dot_f32,
    dot_f16,
    dot_i8: |w, x, _x_sum| dot_i8(w, x),
    axpy_f32,
    dot_cols_f32,
    dot_cols_f16,
    exp_f32,
};

/// `x_i ← exp(x_i)` by libm (`f32::exp`): what the SIMD kernels must equal.
fn exp_f32(x: &mut [f32]) {
    for v in x {
        *v = v.exp();
    }
}

fn i2_dot(w: &[u8], stride: usize, nblk: usize, q: &[i8], out: &mut [i32]) {
    super::check_i2_dot(w, stride, nblk, q, out.len());
    for (r, o) in out.iter_mut().enumerate() {
        let row = &w[r * stride..r * stride + nblk * 32];
        let mut acc = 0i32;
        for (blk, qb) in row.chunks_exact(32).zip(q.chunks_exact(128)) {
            for (g, qg) in qb.chunks_exact(32).enumerate() {
                let shift = i2s::group_shift(g);
                for (&b, &qv) in blk.iter().zip(qg) {
                    acc += ((b >> shift) & 3) as i32 * qv as i32;
                }
            }
        }
        *o = acc;
    }
}

fn i2_dot_tokens(w: &[u8], nblk: usize, q: &[i8], q_stride: usize, out: &mut [i32]) {
    super::check_i2_dot_tokens(w, nblk, q, q_stride, out.len());
    super::i2_dot_tokens_by_token(i2_dot, w, nblk, q, q_stride, out);
}

fn tq2_dot(row: &[u8], a: &[BlockQ8K], out: &mut [i32]) {
    super::check_tq_dot(row, a, out.len(), tq2_0::BLOCK_BYTES);
    for (b, o) in out.iter_mut().enumerate() {
        let blk = &row[b * tq2_0::BLOCK_BYTES..][..64];
        let qb = &a[b].qs;
        let mut acc = 0i32;
        for (j, &v) in qb.iter().enumerate() {
            acc += tq2_0::code_at(blk, j) as i32 * v as i32;
        }
        *o = acc;
    }
}

fn tq1_dot(row: &[u8], a: &[BlockQ8K], out: &mut [i32]) {
    super::check_tq_dot(row, a, out.len(), tq1_0::BLOCK_BYTES);
    for (b, o) in out.iter_mut().enumerate() {
        let blk = &row[b * tq1_0::BLOCK_BYTES..][..tq1_0::BLOCK_BYTES];
        let mut codes = [0u8; 256];
        tq1_0::unpack_block(blk, &mut codes);
        *o = codes
            .iter()
            .zip(&a[b].qs)
            .map(|(&c, &v)| c as i32 * v as i32)
            .sum();
    }
}

fn absmax_bits(x: &[f32]) -> u32 {
    x.iter()
        .map(|v| v.to_bits() & 0x7fff_ffff)
        .max()
        .unwrap_or(0)
}

/// Also the tail loop of the pulp `norm_absmax`.
pub(crate) fn norm_absmax(x: &[f32], w: &[f32], scale: f32, out: &mut [f32]) -> u32 {
    super::check_norm(x, w, out);
    let mut m = 0u32;
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = (v * scale) * g;
        m = m.max(o.to_bits() & 0x7fff_ffff);
    }
    m
}

fn quant_i8(x: &[f32], s: f32, q: &mut [i8]) -> i32 {
    let mut sum = 0i32;
    for (o, &v) in q.iter_mut().zip(x) {
        let r = (v * s).round_ties_even().clamp(-128.0, 127.0) as i8;
        sum += r as i32;
        *o = r;
    }
    sum
}

fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0.0f32, |acc, (&x, &y)| acc + x * y)
}

/// Also the tail loop of the SIMD `dot_f16` kernels.
pub(crate) fn dot_f16(w: &[u8], x: &[f32]) -> f32 {
    w.chunks_exact(2).zip(x).fold(0.0f32, |acc, (c, &v)| {
        acc + half::f16::from_le_bytes([c[0], c[1]]).to_f32() * v
    })
}

/// Also the tail loop of the SIMD `dot_i8` kernels.
pub(crate) fn dot_i8(w: &[i8], x: &[i8]) -> i32 {
    assert_eq!(w.len(), x.len(), "dot_i8: lengths");
    w.iter()
        .zip(x)
        .map(|(&a, &b)| i32::from(a) * i32::from(b))
        .sum()
}

/// Also the tail loop of the pulp `axpy_f32`.
pub(crate) fn axpy_f32(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// `outs[h][j] = Σ_i xs[h][i] · m[i·stride + j]`, the plain loop for each `h` (the scalar
/// table's entry).
fn dot_cols_f16(xs: &[&[f32]], m: &[half::f16], stride: usize, outs: &mut [&mut [f32]]) {
    let (_, n) = super::check_dot_cols(xs, m, stride, outs);
    for (x, out) in xs.iter().zip(outs.iter_mut()) {
        out.fill(0.0);
        for (i, &xi) in x.iter().enumerate() {
            for (o, &w) in out.iter_mut().zip(&m[i * stride..i * stride + n]) {
                *o += xi * w.to_f32();
            }
        }
    }
}

pub(crate) fn dot_cols_f32(xs: &[&[f32]], m: &[f32], stride: usize, outs: &mut [&mut [f32]]) {
    let (_, n) = super::check_dot_cols(xs, m, stride, outs);
    for (x, out) in xs.iter().zip(outs.iter_mut()) {
        out.fill(0.0);
        for (i, &xi) in x.iter().enumerate() {
            axpy_f32(xi, &m[i * stride..i * stride + n], out);
        }
    }
}
