//! AVX-512 VNNI kernels: `vpdpbusd` multiplies unsigned codes by signed activations and
//! adds groups of four straight into i32 lanes (no 16-bit intermediate, no saturation).
//! One 64-byte load covers two I2_S blocks (one QK256 block) or one TQ2_0 block's codes.

use core::arch::x86_64::*;

use crate::act::BlockQ8K;

/// Bytes ahead of the current block to prefetch in each weight row.
const PREFETCH: usize = 1024;

/// Concatenates 32 bytes at `lo` and 32 at `hi` into one 512-bit vector.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load_pair(lo: *const u8, hi: *const u8) -> __m512i {
    // SAFETY: callers pass two pointers with 32 readable bytes each.
    unsafe {
        let l = _mm256_loadu_si256(lo as *const __m256i);
        let h = _mm256_loadu_si256(hi as *const __m256i);
        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(l), h)
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn i2_rows<const M: usize>(
    w: *const u8,
    stride: usize,
    nblk: usize,
    q: *const i8,
) -> [i32; M] {
    let mask = _mm512_set1_epi8(3);
    let mut acc = [_mm512_setzero_si512(); M];
    let pairs = nblk / 2;
    for p in 0..pairs {
        // SAFETY: 256 activations at q + p*256 (caller checked nblk * 128).
        let qv = unsafe {
            let qp = q.add(p * 256) as *const u8;
            [
                load_pair(qp, qp.add(128)),
                load_pair(qp.add(32), qp.add(160)),
                load_pair(qp.add(64), qp.add(192)),
                load_pair(qp.add(96), qp.add(224)),
            ]
        };
        for (r, a) in acc.iter_mut().enumerate() {
            let ptr = w.wrapping_add(r * stride + p * 64);
            // Prefetch never faults, so the address may run past the slice.
            _mm_prefetch::<_MM_HINT_T0>(ptr.wrapping_add(PREFETCH) as *const i8);
            // SAFETY: blocks 2p and 2p+1 of row r lie within the checked weight bounds.
            let v = unsafe { _mm512_loadu_si512(ptr as *const __m512i) };
            *a = _mm512_dpbusd_epi32(*a, _mm512_and_si512(_mm512_srli_epi16::<6>(v), mask), qv[0]);
            *a = _mm512_dpbusd_epi32(*a, _mm512_and_si512(_mm512_srli_epi16::<4>(v), mask), qv[1]);
            *a = _mm512_dpbusd_epi32(*a, _mm512_and_si512(_mm512_srli_epi16::<2>(v), mask), qv[2]);
            *a = _mm512_dpbusd_epi32(*a, _mm512_and_si512(v, mask), qv[3]);
        }
    }
    let mut out = acc.map(|a| _mm512_reduce_add_epi32(a));
    if nblk % 2 == 1 {
        let b = nblk - 1;
        let m = _mm256_set1_epi8(3);
        // SAFETY: the last block of each row and its 128 activations are within bounds.
        unsafe {
            let qp = q.add(b * 128) as *const u8;
            let qv = [0, 32, 64, 96].map(|o| _mm256_loadu_si256(qp.add(o) as *const __m256i));
            for (r, o) in out.iter_mut().enumerate() {
                let v = _mm256_loadu_si256(w.add(r * stride + b * 32) as *const __m256i);
                let mut a = _mm256_dpbusd_epi32(
                    _mm256_setzero_si256(),
                    _mm256_and_si256(_mm256_srli_epi16::<6>(v), m),
                    qv[0],
                );
                a = _mm256_dpbusd_epi32(a, _mm256_and_si256(_mm256_srli_epi16::<4>(v), m), qv[1]);
                a = _mm256_dpbusd_epi32(a, _mm256_and_si256(_mm256_srli_epi16::<2>(v), m), qv[2]);
                a = _mm256_dpbusd_epi32(a, _mm256_and_si256(v, m), qv[3]);
                *o += hsum256(a);
            }
        }
    }
    out
}

/// See [`crate::simd::KernelTable::i2_dot`].
///
/// # Safety
/// AVX-512 F/BW/VL + VNNI available; `w` readable for `(out.len()-1)*stride + nblk*32`
/// bytes, `q` for `nblk*128`; `out.len()` in 1..=4.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn i2_dot(
    w: *const u8,
    stride: usize,
    nblk: usize,
    q: *const i8,
    out: &mut [i32],
) {
    // SAFETY: forwarded caller contract.
    unsafe {
        match out.len() {
            1 => out.copy_from_slice(&i2_rows::<1>(w, stride, nblk, q)),
            2 => out.copy_from_slice(&i2_rows::<2>(w, stride, nblk, q)),
            3 => out.copy_from_slice(&i2_rows::<3>(w, stride, nblk, q)),
            _ => out.copy_from_slice(&i2_rows::<4>(w, stride, nblk, q)),
        }
    }
}

/// See [`crate::simd::KernelTable::tq2_dot`].
///
/// # Safety
/// AVX-512 + VNNI available; `row` readable for `out.len()` 66-byte blocks, `a` likewise.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn tq2_dot(row: *const u8, a: *const BlockQ8K, out: &mut [i32]) {
    let mask = _mm512_set1_epi8(3);
    for (b, o) in out.iter_mut().enumerate() {
        // SAFETY: block b exists in both (caller); 64 of the block's 66 bytes are loaded.
        unsafe {
            let blk = row.add(b * 66);
            let qs = (*a.add(b)).qs.as_ptr() as *const u8;
            let v = _mm512_loadu_si512(blk as *const __m512i);
            let mut s = _mm512_dpbusd_epi32(
                _mm512_setzero_si512(),
                _mm512_and_si512(v, mask),
                load_pair(qs, qs.add(128)),
            );
            s = _mm512_dpbusd_epi32(
                s,
                _mm512_and_si512(_mm512_srli_epi16::<2>(v), mask),
                load_pair(qs.add(32), qs.add(160)),
            );
            s = _mm512_dpbusd_epi32(
                s,
                _mm512_and_si512(_mm512_srli_epi16::<4>(v), mask),
                load_pair(qs.add(64), qs.add(192)),
            );
            s = _mm512_dpbusd_epi32(
                s,
                _mm512_and_si512(_mm512_srli_epi16::<6>(v), mask),
                load_pair(qs.add(96), qs.add(224)),
            );
            *o = _mm512_reduce_add_epi32(s);
        }
    }
}

#[inline]
#[target_feature(enable = "avx2")]
fn hsum256(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}
