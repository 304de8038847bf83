//! `exp` of f32 values with the bits of libm's `expf`, eight at a time as two halves of four
//! f64 lanes (AVX2 + FMA).
//!
//! Each value is evaluated in f64 to within `2⁻³⁶` relatively and rounded to f32. That f32
//! is kept only when it is beyond doubt: when the bracket `y·(1 ∓ 2⁻³¹)` around the f64
//! value `y` rounds to one f32 at both ends (rounding is monotone, so every value inside,
//! `exp(x)` included, rounds to it). The exact value is then at least `2⁻³¹·y`, about
//! 0.004 ulp, away from the nearest midpoint between two f32s, so any `expf` within 0.504
//! ulp (glibc's and musl's are within 0.502: ARM's optimized-routines `expf`) returns that
//! same f32, the correctly rounded one. The other lanes (about 1% of inputs: those within
//! the bracket of a midpoint, and every input outside `[-87, 88]`, where results leave
//! the normal f32 range, or NaN) call `f32::exp` itself. The lab checks the claim on every
//! input of the fast range against this platform's libm.
//!
//! Error budget of the f64 value (all relative):
//! - `k = round(x·log₂e)` taken in f32 (its product's rounding moves `x·log₂e` by at most
//!   `127·2⁻²⁴`), `r = x − k·ln2` in f64 with `ln2` split as fdlibm's `ln2_hi` (32
//!   significant bits, so `k·ln2_hi` is exact for `|k| ≤ 128`) and `ln2_lo`, two fused
//!   steps: `|r| < 0.3466`, one rounding of `r` (`2⁻⁵³·|r|`) and the split's own error
//!   (`|k|·2⁻⁸⁰`);
//! - `eʳ` by its Taylor polynomial to degree 9 (Estrin's scheme, fused): truncation
//!   `0.35¹⁰/10!·e^0.35 < 2⁻³⁶·⁵`, coefficient and evaluation roundings below `2⁻⁵⁰`;
//! - scaling by `2ᵏ` (`k ∈ [−126, 128]`): exact.
//!
//! Together below `2⁻³⁶`, inside the bracket by a factor of 32.

use core::arch::x86_64::*;

/// Half-width of the bracket, relative: `2⁻³¹`.
const BRACKET: f64 = 1.0 / (1u64 << 31) as f64;
/// Inputs whose results are normal f32s, and the fast path's range.
const LO: f32 = -87.0;
const HI: f32 = 88.0;
/// `1/j!` for `j = 0..=9`.
const TAYLOR: [f64; 10] = [
    1.0,
    1.0,
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40320.0,
    1.0 / 362880.0,
];

/// `Σ_{j ≤ 9} rʲ/j!` by Estrin's scheme: a dependency chain of four fused steps instead of
/// Horner's nine, so that the loop's iterations overlap.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn taylor(r: __m256d) -> __m256d {
    let c = |j: usize| _mm256_set1_pd(TAYLOR[j]);
    let pair = |j: usize| _mm256_fmadd_pd(c(j + 1), r, c(j));
    let r2 = _mm256_mul_pd(r, r);
    let r4 = _mm256_mul_pd(r2, r2);
    let q0 = _mm256_fmadd_pd(pair(2), r2, pair(0));
    let q1 = _mm256_fmadd_pd(pair(6), r2, pair(4));
    let s = _mm256_fmadd_pd(q1, r4, q0);
    _mm256_fmadd_pd(pair(8), _mm256_mul_pd(r4, r4), s)
}

/// `x_i ← exp(x_i)` for `n` values at `x`, with `f32::exp`'s bits (see the module). Runs of
/// up to 64 values go through [`exp8`] eight at a time, their inputs kept aside; the few
/// doubtful lanes are then taken by `f32::exp` from those inputs, outside the vector loop
/// (a call inside it would cost the loop its registers; a masked store is slow on AMD).
///
/// # Safety
/// AVX2 and FMA available; `n` floats readable and writable at `x`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn exp_f32(x: *mut f32, n: usize) {
    let mut i = 0;
    while i + 8 <= n {
        let run = (n - i).min(64) / 8 * 8;
        let mut slow = 0u64;
        let mut inputs = [0f32; 64];
        for j in (0..run).step_by(8) {
            // SAFETY: values i + j .. i + j + 8 are in bounds (caller); j + 8 ≤ 64.
            let fast = unsafe { exp8(x.add(i + j), inputs.as_mut_ptr().add(j)) };
            slow |= u64::from(!fast & 0xff) << j;
        }
        while slow != 0 {
            let j = slow.trailing_zeros() as usize;
            // SAFETY: j < run, in bounds.
            unsafe { *x.add(i + j) = inputs[j].exp() };
            slow &= slow - 1;
        }
        i += run;
    }
    for j in i..n {
        // SAFETY: j < n (caller).
        unsafe { *x.add(j) = (*x.add(j)).exp() };
    }
}

/// `exp` of the eight values at `p`, written back (copying the inputs to `keep`); returns the
/// lanes beyond doubt as an 8-bit mask (bit `j` for `p[j]`). The range checks and `k` run
/// on all eight in f32; the rest in two f64 halves, whose chains interleave.
///
/// # Safety
/// AVX2 and FMA available; eight floats readable and writable at `p`, writable at `keep`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp8(p: *mut f32, keep: *mut f32) -> u32 {
    let ln2_hi = _mm256_set1_pd(f64::from_bits(0x3fe6_2e42_fee0_0000));
    let ln2_lo = _mm256_set1_pd(f64::from_bits(0x3dea_39ef_3579_3c76));
    // SAFETY: eight values at p (caller).
    let xs = unsafe { _mm256_loadu_ps(p) };
    // SAFETY: eight writable floats at keep (caller).
    unsafe { _mm256_storeu_ps(keep, xs) };
    // k = round(x·log₂e) in f32: any integer within one of x·log₂e will do.
    let kf = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        xs,
        _mm256_set1_ps(core::f32::consts::LOG2_E),
    ));
    let ki = _mm256_cvtps_epi32(kf);
    let half = |v: __m128, k: __m128, ki: __m128i| {
        let xd = _mm256_cvtps_pd(v);
        let kd = _mm256_cvtps_pd(k);
        let r = _mm256_fnmadd_pd(kd, ln2_lo, _mm256_fnmadd_pd(kd, ln2_hi, xd));
        let e = taylor(r);
        let k64 = _mm256_cvtepi32_epi64(ki);
        let bias = _mm256_set1_epi64x(1023);
        let two_k = _mm256_castsi256_pd(_mm256_slli_epi64::<52>(_mm256_add_epi64(k64, bias)));
        let y = _mm256_mul_pd(e, two_k);
        let sure = _mm_cmpeq_epi32(
            _mm_castps_si128(_mm256_cvtpd_ps(_mm256_mul_pd(
                y,
                _mm256_set1_pd(1.0 - BRACKET),
            ))),
            _mm_castps_si128(_mm256_cvtpd_ps(_mm256_mul_pd(
                y,
                _mm256_set1_pd(1.0 + BRACKET),
            ))),
        );
        (_mm256_cvtpd_ps(y), sure)
    };
    let (f0, s0) = half(
        _mm256_castps256_ps128(xs),
        _mm256_castps256_ps128(kf),
        _mm256_castsi256_si128(ki),
    );
    let (f1, s1) = half(
        _mm256_extractf128_ps::<1>(xs),
        _mm256_extractf128_ps::<1>(kf),
        _mm256_extracti128_si256::<1>(ki),
    );
    let f = _mm256_insertf128_ps::<1>(_mm256_castps128_ps256(f0), f1);
    let sure = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(s0), s1);
    // NaN compares false: it takes the slow path too.
    let inside = _mm256_and_ps(
        _mm256_cmp_ps::<_CMP_GE_OQ>(xs, _mm256_set1_ps(LO)),
        _mm256_cmp_ps::<_CMP_LE_OQ>(xs, _mm256_set1_ps(HI)),
    );
    // SAFETY: as the load.
    unsafe { _mm256_storeu_ps(p, f) };
    _mm256_movemask_ps(_mm256_and_ps(_mm256_castsi256_ps(sure), inside)) as u32
}
