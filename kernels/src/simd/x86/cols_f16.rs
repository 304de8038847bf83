//! `dot_cols_f16` for AVX2 and AVX-512: the attention sums over an f16 key/value cache.
//! Each half is widened to f32 as it is loaded (`vcvtph2ps`, exact), then multiplied and
//! added exactly as `dot_cols_f32` does, so the result has the bits of widening the whole
//! matrix first and running the plain loop, with half the bytes read and no widened copy.
//!
//! The body is written once over [`Lanes`] (one impl per ISA) and instantiated per vector
//! count in `#[target_feature]` entry points.

use core::arch::x86_64::*;

use half::f16;

/// Widest block of columns any instantiation uses (`B · Lanes::N`).
const MAX_WIDTH: usize = 64;

/// One ISA's f32 vectors, as the kernel body uses them. The methods are only called from
/// functions compiled with the ISA's features.
trait Lanes {
    type V: Copy;
    /// f32 lanes per vector.
    const N: usize;
    /// All lanes `+0.0`.
    unsafe fn zero() -> Self::V;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self::V;
    /// `N` halves from `p`, widened.
    unsafe fn load_f16(p: *const f16) -> Self::V;
    /// `a + x · v`, the product rounded before the sum (never fused).
    unsafe fn mul_add(a: Self::V, x: Self::V, v: Self::V) -> Self::V;
    /// Stores `N` floats at `p`.
    unsafe fn store(p: *mut f32, v: Self::V);
}

/// 512-bit vectors (AVX-512 F).
struct Zmm;

impl Lanes for Zmm {
    type V = __m512;
    const N: usize = 16;
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        // SAFETY: only called with the ISA's features (the trait's contract).
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        // SAFETY: only called with the ISA's features (the trait's contract).
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const f16) -> __m512 {
        // SAFETY: the caller reads 16 halves at `p` in bounds, with the ISA's features.
        unsafe { super::load_f16_zmm(p as *const u8) }
    }
    #[inline(always)]
    unsafe fn mul_add(a: __m512, x: __m512, v: __m512) -> __m512 {
        // SAFETY: only called with the ISA's features (the trait's contract).
        unsafe { _mm512_add_ps(a, _mm512_mul_ps(x, v)) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        // SAFETY: the caller writes 16 floats at `p` in bounds.
        unsafe { _mm512_storeu_ps(p, v) }
    }
}

/// 256-bit vectors (AVX2 + F16C).
struct Ymm;

impl Lanes for Ymm {
    type V = __m256;
    const N: usize = 8;
    #[inline(always)]
    unsafe fn zero() -> __m256 {
        // SAFETY: only called with the ISA's features (the trait's contract).
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        // SAFETY: only called with the ISA's features (the trait's contract).
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const f16) -> __m256 {
        // SAFETY: the caller reads 8 halves at `p` in bounds.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
    }
    #[inline(always)]
    unsafe fn mul_add(a: __m256, x: __m256, v: __m256) -> __m256 {
        // SAFETY: only called with the ISA's features (the trait's contract).
        unsafe { _mm256_add_ps(a, _mm256_mul_ps(x, v)) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        // SAFETY: the caller writes 8 floats at `p` in bounds.
        unsafe { _mm256_storeu_ps(p, v) }
    }
}

/// `outs[h][j] = Σ_i xs[h][i] · f32(m[i·stride + j])` for `K` vectors: `B` vectors of
/// columns at a time, each row's halves loaded and widened once for all `K` vectors, the
/// `K × B` sums in registers over all `i` (independent chains). Rows whose whole block lies
/// inside `m` are read in place; the rest (the last rows of a matrix that ends at its last
/// column) through a copy of their columns. Lanes past a row's columns are computed and
/// dropped.
///
/// # Safety
/// `L`'s features available; `xs.len() == outs.len() == K` and the shapes checked by
/// [`crate::simd::check_dot_cols`]; `B · L::N <= MAX_WIDTH`.
#[inline(always)]
unsafe fn dot_cols<L: Lanes, const K: usize, const B: usize>(
    xs: &[&[f32]],
    m: &[f16],
    stride: usize,
    outs: &mut [&mut [f32]],
) {
    let (len, n) = (xs[0].len(), outs[0].len());
    let xs: [&[f32]; K] = core::array::from_fn(|h| &xs[h][..len]);
    let width = B * L::N;
    let mut copy = [f16::ZERO; MAX_WIDTH];
    let mut spill = [0f32; MAX_WIDTH];
    for j0 in (0..n).step_by(width) {
        let cols = (n - j0).min(width);
        let in_place = match m.len().checked_sub(j0 + width) {
            Some(room) if stride > 0 => (room / stride + 1).min(len),
            Some(_) => len,
            None => 0,
        };
        // SAFETY: `L`'s features are available (caller).
        let mut acc = [[unsafe { L::zero() }; B]; K];
        for i in 0..in_place {
            // SAFETY: i·stride + j0 + width <= m.len() for i < in_place.
            let row = unsafe { m.as_ptr().add(i * stride + j0) };
            super::prefetch_cols(row, (2 * width).div_ceil(64) * 64);
            // SAFETY: as above.
            unsafe { step::<L, K, B>(&mut acc, &xs, i, row) };
        }
        for i in in_place..len {
            copy[..cols].copy_from_slice(&m[i * stride + j0..i * stride + j0 + cols]);
            // SAFETY: `copy` holds MAX_WIDTH >= width halves.
            unsafe { step::<L, K, B>(&mut acc, &xs, i, copy.as_ptr()) };
        }
        for (ah, out) in acc.iter().zip(outs.iter_mut()) {
            if cols == width {
                let o = &mut out[j0..j0 + width];
                for (b, &a) in ah.iter().enumerate() {
                    // SAFETY: `o` holds `B · N` floats.
                    unsafe { L::store(o.as_mut_ptr().add(b * L::N), a) };
                }
            } else {
                for (b, &a) in ah.iter().enumerate() {
                    // SAFETY: `spill` holds MAX_WIDTH >= B · N floats.
                    unsafe { L::store(spill.as_mut_ptr().add(b * L::N), a) };
                }
                out[j0..j0 + cols].copy_from_slice(&spill[..cols]);
            }
        }
    }
}

/// Row `i` of the sums: `B` vectors of halves from `row`, widened once, into every one of
/// the `K` vectors' accumulators. A function rather than a closure: closures do not take on
/// the caller's target features, and the intrinsics would then be calls.
///
/// # Safety
/// `L`'s features available; `B · L::N` halves readable at `row`; `i < xs[h].len()`.
#[inline(always)]
unsafe fn step<L: Lanes, const K: usize, const B: usize>(
    acc: &mut [[L::V; B]; K],
    xs: &[&[f32]; K],
    i: usize,
    row: *const f16,
) {
    // SAFETY: the caller's contract.
    unsafe {
        let mut v = [L::zero(); B];
        for (b, v) in v.iter_mut().enumerate() {
            *v = L::load_f16(row.add(b * L::N));
        }
        for (ah, x) in acc.iter_mut().zip(xs) {
            let x = L::splat(x[i]);
            for (a, &v) in ah.iter_mut().zip(&v) {
                *a = L::mul_add(*a, x, v);
            }
        }
    }
}

/// AVX-512: every vector at once (up to 16 accumulators of 32 registers), in blocks of one
/// vector of columns up to 16 columns (an attention tile: no lanes computed and dropped),
/// four beyond.
///
/// # Safety
/// AVX-512 F available; shapes checked by [`crate::simd::check_dot_cols`].
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn dot_cols_f16_zmm(
    xs: &[&[f32]],
    m: &[f16],
    stride: usize,
    outs: &mut [&mut [f32]],
) {
    // SAFETY: forwarded from the caller; 4 · 16 = MAX_WIDTH.
    unsafe {
        match (xs.len(), outs[0].len() <= 16) {
            (1, true) => dot_cols::<Zmm, 1, 1>(xs, m, stride, outs),
            (2, true) => dot_cols::<Zmm, 2, 1>(xs, m, stride, outs),
            (3, true) => dot_cols::<Zmm, 3, 1>(xs, m, stride, outs),
            (_, true) => dot_cols::<Zmm, 4, 1>(xs, m, stride, outs),
            (1, false) => dot_cols::<Zmm, 1, 4>(xs, m, stride, outs),
            (2, false) => dot_cols::<Zmm, 2, 4>(xs, m, stride, outs),
            (3, false) => dot_cols::<Zmm, 3, 4>(xs, m, stride, outs),
            (_, false) => dot_cols::<Zmm, 4, 4>(xs, m, stride, outs),
        }
    }
}

/// AVX2: every vector at once, in blocks of two vectors of columns up to 16 columns (an
/// attention tile); beyond, as many vectors of 8 columns as 16 registers allow (at most 8
/// accumulators for three or four vectors).
///
/// # Safety
/// AVX2 and F16C available; shapes checked by [`crate::simd::check_dot_cols`].
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn dot_cols_f16_ymm(
    xs: &[&[f32]],
    m: &[f16],
    stride: usize,
    outs: &mut [&mut [f32]],
) {
    // SAFETY: forwarded from the caller; at most 4 · 8 <= MAX_WIDTH.
    unsafe {
        match (xs.len(), outs[0].len() <= 16) {
            (1, true) => dot_cols::<Ymm, 1, 2>(xs, m, stride, outs),
            (2, true) => dot_cols::<Ymm, 2, 2>(xs, m, stride, outs),
            (1, false) => dot_cols::<Ymm, 1, 4>(xs, m, stride, outs),
            (2, false) => dot_cols::<Ymm, 2, 4>(xs, m, stride, outs),
            (3, _) => dot_cols::<Ymm, 3, 2>(xs, m, stride, outs),
            _ => dot_cols::<Ymm, 4, 2>(xs, m, stride, outs),
        }
    }
}
