//! AVX-512 VNNI kernels: `vpdpbusd` multiplies unsigned codes by signed activations and
//! adds groups of four straight into i32 lanes (no 16-bit intermediate, no saturation).
//! One 64-byte load covers two I2_S blocks (one QK256 block) or one TQ2_0 block's codes.

use core::arch::x86_64::*;

use crate::act::BlockQ8K;

use super::PREFETCH;

/// Activation layout for [`i2_dot`]: for each 256-element pair of I2_S blocks and each
/// group `g < 4`, the 32 activations of block A's group `g` followed by block B's — the order
/// in which one 64-byte weight load's lanes meet them. Safe, plain byte moves.
pub(super) fn arrange_pairs(q: &[i8], out: &mut [i8]) {
    for (src, dst) in q.chunks_exact(256).zip(out.chunks_exact_mut(256)) {
        for g in 0..4 {
            dst[g * 64..g * 64 + 32].copy_from_slice(&src[g * 32..g * 32 + 32]);
            dst[g * 64 + 32..g * 64 + 64].copy_from_slice(&src[128 + g * 32..128 + g * 32 + 32]);
        }
    }
}

/// One row, streamed front to back (DRAM-friendly: rows are contiguous, so consecutive calls
/// read one sequential stream), with one accumulator per group. Groups are isolated by
/// masking in place (`0xC0`, `0x30`, `0x0C`, `0x03`), without shifting: accumulator `g` then
/// holds exactly `4^(3-g) · S_g` (every product is a multiple of it, and |lane| stays far
/// below 2³¹: 192·128·4 per pair), so one exact arithmetic shift per accumulator at the end
/// recovers `S_g`. That saves three shifts per 64 bytes of weights.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn i2_row(w: *const u8, nblk: usize, q: *const i8) -> i32 {
    let m0 = _mm512_set1_epi8(0xC0u8 as i8);
    let m1 = _mm512_set1_epi8(0x30);
    let m2 = _mm512_set1_epi8(0x0C);
    let m3 = _mm512_set1_epi8(0x03);
    let mut acc = [_mm512_setzero_si512(); 4];
    let pairs = nblk / 2;
    for p in 0..pairs {
        let ptr = w.wrapping_add(p * 64);
        // Prefetch never faults, so the address may run past the slice.
        _mm_prefetch::<_MM_HINT_T1>(ptr.wrapping_add(PREFETCH) as *const i8);
        // SAFETY: pair p of the row and its 256 arranged activations are in bounds (caller).
        unsafe {
            let v = _mm512_loadu_si512(ptr as *const __m512i);
            let qp = q.add(p * 256) as *const __m512i;
            acc[0] = _mm512_dpbusd_epi32(acc[0], _mm512_and_si512(v, m0), _mm512_loadu_si512(qp));
            acc[1] = _mm512_dpbusd_epi32(
                acc[1],
                _mm512_and_si512(v, m1),
                _mm512_loadu_si512(qp.add(1)),
            );
            acc[2] = _mm512_dpbusd_epi32(
                acc[2],
                _mm512_and_si512(v, m2),
                _mm512_loadu_si512(qp.add(2)),
            );
            acc[3] = _mm512_dpbusd_epi32(
                acc[3],
                _mm512_and_si512(v, m3),
                _mm512_loadu_si512(qp.add(3)),
            );
        }
    }
    let sum = _mm512_add_epi32(
        _mm512_add_epi32(
            _mm512_srai_epi32::<6>(acc[0]),
            _mm512_srai_epi32::<4>(acc[1]),
        ),
        _mm512_add_epi32(_mm512_srai_epi32::<2>(acc[2]), acc[3]),
    );
    let mut total = _mm512_reduce_add_epi32(sum);
    if nblk % 2 == 1 {
        // The odd last block: its activations sit in element order at the end, since a
        // trailing half pair is never rearranged (see `arrange_pairs` callers: rows of an odd
        // block count only occur in I2_S, whose activations are padded to 256 and arranged
        // per whole 256; the half pair's group g then sits at g*64 within the pair).
        let b = nblk - 1;
        let m = _mm256_set1_epi8(3);
        // SAFETY: the last block and the first half of its arranged pair are in bounds.
        unsafe {
            let v = _mm256_loadu_si256(w.add(b * 32) as *const __m256i);
            let qp = q.add(pairs * 256) as *const u8;
            let ld = |g: usize| _mm256_loadu_si256(qp.add(g * 64) as *const __m256i);
            let mut a = _mm256_dpbusd_epi32(
                _mm256_setzero_si256(),
                _mm256_and_si256(_mm256_srli_epi16::<6>(v), m),
                ld(0),
            );
            a = _mm256_dpbusd_epi32(a, _mm256_and_si256(_mm256_srli_epi16::<4>(v), m), ld(1));
            a = _mm256_dpbusd_epi32(a, _mm256_and_si256(_mm256_srli_epi16::<2>(v), m), ld(2));
            a = _mm256_dpbusd_epi32(a, _mm256_and_si256(v, m), ld(3));
            total += super::avx2::hsum(a);
        }
    }
    total
}

/// See [`crate::simd::KernelTable::i2_dot`]; `q` arranged by [`arrange_pairs`].
///
/// # Safety
/// AVX-512 F/BW/VL + VNNI available; `w` readable for `(out.len()-1)*stride + nblk*32`
/// bytes, `q` for `ceil(nblk/2)*256`; `out.len()` ≥ 1.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn i2_dot(
    w: *const u8,
    stride: usize,
    nblk: usize,
    q: *const i8,
    out: &mut [i32],
) {
    for (r, o) in out.iter_mut().enumerate() {
        // SAFETY: forwarded caller contract; row r starts at r * stride.
        *o = unsafe { i2_row(w.add(r * stride), nblk, q) };
    }
}

/// Up to four tokens against one row: each 64-byte weight chunk is masked once and meets
/// every token's activations (16 accumulators), the prefill (GEMM) inner loop.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn i2_row_tokens<const T: usize>(
    w: *const u8,
    nblk: usize,
    q: *const i8,
    q_stride: usize,
) -> [i32; T] {
    let masks = [
        _mm512_set1_epi8(0xC0u8 as i8),
        _mm512_set1_epi8(0x30),
        _mm512_set1_epi8(0x0C),
        _mm512_set1_epi8(0x03),
    ];
    let mut acc = [[_mm512_setzero_si512(); 4]; T];
    let pairs = nblk / 2;
    for p in 0..pairs {
        // SAFETY: pair p of the row and of each token's arranged activations are in bounds.
        unsafe {
            let v = _mm512_loadu_si512(w.add(p * 64) as *const __m512i);
            let c = masks.map(|m| _mm512_and_si512(v, m));
            for (t, a) in acc.iter_mut().enumerate() {
                let qp = q.add(t * q_stride + p * 256) as *const __m512i;
                for g in 0..4 {
                    a[g] = _mm512_dpbusd_epi32(a[g], c[g], _mm512_loadu_si512(qp.add(g)));
                }
            }
        }
    }
    let mut out = [0i32; T];
    for (o, a) in out.iter_mut().zip(&acc) {
        let sum = _mm512_add_epi32(
            _mm512_add_epi32(_mm512_srai_epi32::<6>(a[0]), _mm512_srai_epi32::<4>(a[1])),
            _mm512_add_epi32(_mm512_srai_epi32::<2>(a[2]), a[3]),
        );
        *o = _mm512_reduce_add_epi32(sum);
    }
    if nblk % 2 == 1 {
        for (t, o) in out.iter_mut().enumerate() {
            // SAFETY: as in `i2_row`: the last block and its half pair are in bounds.
            *o += unsafe { i2_row(w.add(pairs * 64), 1, q.add(t * q_stride + pairs * 256)) };
        }
    }
    out
}

/// See [`crate::simd::KernelTable::i2_dot_tokens`]; `q` arranged by [`arrange_pairs`].
///
/// # Safety
/// AVX-512 F/BW/VL + VNNI available; `w` readable for `nblk*32` bytes; `q` for
/// `(out.len()-1)*q_stride + ceil(nblk/2)*256`; `out.len()` in 1..=4.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn i2_dot_tokens(
    w: *const u8,
    nblk: usize,
    q: *const i8,
    q_stride: usize,
    out: &mut [i32],
) {
    // SAFETY: forwarded caller contract.
    unsafe {
        match out.len() {
            1 => out.copy_from_slice(&i2_row_tokens::<1>(w, nblk, q, q_stride)),
            2 => out.copy_from_slice(&i2_row_tokens::<2>(w, nblk, q, q_stride)),
            3 => out.copy_from_slice(&i2_row_tokens::<3>(w, nblk, q, q_stride)),
            _ => out.copy_from_slice(&i2_row_tokens::<4>(w, nblk, q, q_stride)),
        }
    }
}

/// `rounds` rounds of 12 independent `vpdpbusd` (register operands only, no loads): the
/// instruction's throughput, i.e. the int8 multiply-add peak of one core. Returns a checksum
/// so the work cannot be dropped.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) fn dpbusd_peak_loop(rounds: usize) -> i32 {
    let a = _mm512_set1_epi8(3);
    let b = _mm512_set1_epi8(5);
    let mut acc = [_mm512_setzero_si512(); 12];
    for _ in 0..rounds {
        for x in acc.iter_mut() {
            *x = _mm512_dpbusd_epi32(*x, a, b);
        }
    }
    let s = acc
        .iter()
        .fold(_mm512_setzero_si512(), |s, &x| _mm512_add_epi32(s, x));
    _mm512_reduce_add_epi32(s)
}

/// Codes of group `g` (bits `6-2g`) of every byte of `v` as 0..=3 (`(v >> s) & 3` on 16-bit
/// lanes: the bits that cross from the high byte land above bit 1 and are masked off).
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn plane<const S: u32>(v: __m512i, three: __m512i) -> __m512i {
    _mm512_and_si512(_mm512_srli_epi16::<S>(v), three)
}

/// Token counts of the AVX-512 prefill tile ([`i2_dot_tile`]).
pub(super) const TILE_TOKENS: &[usize] = &[4];

/// Four rows × four tokens (`tokens` is 4), the prefill's register tile, over `quads`
/// groups of four rows: per pair of blocks, each row's 64 bytes are loaded once and decoded group by group to
/// codes 0..=3 (shift and mask), each token's 64 activations of a group are loaded once, and
/// 16 `vpdpbusd` update one accumulator per row × token. Against [`i2_row_tokens`] (one row,
/// four tokens, masks in place) that is 20 loads per 64 `vpdpbusd` instead of 68, for 28
/// shift/mask ops instead of 16. Each token's four row sums are reduced together
/// ([`reduce4`]) and stored as one vector: `out[t*out_stride + 4*quad + r]`.
///
/// # Safety
/// AVX-512 F/BW/VL + VNNI available; `w` readable for `(4*quads - 1)*stride + nblk*32`
/// bytes; `q` for `3*q_stride + ceil(nblk/2)*256`; `out` writable at `t*out_stride + i` for
/// `t < 4`, `i < 4*quads`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
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
    debug_assert_eq!(tokens, 4, "the AVX-512 tile takes four tokens");
    for quad in 0..quads {
        // SAFETY: rows 4*quad..4*quad+4 are in bounds (caller), the rest as for this function.
        let sums = unsafe { i2_tile_sums(w.add(4 * quad * stride), stride, nblk, q, q_stride) };
        for (t, &st) in sums.iter().enumerate() {
            // SAFETY: four i32 at `t*out_stride + 4*quad`, writable (caller).
            unsafe { _mm_storeu_si128(out.add(t * out_stride + 4 * quad) as *mut __m128i, st) };
        }
    }
}

/// One four-row × four-token tile of [`i2_dot_tile`]: per token `t`, the sums of rows 0..4
/// as one vector.
///
/// # Safety
/// As [`i2_dot_tile`] with `quads == 1`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn i2_tile_sums(
    w: *const u8,
    stride: usize,
    nblk: usize,
    q: *const i8,
    q_stride: usize,
) -> [__m128i; 4] {
    let three = _mm512_set1_epi8(3);
    // acc[t][r]: token t, row r.
    let mut acc = [[_mm512_setzero_si512(); 4]; 4];
    let pairs = nblk / 2;
    for p in 0..pairs {
        // SAFETY: pair p of rows 0..4 and of tokens 0..4 is in bounds (caller).
        unsafe {
            let v: [__m512i; 4] = core::array::from_fn(|r| {
                _mm512_loadu_si512(w.add(r * stride + p * 64) as *const __m512i)
            });
            let qp = |t: usize, g: usize| {
                _mm512_loadu_si512(q.add(t * q_stride + p * 256 + g * 64) as *const __m512i)
            };
            let mut group = |g: usize, c: [__m512i; 4]| {
                for (t, at) in acc.iter_mut().enumerate() {
                    let a = qp(t, g);
                    for (x, &cr) in at.iter_mut().zip(&c) {
                        *x = _mm512_dpbusd_epi32(*x, cr, a);
                    }
                }
            };
            group(0, v.map(|x| plane::<6>(x, three)));
            group(1, v.map(|x| plane::<4>(x, three)));
            group(2, v.map(|x| plane::<2>(x, three)));
            group(3, v.map(|x| _mm512_and_si512(x, three)));
        }
    }
    // Reduced before the odd block's calls, so the 16 accumulators need not survive them.
    let mut sums: [__m128i; 4] = core::array::from_fn(|t| reduce4(acc[t]));
    if nblk % 2 == 1 {
        for (t, st) in sums.iter_mut().enumerate() {
            // SAFETY: as in `i2_row`: the last block and its half pair are in bounds.
            let tail: [i32; 4] = core::array::from_fn(|r| unsafe {
                i2_row(
                    w.add(r * stride + pairs * 64),
                    1,
                    q.add(t * q_stride + pairs * 256),
                )
            });
            *st = _mm_add_epi32(*st, _mm_setr_epi32(tail[0], tail[1], tail[2], tail[3]));
        }
    }
    sums
}

/// Activation layout for [`tq2_dot`]: for each group `g < 4` of a 256-value Q8_K block, the
/// 32 values `32g..32g+32` followed by `128+32g..128+32g+32` — the order in which the lanes
/// of one 64-byte TQ2_0 code load meet them at shift `2g`. Safe, plain byte moves.
pub(super) fn arrange_tq2(q: &[i8], out: &mut [i8]) {
    for g in 0..4 {
        out[g * 64..g * 64 + 32].copy_from_slice(&q[g * 32..g * 32 + 32]);
        out[g * 64 + 32..g * 64 + 64].copy_from_slice(&q[128 + g * 32..128 + g * 32 + 32]);
    }
}

/// One TQ2_0 block's 64 code bytes `v` as its four groups of 64 codes (shifts 0, 2, 4, 6):
/// the order of the [`arrange_tq2`] layout.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn tq2_codes(v: __m512i) -> [__m512i; 4] {
    let mask = _mm512_set1_epi8(3);
    [
        _mm512_and_si512(v, mask),
        _mm512_and_si512(_mm512_srli_epi16::<2>(v), mask),
        _mm512_and_si512(_mm512_srli_epi16::<4>(v), mask),
        _mm512_and_si512(_mm512_srli_epi16::<6>(v), mask),
    ]
}

/// `Σ_j code_j · q_j` of four vectors of 64 codes against the 256 activations at `qs`, as
/// 16 i32 lanes (not yet reduced).
///
/// # Safety
/// AVX-512 F/BW and VNNI available; 256 bytes readable at `qs`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn codes_dot(c: [__m512i; 4], qs: *const u8) -> __m512i {
    let q = qs as *const __m512i;
    let mut acc = _mm512_setzero_si512();
    for (k, ck) in c.into_iter().enumerate() {
        // SAFETY: 64 bytes at 64k < 256 (caller).
        acc = _mm512_dpbusd_epi32(acc, ck, unsafe { _mm512_loadu_si512(q.add(k)) });
    }
    acc
}

/// `Σ_j code_j · q_j` of one TQ2_0 block as 16 i32 lanes (not yet reduced); `qs` in the
/// [`arrange_tq2`] layout.
///
/// # Safety
/// AVX-512 F/BW and VNNI available; 64 code bytes at `blk` and 256 activations at `qs`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tq2_block(blk: *const u8, qs: *const u8) -> __m512i {
    // SAFETY: the caller passes a block with 64 readable code bytes and 256 activations.
    unsafe { codes_dot(tq2_codes(_mm512_loadu_si512(blk as *const __m512i)), qs) }
}

/// Base-3 digits of 64 stored TQ1_0 bytes `s`, one power per byte (`p_lo`/`p_hi`: the
/// powers of the low and high byte of every 16-bit lane): `u = (s · p) mod 256` by two
/// 16-bit multiplies (x86 has no byte multiply) and a byte blend, then `(u · 3) >> 8` as
/// `[u ≥ 86] + [u ≥ 171]` by two byte compares (the same value for every `u < 256`; the
/// multiply by 3 in 16-bit lanes had compiled to widening, adds and narrowing).
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn tq1_digits(s: __m512i, (p_lo, p_hi): (__m512i, __m512i)) -> __m512i {
    let hi_bytes = _mm512_set1_epi16(0xff00u16 as i16);
    let lo = _mm512_mullo_epi16(s, p_lo);
    let hi = _mm512_mullo_epi16(_mm512_and_si512(s, hi_bytes), p_hi);
    let u = _mm512_mask_blend_epi8(0xAAAA_AAAA_AAAA_AAAA, lo, hi);
    let one = _mm512_set1_epi8(1);
    let ge86 = _mm512_cmpge_epu8_mask(u, _mm512_set1_epi8(86));
    let ge171 = _mm512_cmpge_epu8_mask(u, _mm512_set1_epi8(171u8 as i8));
    _mm512_add_epi8(
        _mm512_maskz_mov_epi8(ge86, one),
        _mm512_maskz_mov_epi8(ge171, one),
    )
}

/// Per-byte powers of [`tq1_dot`]'s four digit vectors, as `(p_lo, p_hi)` operands of
/// [`tq1_digits`]: elements 0..64 (`qs[0..32]` digits 0 and 1), 64..128 (digits 2 and 3),
/// 128..192 (digit 4, then `qs[32..48]` digits 0 and 1) and 192..256 (`qs[32..48]` digits 2,
/// 3 and 4, then `qh` digits 0..3).
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn tq1_powers() -> [(__m512i, __m512i); 4] {
    const fn pows(parts: [[u8; 16]; 4]) -> [u8; 64] {
        let mut out = [0u8; 64];
        let mut i = 0;
        while i < 64 {
            out[i] = parts[i / 16][i % 16];
            i += 1;
        }
        out
    }
    const QH: [u8; 16] = [1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27];
    const P: [[u8; 64]; 4] = [
        pows([[1; 16], [1; 16], [3; 16], [3; 16]]),
        pows([[9; 16], [9; 16], [27; 16], [27; 16]]),
        pows([[81; 16], [81; 16], [1; 16], [3; 16]]),
        pows([[9; 16], [27; 16], [81; 16], QH]),
    ];
    P.map(|p| {
        // SAFETY: `p` is 64 bytes.
        let v = unsafe { _mm512_loadu_si512(p.as_ptr() as *const __m512i) };
        (
            _mm512_and_si512(v, _mm512_set1_epi16(0x00ff)),
            _mm512_srli_epi16::<8>(v),
        )
    })
}

/// See [`crate::simd::KernelTable::tq1_dot`]: each 54-byte block as four vectors of 64
/// codes in element order ([`tq1_powers`]): `qs[0..32]` in both halves, then beside
/// `qs[32..48]` (in both quarters of a half), then `qs[32..48]` beside `qh` (four times),
/// so that one `vpdpbusd` takes 64 consecutive activations. Twice the width of the AVX2
/// kernel, and `vpdpbusd` instead of `vpmaddubsw` plus adds.
///
/// # Safety
/// AVX-512 F/BW and VNNI available; `row` readable for `out.len()` 54-byte blocks, `a` for
/// `out.len()` blocks.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn tq1_dot(row: *const u8, a: *const BlockQ8K, out: &mut [i32]) {
    let pw = tq1_powers();
    for (b, o) in out.iter_mut().enumerate() {
        // SAFETY: block b of the row and of the activations exist (caller).
        *o = unsafe {
            _mm512_reduce_add_epi32(tq1_block(
                row.add(b * 54),
                (*a.add(b)).qs.as_ptr() as *const u8,
                &pw,
            ))
        };
    }
}

/// One TQ1_0 block's 256 codes as four vectors of 64 in element order, `pw` from
/// [`tq1_powers`].
///
/// # Safety
/// AVX-512 F/BW available; bytes 0..52 of the block at `blk` readable.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn tq1_codes(blk: *const u8, pw: &[(__m512i, __m512i); 4]) -> [__m512i; 4] {
    // SAFETY: the loads read bytes 0..32, 32..48 and 48..52 of the block (caller).
    let (head, mid, qh) = unsafe {
        (
            _mm256_loadu_si256(blk as *const __m256i),
            _mm_loadu_si128(blk.add(32) as *const __m128i),
            (blk.add(48) as *const i32).read_unaligned(),
        )
    };
    let mid2 = _mm256_broadcastsi128_si256(mid);
    let tail = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(mid), _mm_set1_epi32(qh));
    let heads = _mm512_broadcast_i64x4(head);
    [
        tq1_digits(heads, pw[0]),
        tq1_digits(heads, pw[1]),
        tq1_digits(
            _mm512_inserti64x4::<1>(_mm512_castsi256_si512(head), mid2),
            pw[2],
        ),
        tq1_digits(
            _mm512_inserti64x4::<1>(_mm512_castsi256_si512(mid2), tail),
            pw[3],
        ),
    ]
}

/// `Σ_j code_j · q_j` of one TQ1_0 block as 16 i32 lanes (not yet reduced), `pw` from
/// [`tq1_powers`]; `qs` in element order.
///
/// # Safety
/// AVX-512 F/BW and VNNI available; bytes 0..52 of the block at `blk` and 256 activations
/// at `qs` readable.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tq1_block(blk: *const u8, qs: *const u8, pw: &[(__m512i, __m512i); 4]) -> __m512i {
    // SAFETY: the block's bytes 0..52 and 256 activations are readable (caller).
    unsafe { codes_dot(tq1_codes(blk, pw), qs) }
}

/// The lane sums of four vectors, `[Σa0, Σa1, Σa2, Σa3]`, in 11 instructions instead of
/// four separate reductions (exact: integer adds in any order).
#[inline]
#[target_feature(enable = "avx512f,avx2")]
fn reduce4(a: [__m512i; 4]) -> __m128i {
    let half =
        |v: __m512i| _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v));
    let h01 = _mm256_hadd_epi32(half(a[0]), half(a[1]));
    let h23 = _mm256_hadd_epi32(half(a[2]), half(a[3]));
    let h = _mm256_hadd_epi32(h01, h23);
    _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h))
}

/// See [`crate::simd::KernelTable::tq2_dot`]: activations in the [`arrange_tq2`] layout
/// (one 64-byte load per code group), blocks four at a time, their lane sums reduced
/// together ([`reduce4`]); a tail of 1–3 blocks is reduced one by one.
///
/// # Safety
/// AVX-512 + VNNI available; `row` readable for `out.len()` 66-byte blocks, `a` likewise.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn tq2_dot(row: *const u8, a: *const BlockQ8K, out: &mut [i32]) {
    let n = out.len();
    let mut b = 0;
    while b + 4 <= n {
        // Prefetch never faults: the group's 264 bytes, [`PREFETCH`] ahead, in five lines.
        let ahead = row.wrapping_add(b * 66 + PREFETCH);
        for line in 0..5 {
            _mm_prefetch::<_MM_HINT_T1>(ahead.wrapping_add(line * 64) as *const i8);
        }
        // SAFETY: blocks b..b+4 exist in both (caller); 64 of each block's 66 bytes are loaded.
        let v = unsafe {
            let (w, q) = (row.add(b * 66), a.add(b));
            let qs = |i: usize| (*q.add(i)).qs.as_ptr() as *const u8;
            reduce4([
                tq2_block(w, qs(0)),
                tq2_block(w.add(66), qs(1)),
                tq2_block(w.add(132), qs(2)),
                tq2_block(w.add(198), qs(3)),
            ])
        };
        // SAFETY: out[b..b + 4] is in bounds (b + 4 <= n).
        unsafe { _mm_storeu_si128(out.as_mut_ptr().add(b) as *mut __m128i, v) };
        b += 4;
    }
    for (i, o) in out[b..].iter_mut().enumerate() {
        _mm_prefetch::<_MM_HINT_T1>(row.wrapping_add((b + i) * 66 + PREFETCH) as *const i8);
        // SAFETY: block b + i exists in both (caller).
        *o = unsafe {
            _mm512_reduce_add_epi32(tq2_block(
                row.add((b + i) * 66),
                (*a.add(b + i)).qs.as_ptr() as *const u8,
            ))
        };
    }
}

/// See [`crate::simd::KernelTable::tq2_rows_f32`] (and `tq1_rows_f32` with `TQ1`: 54-byte
/// blocks, scale at byte 52): `R` rows block by block, the block's 256 activations read
/// from L1 for each row. Each row's block sum comes from four `vpdpbusd` ([`tq2_block`],
/// [`tq1_block`]) and the `R` sums are reduced together ([`reduce4`]), so the float
/// epilogue runs on a four-lane vector, one lane per row: `(f32)(s − bsum) · (dx · d)` then
/// `acc + that`, separate multiplies and adds as in the scalar order. The rows are
/// contiguous in a TQ matrix, so they are prefetched as one stream, [`PREFETCH`] bytes
/// ahead of the first row's block, `R + 1` lines a block (any stride is safe: a hint only).
///
/// Why: the one-token loop over [`tq2_dot`] reduced every block alone and ran the epilogue
/// in scalar code around a call per block: 7.5–9 GB/s on the 2B-4T shapes (1 thread, cold).
/// This kernel reads 20–22 GB/s cold and 24 hot. A prefetch of each row's own block, 8 KiB
/// ahead in four interleaved places, left the cold figure at 11 GB/s whatever the distance
/// (4–32 KiB); the single stream doubled it.
///
/// # Safety
/// AVX-512 F/BW, VNNI and F16C available; rows `r < R` readable at `w + r*stride` for `nb`
/// whole blocks; `a`, `bsum`, `dx` readable for `nb` entries; `out` writable for `R`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
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
        let mut s = [_mm512_setzero_si512(); 4];
        // The rows' f16 scales, gathered in a register: a vector load of scalar stores
        // could not be forwarded and would wait for those stores to retire, behind the
        // rows' cache misses, which then no longer overlap (cold 2B-4T: 2x slower).
        let mut h = _mm_setzero_si128();
        let ahead = w.wrapping_add(PREFETCH + b * bytes * R);
        for line in 0..R + 1 {
            // Prefetch never faults, so the address may run past the rows.
            _mm_prefetch::<_MM_HINT_T1>(ahead.wrapping_add(line * 64) as *const i8);
        }
        for (r, sr) in s.iter_mut().enumerate().take(R) {
            let blk = w.wrapping_add(r * stride + b * bytes);
            // SAFETY: block b of row r is readable (caller): its codes and its scale.
            unsafe {
                let qs = (*a.add(b)).qs.as_ptr() as *const u8;
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
        let sums = reduce4(s);
        // SAFETY: entry b of bsum and dx is readable (caller).
        let (bs, d_x, d_w) = unsafe {
            (
                _mm_set1_epi32(*bsum.add(b)),
                _mm_set1_ps(*dx.add(b)),
                _mm_cvtph_ps(h),
            )
        };
        let p = _mm_mul_ps(
            _mm_cvtepi32_ps(_mm_sub_epi32(sums, bs)),
            _mm_mul_ps(d_x, d_w),
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

/// See [`crate::simd::KernelTable::tq2_tile_f32`] (and `tq1_tile_f32` with `TQ1`: 54-byte
/// blocks, scale at byte 52, activations in element order): `R` rows × `T` tokens. Each
/// row's block is decoded into its four vectors of codes once ([`tq2_codes`],
/// [`tq1_codes`]); each token's 64 activations of a group
/// are loaded once for the `R` rows (`4RT` `vpdpbusd` per block). The block's `R·T` lane
/// sums are reduced ([`reduce4`] per row) into one 8-lane vector (row `r`, token `t` in lane
/// `4r + t`), which becomes `(f32)(s − bsum) · (dx · d)` and is added to an 8-lane running
/// sum, block by block: separate multiplies and adds, the scalar order of every lane. Two
/// rows halve the activations streamed from L2 (four tokens of a 6912-column row are 108 KB).
///
/// TQ1_0 gains most: its base-3 digits cost about nine vector operations per 64 codes,
/// now paid once per four tokens instead of once per token (2B-4T GEMMs of 128 tokens,
/// 1 thread: 2.5x faster).
///
/// Why the fused epilogue: the sums used to be stored block-major and the epilogue ran
/// afterwards as four-lane chains per row, about 20% of a 1-thread TQ2_0 prefill; fused, the
/// 2B-4T GEMMs of 128 tokens ran 13–15% faster (best of three alternated runs, 1 thread).
///
/// # Safety
/// AVX-512 F/BW, VNNI and F16C available; rows `r < R` readable at `row + r*stride` for `nb`
/// whole blocks; `a` for `T * nb` Q8_K blocks (token `t`'s at `a[t*nb..]`); `bsum`
/// and `dx` for `4 * nb` entries; `out` writable for `4 * R` floats.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
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
    let mut total = _mm256_setzero_ps();
    for b in 0..nb {
        let mut c = [[_mm512_setzero_si512(); 4]; R];
        let mut h = [0i32; 2];
        for (r, cr) in c.iter_mut().enumerate() {
            let blk = row.wrapping_add(r * stride + b * bytes);
            // SAFETY: row r's block b, its code bytes and its f16 scale (caller).
            h[r] = unsafe {
                *cr = if TQ1 {
                    tq1_codes(blk, &pw)
                } else {
                    tq2_codes(_mm512_loadu_si512(blk as *const __m512i))
                };
                i32::from((blk.add(scale_at) as *const i16).read_unaligned())
            };
        }
        let mut acc = [[_mm512_setzero_si512(); 4]; R];
        for t in 0..T {
            // SAFETY: token t's block b and its 256 arranged activations are in bounds.
            let q = unsafe { (*a.add(t * nb + b)).qs.as_ptr() as *const __m512i };
            for g in 0..4 {
                // SAFETY: as above, 64 bytes at group g.
                let qv = unsafe { _mm512_loadu_si512(q.add(g)) };
                for r in 0..R {
                    acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], c[r][g], qv);
                }
            }
        }
        let mut s = [_mm_setzero_si128(); 2];
        for r in 0..R {
            s[r] = reduce4(acc[r]);
        }
        // SAFETY: entries 4b..4b+4 of bsum and dx are readable (caller).
        total = unsafe { super::avx2::tq_tile_step(total, s, h, bsum.add(4 * b), dx.add(4 * b)) };
    }
    // SAFETY: out holds 4 * R floats (caller).
    unsafe { super::avx2::store_lanes(total, out, 4 * R) };
}

/// See [`crate::simd::KernelTable::dot_f16`]: 128 halves per step into eight FMA
/// accumulators, each `vcvtph2ps` reading its 16 halves straight from memory (the
/// current-direction form: `_mm512_cvtph_ps` asks for `{sae}`, which has no memory form
/// and so costs a separate load), no software prefetch.
///
/// Why this shape: a row is one sequential stream and the kernel is bound by how many of
/// its lines are in flight, which the number of vector-unit entries per line limits. On the
/// 2B-4T head from a 2 MiB-page file mapping (1 thread, medians of 10 passes, alternated in
/// one process), four accumulators with separate loads read 15–16 GB/s, this form 24.7
/// (plain reads 26–28); sixteen accumulators read 20, and a `T0` or `T1` prefetch at 1–8 KiB
/// cost 20–40%. The conversion is exact in any rounding mode, so the bits are the same.
///
/// # Safety
/// AVX-512 F available; `w.len() == 2 * x.len()`.
#[target_feature(enable = "avx512f,f16c,fma")]
pub(super) unsafe fn dot_f16(w: &[u8], x: &[f32]) -> f32 {
    let n = x.len();
    let mut acc = [_mm512_setzero_ps(); 8];
    let n128 = n / 128 * 128;
    let n16 = n / 16 * 16;
    for i in (0..n128).step_by(128) {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: i + 16k + 16 <= n128 <= n elements of x and 2n bytes of w.
            unsafe { *a = f16_fma(w, x, i + 16 * k, *a) };
        }
    }
    for i in (n128..n16).step_by(16) {
        // SAFETY: i + 16 <= n16 <= n elements of x and 2n bytes of w.
        unsafe { acc[0] = f16_fma(w, x, i, acc[0]) };
    }
    let s = [
        _mm512_add_ps(acc[0], acc[1]),
        _mm512_add_ps(acc[2], acc[3]),
        _mm512_add_ps(acc[4], acc[5]),
        _mm512_add_ps(acc[6], acc[7]),
    ];
    let s = _mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3]));
    _mm512_reduce_add_ps(s) + crate::simd::scalar::dot_f16(&w[2 * n16..], &x[n16..])
}

/// `acc + f16(w[i..i+16]) · x[i..i+16]`, lane-wise, one fused rounding per lane.
///
/// # Safety
/// AVX-512 F available; `i + 16 <= x.len()` and `2 * (i + 16) <= w.len()`.
#[inline]
#[target_feature(enable = "avx512f,f16c,fma")]
unsafe fn f16_fma(w: &[u8], x: &[f32], i: usize, acc: __m512) -> __m512 {
    // SAFETY: the caller's bounds: 32 bytes of w from 2i, 16 floats of x from i.
    unsafe {
        let wv = super::load_f16_zmm(w.as_ptr().add(2 * i));
        _mm512_fmadd_ps(wv, _mm512_loadu_ps(x.as_ptr().add(i)), acc)
    }
}

/// See [`crate::simd::KernelTable::dot_i8`]: `vpdpbusd(w + 128, x)` over 256 bytes a step
/// into four accumulators (the bias is a flip of the sign bit, so every `w` works), then
/// `128 · Σx` taken off: exact in wrapping i32 arithmetic, as the true sum fits. The weights
/// are prefetched [`PREFETCH`] bytes ahead, one line in two.
///
/// Why this shape: the old form moved `x`'s sign onto `w` (four vector operations per 64
/// bytes to this one's two) and prefetched every line; on the 2B-4T int8 head (1 thread,
/// medians of 10 passes alternated in one process) it read 18.9–21.5 GB/s and this one
/// 20.7–23.3. Prefetching every line cost 2–3 GB/s; four or eight accumulators were alike.
///
/// # Safety
/// AVX-512 F/BW and VNNI available; `w.len() == x.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn dot_i8(w: &[i8], x: &[i8], x_sum: i32) -> i32 {
    let n = w.len();
    let (n256, n64) = (n / 256 * 256, n / 64 * 64);
    let mut acc = [_mm512_setzero_si512(); 4];
    for i in (0..n256).step_by(256) {
        for (k, a) in acc.iter_mut().enumerate() {
            if k % 2 == 0 {
                // Prefetch never faults, so the address may run past the slice.
                _mm_prefetch::<_MM_HINT_T1>(w.as_ptr().wrapping_add(i + 64 * k + PREFETCH));
            }
            // SAFETY: i + 64k + 64 <= n256 <= n bytes of both slices.
            unsafe { *a = biased_dpbusd(w, x, i + 64 * k, *a) };
        }
    }
    for i in (n256..n64).step_by(64) {
        // SAFETY: i + 64 <= n64 <= n bytes of both slices.
        unsafe { acc[0] = biased_dpbusd(w, x, i, acc[0]) };
    }
    let biased = _mm512_reduce_add_epi32(_mm512_add_epi32(
        _mm512_add_epi32(acc[0], acc[1]),
        _mm512_add_epi32(acc[2], acc[3]),
    ));
    let tail_x: i32 = x[n64..].iter().map(|&v| i32::from(v)).sum();
    biased
        .wrapping_sub(x_sum.wrapping_sub(tail_x).wrapping_mul(128))
        .wrapping_add(crate::simd::scalar::dot_i8(&w[n64..], &x[n64..]))
}

/// `acc + Σ (w + 128) · x` over the 64 bytes at `i`, four per i32 lane.
///
/// # Safety
/// AVX-512 F/BW and VNNI available; `i + 64 <= w.len()` and `i + 64 <= x.len()`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn biased_dpbusd(w: &[i8], x: &[i8], i: usize, acc: __m512i) -> __m512i {
    // SAFETY: the caller's bounds: 64 bytes of both slices from i.
    unsafe {
        let wv = _mm512_loadu_si512(w.as_ptr().add(i) as *const __m512i);
        let xv = _mm512_loadu_si512(x.as_ptr().add(i) as *const __m512i);
        _mm512_dpbusd_epi32(acc, _mm512_xor_si512(wv, _mm512_set1_epi8(-128)), xv)
    }
}
