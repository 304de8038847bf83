//! AVX2 kernels. Codes are unsigned (0..=3) and activations signed, exactly the operand
//! order of `vpmaddubsw`; 16-bit partial sums stay within ±3072 per 128 elements
//! (4 groups × 2 products × 3 × 128), then widen to i32 through `vpmaddwd`.

use core::arch::x86_64::*;

use crate::act::BlockQ8K;

use super::PREFETCH;

#[inline(always)]
unsafe fn loadu(p: *const u8) -> __m256i {
    // SAFETY: callers pass pointers with 32 readable bytes.
    unsafe { _mm256_loadu_si256(p as *const __m256i) }
}

/// Sum of the eight i32 lanes.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn hsum(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// `rounds` rounds of 12 independent `vpmaddubsw` + `vpaddw` pairs on registers (no
/// loads): AVX2's int8 multiply-accumulate peak of one core. Each chain feeds its sum back
/// as the signed operand, so no product is loop-invariant (the values saturate; the timing
/// does not depend on them). Returns a checksum so the work cannot be dropped.
#[target_feature(enable = "avx2")]
pub(super) fn maddubs_peak_loop(rounds: usize) -> i32 {
    let a = _mm256_set1_epi8(3);
    let mut acc: [__m256i; 12] = core::array::from_fn(|i| _mm256_set1_epi8(i as i8 + 1));
    for _ in 0..rounds {
        for x in acc.iter_mut() {
            *x = _mm256_add_epi16(*x, _mm256_maddubs_epi16(a, *x));
        }
    }
    let s = acc
        .iter()
        .fold(_mm256_setzero_si256(), |s, &x| _mm256_add_epi16(s, x));
    _mm256_extract_epi16::<0>(s) + _mm256_extract_epi16::<15>(s)
}

/// Blocks whose 16-bit sums [`i2_row`] adds before widening (see there).
const ROW_I16_BLOCKS: usize = 4;

/// `Σ codes·q` over one row of `nblk` I2_S blocks (32 bytes each at `w`; activations `q`
/// in element order, 128 per block). Byte `j` of a block holds the codes of elements `j`,
/// `j + 32`, `j + 64`, `j + 96` at bits 7:6, 5:4, 3:2, 1:0. One 16-bit shift by 4 brings
/// bits 7:4 down; masks `0x03` and `0x0c` then give `c` and `4c` of both halves, so each
/// block costs one shift, four ands and four `vpmaddubsw` (the old plan's two further
/// shifts and its per-block `vpmaddwd` widening are gone). The `c` products go into `lo`
/// (at most 2 · 2 · 3 · 128 = 1536 a block per 16-bit lane), the `4c` ones into `hi`
/// (2 · 2 · 12 · 128 = 6144), so [`ROW_I16_BLOCKS`] = 4 blocks stay within ±24 576;
/// then `vpmaddwd` widens each into its own i32 lanes, and the `4c` lanes, multiples of 4,
/// are shifted down by 2 once at the end: exact.
///
/// # Safety
/// AVX2 available; `nblk * 32` bytes readable at `w`, `nblk * 128` at `q`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn i2_row(w: *const u8, nblk: usize, q: *const i8) -> i32 {
    let m3 = _mm256_set1_epi8(3);
    let m12 = _mm256_set1_epi8(12);
    let ones = _mm256_set1_epi16(1);
    let (mut acc1, mut acc4) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    // One block into the 16-bit sums `lo` (the `c` products) and `hi` (the `4c` ones).
    let block = |b: usize, lo: &mut __m256i, hi: &mut __m256i| {
        let p = w.wrapping_add(b * 32);
        // Prefetch never faults, so the address may run past the row.
        _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(PREFETCH) as *const i8);
        // SAFETY: block b's 32 code bytes and 128 activations are readable (caller).
        let (v, q0, q1, q2, q3) = unsafe {
            let qp = q.add(b * 128) as *const u8;
            (
                loadu(p),
                loadu(qp),
                loadu(qp.add(32)),
                loadu(qp.add(64)),
                loadu(qp.add(96)),
            )
        };
        let v4 = _mm256_srli_epi16::<4>(v);
        *lo = _mm256_add_epi16(*lo, _mm256_maddubs_epi16(_mm256_and_si256(v4, m3), q1));
        *lo = _mm256_add_epi16(*lo, _mm256_maddubs_epi16(_mm256_and_si256(v, m3), q3));
        *hi = _mm256_add_epi16(*hi, _mm256_maddubs_epi16(_mm256_and_si256(v4, m12), q0));
        *hi = _mm256_add_epi16(*hi, _mm256_maddubs_epi16(_mm256_and_si256(v, m12), q2));
    };
    // Whole groups with a fixed trip count (unrolled), then the rest.
    let whole = nblk / ROW_I16_BLOCKS * ROW_I16_BLOCKS;
    for b0 in (0..nblk).step_by(ROW_I16_BLOCKS) {
        let mut lo = _mm256_setzero_si256();
        let mut hi = _mm256_setzero_si256();
        if b0 < whole {
            for b in b0..b0 + ROW_I16_BLOCKS {
                block(b, &mut lo, &mut hi);
            }
        } else {
            for b in b0..nblk {
                block(b, &mut lo, &mut hi);
            }
        }
        acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(lo, ones));
        acc4 = _mm256_add_epi32(acc4, _mm256_madd_epi16(hi, ones));
    }
    // Every term of `acc4` is a multiple of 4, so the arithmetic shift divides exactly.
    hsum(_mm256_add_epi32(acc1, _mm256_srai_epi32::<2>(acc4)))
}

/// See [`crate::simd::KernelTable::i2_dot`].
///
/// # Safety
/// AVX2 available; `w` readable for `(out.len()-1)*stride + nblk*32` bytes, `q` for
/// `nblk*128`; `out.len()` ≥ 1.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn i2_dot(
    w: *const u8,
    stride: usize,
    nblk: usize,
    q: *const i8,
    out: &mut [i32],
) {
    // Rows one after another: consecutive rows are contiguous, so the weights are read as
    // one sequential stream (interleaving rows defeats the hardware prefetcher when cold).
    for (r, o) in out.iter_mut().enumerate() {
        // SAFETY: forwarded caller contract; row r starts at r * stride.
        *o = unsafe { i2_row(w.add(r * stride), nblk, q) };
    }
}

/// Blocks whose 16-bit sums [`i2_dot_tokens`] adds before widening: each block adds at most
/// 4 · 2 · 3 · 128 = 3072 to a lane, so eight stay within ±24 576.
const I16_BLOCKS: usize = 8;

/// See [`crate::simd::KernelTable::i2_dot_tokens`]: one row against `T` tokens, each
/// 32-byte block decoded into its four code vectors once for all of them; per token the
/// four `vpmaddubsw` products are summed in 16-bit lanes (within ±3072) and widened by one
/// `vpmaddwd` per block, as in [`i2_dot`]. The row is prefetched [`PREFETCH`] bytes ahead.
///
/// Why: the old path ran [`i2_dot`] once per token, decoding every block four times
/// (2B-4T GEMMs of 128 tokens, 1 thread: see `docs/performance.md`).
///
/// # Safety
/// AVX2 available; `w` readable for `nblk*32` bytes; `q` for `T` tokens of `nblk*128`
/// activations, `q_stride` apart; `out` writable for `T`.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn i2_dot_tokens<const T: usize>(
    w: *const u8,
    nblk: usize,
    q: *const i8,
    q_stride: usize,
    out: *mut i32,
) {
    let mask = _mm256_set1_epi8(3);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_si256(); T];
    for b0 in (0..nblk).step_by(I16_BLOCKS) {
        let mut acc16 = [_mm256_setzero_si256(); T];
        for b in b0..nblk.min(b0 + I16_BLOCKS) {
            // Prefetch never faults, so the address may run past the row.
            _mm_prefetch::<_MM_HINT_T1>(w.wrapping_add(b * 32 + PREFETCH) as *const i8);
            // SAFETY: block b's 32 bytes are within the row (caller).
            let v = unsafe { loadu(w.add(b * 32)) };
            let c = [
                _mm256_and_si256(_mm256_srli_epi16::<6>(v), mask),
                _mm256_and_si256(_mm256_srli_epi16::<4>(v), mask),
                _mm256_and_si256(_mm256_srli_epi16::<2>(v), mask),
                _mm256_and_si256(v, mask),
            ];
            for (t, at) in acc16.iter_mut().enumerate() {
                for (k, &ck) in c.iter().enumerate() {
                    // SAFETY: token t's block b: 128 activations at t*q_stride + b*128
                    // (caller), 32 at 32k.
                    let qk = unsafe { loadu(q.add(t * q_stride + b * 128 + 32 * k) as *const u8) };
                    *at = _mm256_add_epi16(*at, _mm256_maddubs_epi16(ck, qk));
                }
            }
        }
        for (a, a16) in acc.iter_mut().zip(acc16) {
            *a = _mm256_add_epi32(*a, _mm256_madd_epi16(a16, ones));
        }
    }
    // The T sums four at a time (a 2B-4T row of 2560 columns is only 20 blocks, so T
    // separate horizontal sums were a visible share of the row).
    for t0 in (0..T).step_by(4) {
        let n = (T - t0).min(4);
        let mut four = [_mm256_setzero_si256(); 4];
        four[..n].copy_from_slice(&acc[t0..t0 + n]);
        let mut sums = [0i32; 4];
        // SAFETY: `sums` is 16 writable bytes.
        unsafe { _mm_storeu_si128(sums.as_mut_ptr() as *mut __m128i, reduce4(four)) };
        // SAFETY: out[t] is writable for t < T (caller), and t0 + n <= T.
        unsafe { core::ptr::copy_nonoverlapping(sums.as_ptr(), out.add(t0), n) };
    }
}

/// Token counts of the AVX2 prefill tile ([`i2_dot_tile`]), largest first.
pub(super) const TILE_TOKENS: &[usize] = &[8, 4];

/// See [`crate::simd::KernelTable::i2_dot_tile`]: [`i2_dot_tokens`] for eight or four
/// tokens, row after row of the `4 * quads` rows, in one call. What the one call saves is
/// the per-row dispatch (a call through the table, its bounds checks and the row's slice),
/// which on a 2560-column row (20 blocks) was a tenth of the row's time. Eight tokens share
/// a block's seven decoding operations among 32 `vpmaddubsw` instead of 16, and the eight
/// 16-bit sums, the four code vectors and the mask still fit the 16 registers (the
/// activations are memory operands): hot 128-token GEMMs over 2560 columns ran 2.5–6%
/// faster (2560 and 6912 rows, 1 thread, Zen 3). The
/// caller takes four where eight tokens' activations would not stay in L1 (6912 columns).
///
/// # Safety
/// AVX2 available; `tokens` is 8 or 4; `w` readable for `(4*quads - 1)*stride + nblk*32`
/// bytes; `q` for `(tokens-1)*q_stride + nblk*128`; `out` writable at `t*out_stride + i`
/// for `t < tokens`, `i < 4*quads`.
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn i2_dot_tile(
    w: *const u8,
    stride: usize,
    nblk: usize,
    quads: usize,
    q: *const i8,
    q_stride: usize,
    out: *mut i32,
    out_stride: usize,
    tokens: usize,
) {
    let rows = 4 * quads;
    // SAFETY: forwarded caller contract, `tokens` tokens.
    unsafe {
        if tokens == 8 {
            tile_rows::<8>(w, stride, rows, nblk, q, q_stride, out, out_stride)
        } else {
            tile_rows::<4>(w, stride, rows, nblk, q, q_stride, out, out_stride)
        }
    }
}

/// [`i2_dot_tokens`] for `T` tokens over `rows` rows `stride` apart.
///
/// # Safety
/// As [`i2_dot_tile`] with `tokens == T` and `rows == 4 * quads`.
#[inline]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_rows<const T: usize>(
    w: *const u8,
    stride: usize,
    rows: usize,
    nblk: usize,
    q: *const i8,
    q_stride: usize,
    out: *mut i32,
    out_stride: usize,
) {
    for r in 0..rows {
        let mut s = [0i32; T];
        // SAFETY: row r's nblk*32 bytes and the T tokens are in bounds (caller).
        unsafe { i2_dot_tokens::<T>(w.add(r * stride), nblk, q, q_stride, s.as_mut_ptr()) };
        for (t, &st) in s.iter().enumerate() {
            // SAFETY: t < T and r < rows (caller).
            unsafe { *out.add(t * out_stride + r) = st };
        }
    }
}

/// See [`crate::simd::KernelTable::tq2_dot`].
///
/// # Safety
/// AVX2 available; `row` readable for `out.len()` 66-byte blocks, `a` for `out.len()` blocks.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn tq2_dot(row: *const u8, a: *const BlockQ8K, out: &mut [i32]) {
    for (b, o) in out.iter_mut().enumerate() {
        // SAFETY: block b of the row and of the activations exist (caller).
        unsafe {
            let blk = row.add(b * 66);
            // Prefetch never faults; two lines cover the 66-byte block [`PREFETCH`] ahead.
            _mm_prefetch::<_MM_HINT_T1>(blk.wrapping_add(PREFETCH) as *const i8);
            _mm_prefetch::<_MM_HINT_T1>(blk.wrapping_add(PREFETCH + 64) as *const i8);
            *o = hsum(tq2_block(blk, (*a.add(b)).qs.as_ptr() as *const u8));
        }
    }
}

/// `Σ_j code_j · q_j` of one TQ2_0 block as eight i32 lanes (not yet reduced). Each
/// 32-byte chunk holds codes at bits 1:0, 3:2, 5:4, 7:6 (elements `+0`, `+32`, `+64`,
/// `+96` of its 128); as in [`i2_row`], one 16-bit shift by 4 and masks `0x03`, `0x0c`
/// give `c` of the first and third and `4c` of the second and fourth, so a chunk costs one
/// shift and four ands instead of three shifts and four ands. `vpmaddubsw` sums the `c`
/// products into `lo` (within 4 · 2 · 3 · 128 = 3072 per 16-bit lane, code 3 included) and
/// the `4c` ones into `hi` (within 12 288, every lane a multiple of 4); `lo + (hi >> 2)`
/// is then exact (within 6144), and one `vpmaddwd` widens it.
///
/// # Safety
/// AVX2 available; 64 code bytes at `blk` and 256 activations at `qs` readable.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn tq2_block(blk: *const u8, qs: *const u8) -> __m256i {
    let (m1, m4) = (_mm256_set1_epi8(3), _mm256_set1_epi8(12));
    let mut lo = _mm256_setzero_si256();
    let mut hi = _mm256_setzero_si256();
    for ch in 0..2 {
        // SAFETY: bytes ch*32.. of the block's codes and ch*128.. of its activations (caller).
        unsafe {
            let v = loadu(blk.add(ch * 32));
            let v4 = _mm256_srli_epi16::<4>(v);
            let q = qs.add(ch * 128);
            lo = _mm256_add_epi16(lo, _mm256_maddubs_epi16(_mm256_and_si256(v, m1), loadu(q)));
            hi = _mm256_add_epi16(
                hi,
                _mm256_maddubs_epi16(_mm256_and_si256(v, m4), loadu(q.add(32))),
            );
            lo = _mm256_add_epi16(
                lo,
                _mm256_maddubs_epi16(_mm256_and_si256(v4, m1), loadu(q.add(64))),
            );
            hi = _mm256_add_epi16(
                hi,
                _mm256_maddubs_epi16(_mm256_and_si256(v4, m4), loadu(q.add(96))),
            );
        }
    }
    let s = _mm256_add_epi16(lo, _mm256_srai_epi16::<2>(hi));
    _mm256_madd_epi16(s, _mm256_set1_epi16(1))
}

/// See [`crate::simd::KernelTable::tq2_rows_f32`] (and `tq1_rows_f32` with `TQ1`): the
/// AVX-512 kernel's plan on 256-bit vectors. Each row's block sum is the one-token
/// kernel's ([`tq2_block`]; for TQ1_0 [`tq1_block`]), the `R` rows' sums are reduced
/// together into four lanes, and the float epilogue runs on those lanes, one per row
/// (separate multiplies and adds, the scalar order). The rows are prefetched as one
/// stream, [`PREFETCH`] bytes ahead of the first row's block.
///
/// Why for TQ1_0 (since `d55b591`): without it, AVX2 decode ran [`tq1_dot`] block by block
/// and row by row, a horizontal sum per block and the scalar epilogue after it.
///
/// # Safety
/// AVX2 and F16C available; rows `r < R` readable at `w + r*stride` for `nb` whole blocks
/// (66 bytes for TQ2_0, 54 for TQ1_0); `a`, `bsum`, `dx` readable for `nb` entries; `out`
/// writable for `R`.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn tq_rows_f32<const R: usize, const TQ1: bool>(
    w: *const u8,
    stride: usize,
    nb: usize,
    a: *const BlockQ8K,
    bsum: *const i32,
    dx: *const f32,
    out: *mut f32,
) {
    let (bytes, scale_at) = super::tq_block_layout(TQ1);
    let pw = tq1_powers();
    let mut acc = _mm_setzero_ps();
    for b in 0..nb {
        let ahead = w.wrapping_add(PREFETCH + b * bytes * R);
        for line in 0..(bytes * R).div_ceil(64) {
            // Prefetch never faults, so the address may run past the rows.
            _mm_prefetch::<_MM_HINT_T1>(ahead.wrapping_add(line * 64) as *const i8);
        }
        // SAFETY: block b's 256 activations are readable (caller).
        let qs = unsafe { (*a.add(b)).qs.as_ptr() as *const u8 };
        let mut sums = [_mm256_setzero_si256(); 4];
        let mut h = _mm_setzero_si128();
        for (r, sr) in sums.iter_mut().enumerate().take(R) {
            let blk = w.wrapping_add(r * stride + b * bytes);
            // SAFETY: block b of row r is readable (caller): its code bytes and the scale.
            unsafe {
                *sr = if TQ1 {
                    tq1_block(blk, qs, &pw)
                } else {
                    tq2_block(blk, qs)
                };
                let d = i32::from((blk.add(scale_at) as *const i16).read_unaligned());
                h = match r {
                    0 => _mm_insert_epi16::<0>(h, d),
                    1 => _mm_insert_epi16::<1>(h, d),
                    2 => _mm_insert_epi16::<2>(h, d),
                    _ => _mm_insert_epi16::<3>(h, d),
                };
            }
        }
        let s4 = reduce4(sums);
        // SAFETY: entry b of bsum and dx is readable (caller).
        let (bs, d_x) = unsafe { (_mm_set1_epi32(*bsum.add(b)), _mm_set1_ps(*dx.add(b))) };
        let p = _mm_mul_ps(
            _mm_cvtepi32_ps(_mm_sub_epi32(s4, bs)),
            _mm_mul_ps(d_x, _mm_cvtph_ps(h)),
        );
        acc = _mm_add_ps(acc, p);
    }
    let mut lanes = [0f32; 4];
    // SAFETY: `lanes` is 16 bytes.
    unsafe { _mm_storeu_ps(lanes.as_mut_ptr(), acc) };
    for (r, &v) in lanes[..R].iter().enumerate() {
        // SAFETY: out[r] is writable for r < R (caller).
        unsafe { *out.add(r) = v };
    }
}

/// `Σ_j code_j · q_j` of one TQ1_0 block as eight i32 lanes (not yet reduced): its eight
/// vectors of 32 codes in element order ([`tq_codes`]) times the matching activations,
/// `vpmaddubsw` into 16-bit lanes (at most 8 · 2 · 2 · 128 = 4096: digits are 0..=2), then
/// `vpmaddwd`.
///
/// # Safety
/// AVX2 available; the block's 52 code bytes at `blk` and 256 activations at `qs` readable.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn tq1_block(blk: *const u8, qs: *const u8, pw: &(__m256i, __m256i)) -> __m256i {
    let mut s = _mm256_setzero_si256();
    for v in 0..8 {
        // SAFETY: the codes stay within the block's 52 code bytes, the activations within
        // its 256 (caller).
        let (c, q) = unsafe { (tq_codes::<true>(blk, v, pw), loadu(qs.add(32 * v))) };
        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(c, q));
    }
    _mm256_madd_epi16(s, _mm256_set1_epi16(1))
}

/// The lane sums of four vectors, `[Σa0, Σa1, Σa2, Σa3]` (exact: integer adds in any order).
#[inline]
#[target_feature(enable = "avx2")]
fn reduce4(a: [__m256i; 4]) -> __m128i {
    let h01 = _mm256_hadd_epi32(a[0], a[1]);
    let h23 = _mm256_hadd_epi32(a[2], a[3]);
    let hh = _mm256_hadd_epi32(h01, h23);
    _mm_add_epi32(
        _mm256_castsi256_si128(hh),
        _mm256_extracti128_si256::<1>(hh),
    )
}

/// Codes `32v..32v + 32` of one block (`v < 8`), in element order: for TQ2_0 chunk `v / 4`
/// at shift `2 (v mod 4)`; for TQ1_0 digit `v` of `qs[0..32]` for `v < 5`,
/// then `qs[32..48]` (in both lanes) at digits 0/1 and 2/3, then `qs[32..48]` digit 4
/// beside `qh`'s four digits.
///
/// # Safety
/// AVX2 available; the block's code bytes (64 for TQ2_0, 52 for TQ1_0) readable at `blk`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn tq_codes<const TQ1: bool>(blk: *const u8, v: usize, pw: &(__m256i, __m256i)) -> __m256i {
    // SAFETY: every load stays within the block's code bytes (caller).
    unsafe {
        if !TQ1 {
            let x = loadu(blk.add(32 * (v / 4)));
            let shifted = match v % 4 {
                0 => x,
                1 => _mm256_srli_epi16::<2>(x),
                2 => _mm256_srli_epi16::<4>(x),
                _ => _mm256_srli_epi16::<6>(x),
            };
            return _mm256_and_si256(shifted, _mm256_set1_epi8(3));
        }
        let mid = || _mm_loadu_si128(blk.add(32) as *const __m128i);
        // The products are taken on the bytes ⊕ 0x80 (x + 128 mod 256): every power of 3 is
        // odd, so 128 · 3ᵏ ≡ 128 and each product comes out flipped too, as [`digit`] wants
        // it (one flip per source instead of one per vector).
        let flip = |x: __m256i| _mm256_xor_si256(x, _mm256_set1_epi8(-128));
        // Byte products mod 256 by 3 as two adds (the chains of one block's vectors share
        // their steps once inlined); only vector 7's mixed powers take the multiplies.
        let times3 = |x: __m256i| _mm256_add_epi8(x, _mm256_add_epi8(x, x));
        let u = match v {
            0..5 => (0..v).fold(flip(loadu(blk)), |x, _| times3(x)),
            5 | 6 => {
                // ×1 in the low lane, ×3 in the high one; then ×9 for ×9 | ×27.
                let m = flip(_mm256_broadcastsi128_si256(mid()));
                let hi_lane = _mm256_set_epi64x(-1, -1, 0, 0);
                let u = _mm256_add_epi8(m, _mm256_and_si256(_mm256_add_epi8(m, m), hi_lane));
                if v == 5 { u } else { times3(times3(u)) }
            }
            _ => {
                let src = _mm256_inserti128_si256::<1>(
                    _mm256_castsi128_si256(mid()),
                    _mm_set1_epi32((blk.add(48) as *const i32).read_unaligned()),
                );
                mul_pows(flip(src), pw.0, pw.1)
            }
        };
        digit(u)
    }
}

/// The `(p_lo, p_hi)` operands of [`mul_pows`] for [`tq_codes`]'s last TQ1_0 vector
/// (`qs[32..48]` times 81 beside the four `qh` bytes times 1, 3, 9 and 27).
#[inline]
#[target_feature(enable = "avx2")]
fn tq1_powers() -> (__m256i, __m256i) {
    pow_operands(&QH_POWS)
}

/// See [`crate::simd::KernelTable::tq2_tile_f32`] (and `tq1_tile_f32` with `TQ1`): the
/// AVX-512 tile's plan on 256-bit vectors, `R` rows × `T` tokens (`R ≤ 2`, `T ≤ 4`). The
/// block's codes are decoded 32 at a time ([`tq_codes`]), each vector once for the `T`
/// tokens, and each token's 32 activations are loaded once for the `R` rows; products go
/// through `vpmaddubsw` into 16-bit sums per row and token (eight vectors of pairs: within
/// ±6144 with TQ2_0's code 3), widened by `vpmaddwd` once per block. The sums of a row's
/// tokens are reduced together ([`reduce4`]) into one 8-lane vector (row `r`, token `t` in
/// lane `4r + t`), and the float epilogue `(f32)(s − bsum) · (dx · d)` then `acc + that`
/// runs on it, block by block ([`tq_tile_step`]): the scalar order of every lane.
///
/// Why: without a tile, AVX2 prefill ran the one-token kernel per row and token, decoding
/// every block once per token: TQ1_0's digits (about 15 vector operations per 32 codes)
/// and TQ2_0's shifts, plus a reduction and a scalar epilogue per block and token.
///
/// # Safety
/// AVX2 and F16C available; rows `r < R` readable at `row + r*stride` for `nb` whole
/// blocks; `a` for `T * nb` Q8_K blocks (token `t`'s at `a[t*nb..]`); `bsum` and `dx` for
/// `4 * nb` entries; `out` writable for `4 * R` floats.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn tq_tile_f32<const R: usize, const T: usize, const TQ1: bool>(
    row: *const u8,
    stride: usize,
    a: *const BlockQ8K,
    nb: usize,
    bsum: *const i32,
    dx: *const f32,
    out: *mut f32,
) {
    let (bytes, scale_at) = super::tq_block_layout(TQ1);
    let pw = tq1_powers();
    let ones = _mm256_set1_epi16(1);
    let mut total = _mm256_setzero_ps();
    for b in 0..nb {
        let mut acc = [[_mm256_setzero_si256(); 4]; R];
        for v in 0..8 {
            let mut c = [_mm256_setzero_si256(); R];
            for (r, cr) in c.iter_mut().enumerate() {
                // SAFETY: row r's block b (caller).
                *cr = unsafe { tq_codes::<TQ1>(row.wrapping_add(r * stride + b * bytes), v, &pw) };
            }
            for t in 0..T {
                // SAFETY: token t's block b holds 256 activations; 32 at 32v.
                let q =
                    unsafe { loadu(((*a.add(t * nb + b)).qs.as_ptr() as *const u8).add(32 * v)) };
                for r in 0..R {
                    acc[r][t] = _mm256_add_epi16(acc[r][t], _mm256_maddubs_epi16(c[r], q));
                }
            }
        }
        let mut s = [_mm_setzero_si128(); 2];
        let mut h = [0i32; 2];
        for r in 0..R {
            s[r] = reduce4(acc[r].map(|v| _mm256_madd_epi16(v, ones)));
            let blk = row.wrapping_add(r * stride + b * bytes);
            // SAFETY: row r's block b's f16 scale (caller).
            h[r] = i32::from(unsafe { (blk.add(scale_at) as *const i16).read_unaligned() });
        }
        // SAFETY: entries 4b..4b+4 of bsum and dx are readable (caller).
        total = unsafe { tq_tile_step(total, s, h, bsum.add(4 * b), dx.add(4 * b)) };
    }
    // SAFETY: out holds 4 * R floats (caller).
    unsafe { store_lanes(total, out, 4 * R) };
}

/// One block of the TQ tiles' float epilogue (AVX2 and AVX-512): the lane sums `s` (row
/// `r`'s four tokens in `s[r]`) become `(f32)(s − bsum) · (dx · d_r)`, with the four tokens'
/// `bsum` and `dx` of the block and row `r`'s f16 scale bits `h[r]`, and are added to
/// `total` (lane `4r + t`): separate multiplies and adds, the scalar order of every lane.
///
/// # Safety
/// AVX2 and F16C available; four entries readable at `bsum` and at `dx`.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn tq_tile_step(
    total: __m256,
    s: [__m128i; 2],
    h: [i32; 2],
    bsum: *const i32,
    dx: *const f32,
) -> __m256 {
    let d = h.map(|h| _mm_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(h))));
    let sums = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(s[0]), s[1]);
    // SAFETY: four entries at bsum and dx (caller). Both through unaligned loads: `dx` is
    // only 4-byte aligned, so a `&__m128` of it would be an invalid reference (found by Miri).
    let (bs, dxv) = unsafe {
        (
            _mm256_broadcastsi128_si256(_mm_loadu_si128(bsum as *const __m128i)),
            _mm256_broadcast_ps(&_mm_loadu_ps(dx)),
        )
    };
    let dw = _mm256_insertf128_ps::<1>(_mm256_castps128_ps256(d[0]), d[1]);
    let p = _mm256_mul_ps(
        _mm256_cvtepi32_ps(_mm256_sub_epi32(sums, bs)),
        _mm256_mul_ps(dxv, dw),
    );
    _mm256_add_ps(total, p)
}

/// Writes the first `n` (at most 8) lanes of `v` to `out`.
///
/// # Safety
/// AVX available; `out` writable for `n ≤ 8` floats.
#[inline]
#[target_feature(enable = "avx")]
pub(super) unsafe fn store_lanes(v: __m256, out: *mut f32, n: usize) {
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` is 32 bytes.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
    // SAFETY: out holds n ≤ 8 floats (caller).
    unsafe { core::ptr::copy_nonoverlapping(lanes.as_ptr(), out, n.min(8)) };
}

/// `(s_i * pow_i) mod 256` for every byte: `p_lo`/`p_hi` hold the even/odd bytes' powers as
/// 16-bit lanes (x86 has no byte multiply). With [`digit`], nine operations per 32 bytes.
/// Measured against a form with two more multiplies (each byte moved to the high half of its
/// lane, `vpmullw`, then `vpmulhuw` by 3 for the digit: eight operations): the TQ1_0 GEMV
/// ran at half the speed on a Zen 3 core, 10.5 against 20.7 G weights/s.
#[inline]
#[target_feature(enable = "avx2")]
fn mul_pows(s: __m256i, p_lo: __m256i, p_hi: __m256i) -> __m256i {
    let hi_mask = _mm256_set1_epi16(0xff00u16 as i16);
    let lo = _mm256_mullo_epi16(s, p_lo);
    let hi = _mm256_mullo_epi16(_mm256_and_si256(s, hi_mask), p_hi);
    _mm256_blendv_epi8(lo, hi, hi_mask)
}

/// `(u_i * 3) >> 8` for every byte `u_i` of a product given flipped (`f = u ⊕ 0x80`): the
/// base-3 digit of a byte already multiplied by its power.
#[inline]
#[target_feature(enable = "avx2")]
fn digit(f: __m256i) -> __m256i {
    // (u · 3) >> 8 = [u > 85] + [u > 170] for every byte u. The unsigned compares are signed
    // ones on u ⊕ 0x80; each gives −1 where true.
    let gt = |t: u8| _mm256_cmpgt_epi8(f, _mm256_set1_epi8((t ^ 0x80) as i8));
    _mm256_sub_epi8(_mm256_setzero_si256(), _mm256_add_epi8(gt(85), gt(170)))
}

/// Splits 32 per-byte powers into the `(p_lo, p_hi)` operands of [`mul_pows`].
#[inline]
#[target_feature(enable = "avx2")]
fn pow_operands(pows: &[u8; 32]) -> (__m256i, __m256i) {
    // SAFETY: `pows` is 32 bytes.
    let v = unsafe { loadu(pows.as_ptr()) };
    (
        _mm256_and_si256(v, _mm256_set1_epi16(0x00ff)),
        _mm256_srli_epi16::<8>(v),
    )
}

/// The per-byte powers of [`tq_codes`]'s last TQ1_0 vector: 81 for `qs[32..48]` (low lane),
/// then 1, 3, 9, 27 for the four repeats of the `qh` bytes (high lane).
const QH_POWS: [u8; 32] = [
    81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, 81, //
    1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27,
];

/// See [`crate::simd::KernelTable::tq1_dot`]. Decodes each block into eight vectors of 32
/// codes in element order ([`tq_codes`]) and multiplies them with the matching activations
/// into 16-bit sums (within ±4096), widened once per block.
///
/// # Safety
/// AVX2 available; `row` readable for `out.len()` 54-byte blocks, `a` for `out.len()` blocks.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn tq1_dot(row: *const u8, a: *const BlockQ8K, out: &mut [i32]) {
    let pw = tq1_powers();
    for (b, o) in out.iter_mut().enumerate() {
        // SAFETY: block b of the row and of the activations exist (caller).
        *o = hsum(unsafe { tq1_block(row.add(b * 54), (*a.add(b)).qs.as_ptr() as *const u8, &pw) });
    }
}

/// See [`crate::simd::KernelTable::absmax_bits`].
///
/// # Safety
/// AVX2 available.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn absmax_bits(x: &[f32]) -> u32 {
    let m = _mm256_set1_epi32(0x7fff_ffff);
    let mut acc = _mm256_setzero_si256();
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        // SAFETY: `c` has 8 f32 = 32 bytes.
        let v = unsafe { loadu(c.as_ptr() as *const u8) };
        acc = _mm256_max_epu32(acc, _mm256_and_si256(v, m));
    }
    let mut lanes = [0u32; 8];
    // SAFETY: `lanes` is 32 writable bytes.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, acc) };
    let head = lanes.into_iter().max().unwrap_or(0);
    tail.iter()
        .map(|v| v.to_bits() & 0x7fff_ffff)
        .fold(head, u32::max)
}

/// See [`crate::simd::KernelTable::quant_i8`]: `vroundps` (nearest, ties to even) on `x * s`,
/// clamp, convert, pack; 32 values per step.
///
/// # Safety
/// AVX2 available; `q.len() >= x.len()`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn quant_i8(x: &[f32], s: f32, q: &mut [i8]) -> i32 {
    let sv = _mm256_set1_ps(s);
    let lo = _mm256_set1_ps(-128.0);
    let hi = _mm256_set1_ps(127.0);
    let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let mut sum = _mm256_setzero_si256();
    let n32 = x.len() / 32 * 32;
    for i in (0..n32).step_by(32) {
        let mut v = [_mm256_setzero_si256(); 4];
        for (j, vj) in v.iter_mut().enumerate() {
            // SAFETY: i + 8j + 8 <= n32 <= x.len().
            let f = unsafe { _mm256_loadu_ps(x.as_ptr().add(i + 8 * j)) };
            let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm256_mul_ps(f, sv),
            );
            *vj = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi));
            sum = _mm256_add_epi32(sum, *vj);
        }
        let p16a = _mm256_packs_epi32(v[0], v[1]);
        let p16b = _mm256_packs_epi32(v[2], v[3]);
        let p8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p16a, p16b), perm);
        // SAFETY: q has at least x.len() >= i + 32 bytes.
        unsafe { _mm256_storeu_si256(q.as_mut_ptr().add(i) as *mut __m256i, p8) };
    }
    let mut total = hsum(sum);
    for (o, &v) in q[n32..x.len()].iter_mut().zip(&x[n32..]) {
        let r = (v * s).round_ties_even().clamp(-128.0, 127.0) as i8;
        total += r as i32;
        *o = r;
    }
    total
}

/// See [`crate::simd::KernelTable::dot_f16`]: 32 halves per step (`vcvtph2ps` from
/// memory), four FMA accumulators, no software prefetch (as the AVX-512 variant). On a Zen 3
/// core (no AVX-512), over a 657 MB head in anonymous memory, 1 thread, twelve alternated
/// passes: 14.0 GB/s without against 13.0 with a `T1` prefetch 8 KiB ahead; whole model,
/// 1 thread, the head's stage 44.4 against 45.8 ms per token (2 threads: alike).
///
/// # Safety
/// AVX2, F16C and FMA available; `w.len() == 2 * x.len()`.
#[target_feature(enable = "avx2,f16c,fma")]
pub(super) unsafe fn dot_f16(w: &[u8], x: &[f32]) -> f32 {
    let n = x.len();
    let mut acc = [_mm256_setzero_ps(); 4];
    let n32 = n / 32 * 32;
    for i in (0..n32).step_by(32) {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: i + 8k + 8 <= n32 <= n elements of x and 2n bytes of w.
            unsafe {
                let h = _mm_loadu_si128(w.as_ptr().add(2 * (i + 8 * k)) as *const __m128i);
                let xv = _mm256_loadu_ps(x.as_ptr().add(i + 8 * k));
                *a = _mm256_fmadd_ps(_mm256_cvtph_ps(h), xv, *a);
            }
        }
    }
    let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut lanes = [0f32; 8];
    // SAFETY: 8 writable floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), s) };
    lanes.iter().sum::<f32>() + crate::simd::scalar::dot_f16(&w[2 * n32..], &x[n32..])
}

/// See [`crate::simd::KernelTable::dot_i8`]: `vpmaddubsw(|x|, sign(x)·w)`, the sign moved
/// onto the weights so the unsigned operand is `|x| ≤ 128` and, with `|w| ≤ 127`, a pair of
/// products stays within ±32 512 (no 16-bit saturation); `vpmaddwd` widens to i32.
/// Prefetches the weights [`PREFETCH`] bytes ahead (they stream from memory; `x` is reused).
///
/// # Safety
/// AVX2 available; `w.len() == x.len()`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn dot_i8(w: &[i8], x: &[i8]) -> i32 {
    let n = w.len();
    let n32 = n / 32 * 32;
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_si256();
    for i in (0..n32).step_by(32) {
        // Prefetch never faults, so the address may run past the slice.
        _mm_prefetch::<_MM_HINT_T1>(w.as_ptr().wrapping_add(i + PREFETCH));
        // SAFETY: i + 32 <= n32 <= n bytes of both slices.
        unsafe {
            let wv = loadu(w.as_ptr().add(i) as *const u8);
            let xv = loadu(x.as_ptr().add(i) as *const u8);
            let p = _mm256_maddubs_epi16(_mm256_abs_epi8(xv), _mm256_sign_epi8(wv, xv));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
        }
    }
    hsum(acc) + crate::simd::scalar::dot_i8(&w[n32..], &x[n32..])
}
