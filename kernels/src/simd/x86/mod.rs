//! x86-64 kernels: AVX2 (`maddubs` + `madd`) and AVX-512 VNNI (`vpdpbusd`). The f32 dot
//! product is written once over `pulp::Simd` and instantiated for V3 (AVX2) and V4 (AVX-512).
//!
//! Each table entry is a safe function: it checks the slice bounds its kernel reads, then
//! calls the `#[target_feature]` kernel. The tables are only handed out by
//! [`super::table`] after [`crate::Isa::require`] confirmed the CPU has the features.

mod avx2;
mod avx512;
mod cols_f16;
mod exp;

use pulp::{Simd, WithSimd};

use super::KernelTable;

/// Bytes ahead of the current 64-byte line that the I2 decode kernels prefetch into L2
/// (`_MM_HINT_T1`), in the row being streamed. One thread streaming from DRAM needs about
/// bandwidth × latency ≈ 30 GB/s × 150 ns ≈ 4.5 KB in flight, more than the hardware
/// prefetcher keeps when a stream crosses 4 KiB pages of a file mapping. Measured on AMD
/// EPYC over all 210 ternary matrices of the 2B-4T shape (521 MB, page-cache mmap, 1 thread):
/// no prefetch 10.2 GB/s, 1 KiB 11.2, 2 KiB 12.2, 4 KiB 16.6, 8 KiB 21–23, 16–64 KiB within
/// noise of 8 KiB; `_MM_HINT_T0` at 8 KiB stays at 10 GB/s (it evicts the activations).
/// A lone 4.4 MB matrix from anonymous memory barely cares (1 KiB was within noise of 3 KiB),
/// so the whole-model pass decided.
const PREFETCH: usize = 8192;

use crate::act::BlockQ8K;
use crate::format::{tq1_0, tq2_0};

/// Bytes ahead of the row being summed that `dot_cols` prefetches (see [`prefetch_cols`]).
const COLS_PREFETCH: usize = 8192;

/// Prefetches into L2 the `bytes` (a whole number of 64-byte lines) that lie
/// [`COLS_PREFETCH`] bytes past `p`: in the attention cache's layout (tiles and slabs one
/// after another) the rows a later step or the next call sums. The address may lie past the
/// matrix, even past its allocation: the pointer is formed with wrapping arithmetic and a
/// prefetch never faults or changes a value.
#[inline(always)]
fn prefetch_cols<T>(p: *const T, bytes: usize) {
    use core::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
    let ahead = p.cast::<i8>().wrapping_add(COLS_PREFETCH);
    for line in (0..bytes).step_by(64) {
        // SAFETY: a prefetch reads nothing architecturally, at any address.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(ahead.wrapping_add(line)) };
    }
}

/// Sixteen halves at `p` widened to f32 (exact). The current-direction form keeps the load
/// folded into `vcvtph2ps`. Miri has no 512-bit `vcvtph2ps`: under it the two 256-bit halves
/// are widened apart, which gives the same bits (every half is an f32), so `.ci/miri` runs the
/// AVX-512 F16 kernels through this one line of difference.
///
/// # Safety
/// AVX-512 F and F16C available; 32 bytes readable at `p`.
#[inline(always)]
unsafe fn load_f16_zmm(p: *const u8) -> core::arch::x86_64::__m512 {
    use core::arch::x86_64::*;
    // SAFETY: the caller's contract: the features, and 32 bytes at `p`.
    unsafe {
        let h = _mm256_loadu_si256(p as *const __m256i);
        #[cfg(not(miri))]
        let v = _mm512_cvt_roundph_ps::<_MM_FROUND_CUR_DIRECTION>(h);
        #[cfg(miri)]
        let v = {
            let lo = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
            let hi = _mm256_castps_pd(_mm256_cvtph_ps(_mm256_extracti128_si256::<1>(h)));
            _mm512_castpd_ps(_mm512_insertf64x4::<1>(
                _mm512_castps_pd(_mm512_castps256_ps512(lo)),
                hi,
            ))
        };
        v
    }
}

/// `(block bytes, offset of the f16 scale)` of a TQ1_0 (`tq1`) or TQ2_0 block: the scale is
/// the block's last two bytes.
const fn tq_block_layout(tq1: bool) -> (usize, usize) {
    let bytes = if tq1 {
        tq1_0::BLOCK_BYTES
    } else {
        tq2_0::BLOCK_BYTES
    };
    (bytes, bytes - 2)
}

pub(crate) static AVX2: KernelTable = KernelTable {
    i2_dot: avx2_i2_dot,
    i2_dot_tokens: avx2_i2_dot_tokens,
    i2_dot_tile: Some(avx2_i2_dot_tile),
    i2_tile_tokens: avx2::TILE_TOKENS,
    i2_arrange: None,
    tq2_dot: avx2_tq2_dot,
    tq2_arrange: None,
    tq2_rows_f32: Some(avx2_tq2_rows_f32),
    tq1_rows_f32: Some(avx2_tq1_rows_f32),
    tq2_tile_f32: Some(avx2_tq2_tile_f32),
    tq1_tile_f32: Some(avx2_tq1_tile_f32),
    tq1_dot: avx2_tq1_dot,
    absmax_bits: avx2_absmax_bits,
    norm_absmax: v3_norm_absmax,
    quant_i8: avx2_quant_i8,
    dot_f32: v3_dot_f32,
    dot_f16: avx2_dot_f16,
    dot_i8: avx2_dot_i8,
    axpy_f32: v3_axpy_f32,
    dot_cols_f32: v3_dot_cols_f32,
    dot_cols_f16: avx2_dot_cols_f16,
    exp_f32: avx2_exp_f32,
};

pub(crate) static AVX512: KernelTable = KernelTable {
    i2_dot: vnni_i2_dot,
    i2_dot_tokens: vnni_i2_dot_tokens,
    i2_dot_tile: Some(vnni_i2_dot_tile),
    i2_tile_tokens: avx512::TILE_TOKENS,
    i2_arrange: Some(avx512::arrange_pairs),
    tq2_dot: vnni_tq2_dot,
    tq2_arrange: Some(avx512::arrange_tq2),
    tq2_rows_f32: Some(vnni_tq2_rows_f32),
    tq1_rows_f32: Some(vnni_tq1_rows_f32),
    tq2_tile_f32: Some(vnni_tq2_tile_f32),
    tq1_tile_f32: Some(vnni_tq1_tile_f32),
    tq1_dot: vnni_tq1_dot,
    absmax_bits: avx2_absmax_bits,
    norm_absmax: v4_norm_absmax,
    quant_i8: avx2_quant_i8,
    dot_f32: v4_dot_f32,
    dot_f16: avx512_dot_f16,
    dot_i8: vnni_dot_i8,
    axpy_f32: v4_axpy_f32,
    dot_cols_f32: v4_dot_cols_f32,
    dot_cols_f16: avx512_dot_cols_f16,
    exp_f32: avx2_exp_f32,
};

fn avx2_i2_dot(w: &[u8], stride: usize, nblk: usize, q: &[i8], out: &mut [i32]) {
    super::check_i2_dot(w, stride, nblk, q, out.len());
    // SAFETY: AVX2 is present (table handed out only after `Isa::require`); the bounds of
    // every load (rows * stride, nblk * 32 bytes of weights, nblk * 128 activations) were
    // checked just above.
    unsafe { avx2::i2_dot(w.as_ptr(), stride, nblk, q.as_ptr(), out) }
}

fn vnni_i2_dot(w: &[u8], stride: usize, nblk: usize, q: &[i8], out: &mut [i32]) {
    super::check_i2_dot(w, stride, nblk, q, out.len());
    assert!(
        q.len() >= nblk.div_ceil(2) * 256,
        "i2_dot: arranged activations too short"
    );
    // SAFETY: AVX-512 F/BW/VL + VNNI are present (see `Isa::require`); bounds checked above.
    unsafe { avx512::i2_dot(w.as_ptr(), stride, nblk, q.as_ptr(), out) }
}

fn avx2_i2_dot_tokens(w: &[u8], nblk: usize, q: &[i8], q_stride: usize, out: &mut [i32]) {
    super::check_i2_dot_tokens(w, nblk, q, q_stride, out.len());
    let (w, q, o) = (w.as_ptr(), q.as_ptr(), out.as_mut_ptr());
    // SAFETY: AVX2 present; the row has nblk*32 bytes and each of the out.len() (1..=4)
    // tokens at least nblk*128 activations, q_stride apart (checked above).
    unsafe {
        match out.len() {
            1 => avx2::i2_dot_tokens::<1>(w, nblk, q, q_stride, o),
            2 => avx2::i2_dot_tokens::<2>(w, nblk, q, q_stride, o),
            3 => avx2::i2_dot_tokens::<3>(w, nblk, q, q_stride, o),
            _ => avx2::i2_dot_tokens::<4>(w, nblk, q, q_stride, o),
        }
    }
}

fn vnni_i2_dot_tokens(w: &[u8], nblk: usize, q: &[i8], q_stride: usize, out: &mut [i32]) {
    super::check_i2_dot_tokens(w, nblk, q, q_stride, out.len());
    // SAFETY: AVX-512 + VNNI present; the row has nblk*32 bytes and each of the out.len()
    // tokens ceil(nblk/2)*256 arranged activations, q_stride apart (checked above).
    unsafe { avx512::i2_dot_tokens(w.as_ptr(), nblk, q.as_ptr(), q_stride, out) }
}

/// See [`crate::isa::int8_mac_peak_loop`]: 12 × 64 multiply-adds per round.
pub(crate) fn vnni_peak_loop(rounds: usize) -> i32 {
    // SAFETY: only called after `Isa::require` confirmed AVX-512 VNNI (register operands
    // only, no memory access).
    unsafe { avx512::dpbusd_peak_loop(rounds) }
}

/// See [`crate::isa::int8_mac_peak_loop`]: 12 × 32 multiply-adds per round.
pub(crate) fn avx2_peak_loop(rounds: usize) -> i32 {
    // SAFETY: only called after `Isa::require` confirmed AVX2 (register operands only, no
    // memory access).
    unsafe { avx2::maddubs_peak_loop(rounds) }
}

/// A prefill tile entry of the kernel table: checks the bounds and the token count (one of
/// the ISA's `TILE_TOKENS`), then runs the ISA's tile.
macro_rules! i2_tile_entry {
    ($name:ident, $isa:ident) => {
        #[allow(clippy::too_many_arguments)]
        fn $name(
            w: &[u8],
            stride: usize,
            nblk: usize,
            quads: usize,
            q: &[i8],
            q_stride: usize,
            out: &mut [i32],
            out_stride: usize,
            tokens: usize,
        ) {
            super::check_i2_dot_tile(
                w,
                stride,
                nblk,
                quads,
                q,
                q_stride,
                out,
                out_stride,
                (tokens, $isa::TILE_TOKENS),
            );
            // SAFETY: the ISA's features are present (this table's requirement); 4*quads
            // rows of nblk*32 bytes, stride apart, `tokens` (one of the ISA's TILE_TOKENS)
            // tokens of ceil(nblk/2)*256 activations (at least what either ISA's layout
            // reads), q_stride apart, and `tokens` rows of 4*quads sums, out_stride apart
            // (checked just above).
            unsafe {
                $isa::i2_dot_tile(
                    w.as_ptr(),
                    stride,
                    nblk,
                    quads,
                    q.as_ptr(),
                    q_stride,
                    out.as_mut_ptr(),
                    out_stride,
                    tokens,
                )
            }
        }
    };
}

i2_tile_entry!(avx2_i2_dot_tile, avx2);
i2_tile_entry!(vnni_i2_dot_tile, avx512);

fn avx2_tq2_dot(row: &[u8], a: &[BlockQ8K], out: &mut [i32]) {
    super::check_tq_dot(row, a, out.len(), tq2_0::BLOCK_BYTES);
    // SAFETY: AVX2 present; `row` holds `out.len()` 66-byte blocks and `a` as many Q8_K blocks.
    unsafe { avx2::tq2_dot(row.as_ptr(), a.as_ptr(), out) }
}

fn vnni_tq2_dot(row: &[u8], a: &[BlockQ8K], out: &mut [i32]) {
    super::check_tq_dot(row, a, out.len(), tq2_0::BLOCK_BYTES);
    // SAFETY: AVX-512 + VNNI present; bounds as for the AVX2 variant (a 64-byte load at a
    // block's start stays inside its 66 bytes).
    unsafe { avx512::tq2_dot(row.as_ptr(), a.as_ptr(), out) }
}

/// A decode rows entry of the kernel table: checks the bounds, then runs the ISA's row
/// kernel for `out.len()` (1..=4) rows; `$tq1` picks the format (and its block size).
macro_rules! tq_rows_entry {
    ($name:ident, $tq1:literal, $($kernel:ident)::+ $(, $generic_tq1:literal)?) => {
        fn $name(
            w: &[u8],
            stride: usize,
            nb: usize,
            a: &[BlockQ8K],
            bsum: &[i32],
            dx: &[f32],
            out: &mut [f32],
        ) {
            let rows = out.len();
            let block_bytes = tq_block_layout($tq1).0;
            super::check_tq_rows(w, stride, nb, a, bsum, dx, rows, block_bytes);
            let (w, a, bs, d, o) = (
                w.as_ptr(),
                a.as_ptr(),
                bsum.as_ptr(),
                dx.as_ptr(),
                out.as_mut_ptr(),
            );
            // SAFETY: the ISA's features are present (this table's requirement); the `rows`
            // rows hold `nb` whole blocks each, `stride` bytes apart; `a`, `bsum` and `dx`
            // hold `nb` entries; `out` holds `rows` floats (all checked just above).
            unsafe {
                match rows {
                    1 => $($kernel)::+::<1 $(, $generic_tq1)?>(w, stride, nb, a, bs, d, o),
                    2 => $($kernel)::+::<2 $(, $generic_tq1)?>(w, stride, nb, a, bs, d, o),
                    3 => $($kernel)::+::<3 $(, $generic_tq1)?>(w, stride, nb, a, bs, d, o),
                    _ => $($kernel)::+::<4 $(, $generic_tq1)?>(w, stride, nb, a, bs, d, o),
                }
            }
        }
    };
}

tq_rows_entry!(avx2_tq2_rows_f32, false, avx2::tq_rows_f32, false);
tq_rows_entry!(avx2_tq1_rows_f32, true, avx2::tq_rows_f32, true);
tq_rows_entry!(vnni_tq2_rows_f32, false, avx512::tq_rows_f32, false);
tq_rows_entry!(vnni_tq1_rows_f32, true, avx512::tq_rows_f32, true);

/// A prefill tile entry of the kernel table: checks the bounds, then runs the ISA's
/// `tq_tile_f32::<rows, tokens, TQ1>`.
macro_rules! tq_tile_entry {
    ($name:ident, $isa:ident, $tq1:literal) => {
        #[allow(clippy::too_many_arguments)]
        fn $name(
            w: &[u8],
            stride: usize,
            rows: usize,
            a: &[BlockQ8K],
            nb: usize,
            tokens: usize,
            (bsum, dx): (&[i32], &[f32]),
            out: &mut [f32],
        ) {
            let shape = (rows, nb, tokens, tq_block_layout($tq1).0);
            super::check_tq_tile(w, stride, shape, a, (bsum, dx), out);
            let (w, a, bs, d, o) = (
                w.as_ptr(),
                a.as_ptr(),
                bsum.as_ptr(),
                dx.as_ptr(),
                out.as_mut_ptr(),
            );
            // SAFETY: the ISA's features are present (this table's requirement); the rows
            // hold `nb` whole blocks each `stride` bytes apart, `a` holds `tokens * nb`
            // blocks, `bsum` and `dx` `4 * nb` entries, `out` `4 * rows` floats (all checked
            // just above).
            unsafe {
                match (rows, tokens) {
                    (1, 1) => $isa::tq_tile_f32::<1, 1, $tq1>(w, stride, a, nb, bs, d, o),
                    (1, 2) => $isa::tq_tile_f32::<1, 2, $tq1>(w, stride, a, nb, bs, d, o),
                    (1, 3) => $isa::tq_tile_f32::<1, 3, $tq1>(w, stride, a, nb, bs, d, o),
                    (1, _) => $isa::tq_tile_f32::<1, 4, $tq1>(w, stride, a, nb, bs, d, o),
                    (_, 1) => $isa::tq_tile_f32::<2, 1, $tq1>(w, stride, a, nb, bs, d, o),
                    (_, 2) => $isa::tq_tile_f32::<2, 2, $tq1>(w, stride, a, nb, bs, d, o),
                    (_, 3) => $isa::tq_tile_f32::<2, 3, $tq1>(w, stride, a, nb, bs, d, o),
                    (_, _) => $isa::tq_tile_f32::<2, 4, $tq1>(w, stride, a, nb, bs, d, o),
                }
            }
        }
    };
}

tq_tile_entry!(vnni_tq2_tile_f32, avx512, false);
tq_tile_entry!(vnni_tq1_tile_f32, avx512, true);
tq_tile_entry!(avx2_tq2_tile_f32, avx2, false);
tq_tile_entry!(avx2_tq1_tile_f32, avx2, true);

fn avx2_tq1_dot(row: &[u8], a: &[BlockQ8K], out: &mut [i32]) {
    super::check_tq_dot(row, a, out.len(), tq1_0::BLOCK_BYTES);
    // SAFETY: AVX2 present; `row` holds `out.len()` 54-byte blocks (the kernel loads 32 + 16
    // bytes at a block's start and reads `qh` bytewise), `a` as many Q8_K blocks.
    unsafe { avx2::tq1_dot(row.as_ptr(), a.as_ptr(), out) }
}

fn vnni_tq1_dot(row: &[u8], a: &[BlockQ8K], out: &mut [i32]) {
    super::check_tq_dot(row, a, out.len(), tq1_0::BLOCK_BYTES);
    // SAFETY: AVX-512 + VNNI present; `row` holds `out.len()` 54-byte blocks (the kernel
    // reads bytes 0..52 of each), `a` as many Q8_K blocks.
    unsafe { avx512::tq1_dot(row.as_ptr(), a.as_ptr(), out) }
}

fn avx2_dot_f16(w: &[u8], x: &[f32]) -> f32 {
    assert_eq!(w.len(), 2 * x.len(), "dot_f16: lengths");
    // SAFETY: AVX2 + F16C + FMA present (all required by `Isa::Avx2`); reads exactly `w`, `x`.
    unsafe { avx2::dot_f16(w, x) }
}

fn avx512_dot_f16(w: &[u8], x: &[f32]) -> f32 {
    assert_eq!(w.len(), 2 * x.len(), "dot_f16: lengths");
    // SAFETY: AVX-512 F present; reads exactly `w`, `x`.
    unsafe { avx512::dot_f16(w, x) }
}

fn avx2_dot_i8(w: &[i8], x: &[i8], _x_sum: i32) -> i32 {
    assert_eq!(w.len(), x.len(), "dot_i8: lengths");
    // SAFETY: AVX2 present; reads exactly `w`, `x`.
    unsafe { avx2::dot_i8(w, x) }
}

fn vnni_dot_i8(w: &[i8], x: &[i8], x_sum: i32) -> i32 {
    assert_eq!(w.len(), x.len(), "dot_i8: lengths");
    // SAFETY: AVX-512 F/BW + VNNI present; reads exactly `w`, `x`.
    unsafe { avx512::dot_i8(w, x, x_sum) }
}

fn avx2_absmax_bits(x: &[f32]) -> u32 {
    // SAFETY: AVX2 present; the kernel reads exactly `x`.
    unsafe { avx2::absmax_bits(x) }
}

fn avx2_quant_i8(x: &[f32], s: f32, q: &mut [i8]) -> i32 {
    assert!(q.len() >= x.len(), "quant_i8: output too short");
    // SAFETY: AVX2 present; the kernel reads `x` and writes `x.len()` bytes of `q`.
    unsafe { avx2::quant_i8(x, s, q) }
}

/// `Σ a_i b_i`, written once over `pulp::Simd`: lane-wise fused multiply-adds into two
/// accumulators, then a tree reduction, then the scalar tail.
struct DotF32<'a> {
    a: &'a [f32],
    b: &'a [f32],
}

impl WithSimd for DotF32<'_> {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f32 {
        let n = self.a.len().min(self.b.len());
        let (a, at) = S::as_simd_f32s(&self.a[..n]);
        let (b, bt) = S::as_simd_f32s(&self.b[..n]);
        let mut acc0 = simd.splat_f32s(0.0);
        let mut acc1 = simd.splat_f32s(0.0);
        let mut pairs_a = a.chunks_exact(2);
        let mut pairs_b = b.chunks_exact(2);
        for (pa, pb) in (&mut pairs_a).zip(&mut pairs_b) {
            acc0 = simd.mul_add_e_f32s(pa[0], pb[0], acc0);
            acc1 = simd.mul_add_e_f32s(pa[1], pb[1], acc1);
        }
        for (&va, &vb) in pairs_a.remainder().iter().zip(pairs_b.remainder()) {
            acc0 = simd.mul_add_e_f32s(va, vb, acc0);
        }
        let mut sum = simd.reduce_sum_f32s(simd.add_f32s(acc0, acc1));
        for (&x, &y) in at.iter().zip(bt) {
            sum += x * y;
        }
        sum
    }
}

fn v3_norm_absmax(x: &[f32], w: &[f32], scale: f32, out: &mut [f32]) -> u32 {
    super::check_norm(x, w, out);
    match pulp::x86::V3::try_new() {
        Some(simd) => Simd::vectorize(simd, NormAbsmax { x, w, scale, out }),
        None => super::scalar::norm_absmax(x, w, scale, out),
    }
}

fn v4_norm_absmax(x: &[f32], w: &[f32], scale: f32, out: &mut [f32]) -> u32 {
    super::check_norm(x, w, out);
    match pulp::x86::V4::try_new() {
        Some(simd) => Simd::vectorize(simd, NormAbsmax { x, w, scale, out }),
        None => v3_norm_absmax(x, w, scale, out),
    }
}

/// `out = (x · scale) · w` and the max of `|out|`'s bits, written once over `pulp::Simd`:
/// two lane-wise multiplies (the plain loop's rounding), an unsigned max of the sign-cleared
/// bits (so a NaN sorts above every finite value, as in `absmax_bits`), then the tail.
struct NormAbsmax<'a> {
    x: &'a [f32],
    w: &'a [f32],
    scale: f32,
    out: &'a mut [f32],
}

impl WithSimd for NormAbsmax<'_> {
    type Output = u32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> u32 {
        let (o, ot) = S::as_mut_simd_f32s(self.out);
        let n = o.len() * S::F32_LANES;
        let (x, xt) = S::as_simd_f32s(&self.x[..n]);
        let (w, wt) = S::as_simd_f32s(&self.w[..n]);
        debug_assert!(xt.is_empty() && wt.is_empty());
        let sv = simd.splat_f32s(self.scale);
        let mask = simd.splat_u32s(0x7fff_ffff);
        let mut acc = simd.splat_u32s(0);
        for ((ov, &xv), &wv) in o.iter_mut().zip(x).zip(w) {
            *ov = simd.mul_f32s(simd.mul_f32s(xv, sv), wv);
            let bits = simd.and_u32s(simd.transmute_u32s_f32s(*ov), mask);
            acc = simd.max_u32s(acc, bits);
        }
        let mut lanes = [0u32; 16];
        let (lv, _) = S::as_mut_simd_u32s(&mut lanes[..S::U32_LANES]);
        lv[0] = acc;
        let head = lanes.into_iter().max().unwrap_or(0);
        let tail = super::scalar::norm_absmax(&self.x[n..], &self.w[n..], self.scale, ot);
        head.max(tail)
    }
}

/// See [`super::KernelTable::exp_f32`]; also the AVX-512 table's (its CPUs have AVX2 and
/// FMA; the kernel is bound by its f64 arithmetic, not its width).
fn avx2_exp_f32(x: &mut [f32]) {
    // SAFETY: AVX2 and FMA are present (both tables are handed out only after
    // `Isa::require`, and the AVX-512 ISA requires AVX2 and FMA too); `x.len()` values.
    unsafe { exp::exp_f32(x.as_mut_ptr(), x.len()) }
}

fn v3_axpy_f32(a: f32, x: &[f32], y: &mut [f32]) {
    match pulp::x86::V3::try_new() {
        Some(simd) => Simd::vectorize(simd, AxpyF32 { a, x, y }),
        None => super::scalar::axpy_f32(a, x, y),
    }
}

fn v4_axpy_f32(a: f32, x: &[f32], y: &mut [f32]) {
    match pulp::x86::V4::try_new() {
        Some(simd) => Simd::vectorize(simd, AxpyF32 { a, x, y }),
        None => v3_axpy_f32(a, x, y),
    }
}

/// `y += a·x` written once over `pulp::Simd`: a lane-wise multiply, then a lane-wise add
/// (not `mul_add`: the rounding of each step must match the scalar loop), then the tail.
struct AxpyF32<'a> {
    a: f32,
    x: &'a [f32],
    y: &'a mut [f32],
}

impl WithSimd for AxpyF32<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let n = self.x.len().min(self.y.len());
        let (y, yt) = S::as_mut_simd_f32s(&mut self.y[..n]);
        let (x, xt) = S::as_simd_f32s(&self.x[..n]);
        let a = simd.splat_f32s(self.a);
        for (yv, &xv) in y.iter_mut().zip(x) {
            *yv = simd.add_f32s(*yv, simd.mul_f32s(a, xv));
        }
        super::scalar::axpy_f32(self.a, xt, yt);
    }
}

/// Column blocks that all of an attention call's vectors share, `B` vectors wide: the
/// attention cache's tiles are `KV_TILE` = 16 columns (two AVX2 vectors, one AVX-512
/// vector), so each tile is read once, front to back, for up to four heads.
fn dot_cols_all<S: Simd, const B: usize>(
    simd: S,
    xs: &[&[f32]],
    m: &[f32],
    stride: usize,
    outs: &mut [&mut [f32]],
) {
    match xs.len() {
        1 => simd.vectorize(DotColsF32::<1, B>::new(xs, m, stride, outs)),
        2 => simd.vectorize(DotColsF32::<2, B>::new(xs, m, stride, outs)),
        3 => simd.vectorize(DotColsF32::<3, B>::new(xs, m, stride, outs)),
        _ => simd.vectorize(DotColsF32::<4, B>::new(xs, m, stride, outs)),
    }
}

/// AVX2 `dot_cols_f32`. Up to 16 columns (an attention tile): all vectors at once, two
/// vectors of columns (at most eight accumulators of 16 registers), one pass over the tile.
/// Wider: one vector at a time in blocks of 64 columns (eight accumulators), so that each
/// pass reads the rows front to back and the later passes find them in L2; all vectors in
/// 16-column blocks would walk a wide matrix at its row stride instead, which measured
/// about half as fast from DRAM when the tiles were 64 columns wide.
fn v3_dot_cols_f32(xs: &[&[f32]], m: &[f32], stride: usize, outs: &mut [&mut [f32]]) {
    super::check_dot_cols(xs, m, stride, outs);
    match pulp::x86::V3::try_new() {
        Some(simd) if outs[0].len() <= 16 => dot_cols_all::<_, 2>(simd, xs, m, stride, outs),
        Some(simd) => {
            for (x, out) in xs.iter().zip(outs.iter_mut()) {
                let one = &mut [&mut **out][..];
                Simd::vectorize(simd, DotColsF32::<1, 8>::new(&[x], m, stride, one));
            }
        }
        None => super::scalar::dot_cols_f32(xs, m, stride, outs),
    }
}

/// AVX-512 `dot_cols_f32`: all vectors at once (32 registers: up to 16 accumulators), one
/// vector of columns for up to 16 columns (an attention tile), four beyond.
fn v4_dot_cols_f32(xs: &[&[f32]], m: &[f32], stride: usize, outs: &mut [&mut [f32]]) {
    super::check_dot_cols(xs, m, stride, outs);
    match pulp::x86::V4::try_new() {
        Some(simd) if outs[0].len() <= 16 => dot_cols_all::<_, 1>(simd, xs, m, stride, outs),
        Some(simd) => dot_cols_all::<_, 4>(simd, xs, m, stride, outs),
        None => v3_dot_cols_f32(xs, m, stride, outs),
    }
}

fn avx2_dot_cols_f16(xs: &[&[f32]], m: &[half::f16], stride: usize, outs: &mut [&mut [f32]]) {
    super::check_dot_cols(xs, m, stride, outs);
    // SAFETY: AVX2 + F16C present (both required by `Isa::Avx2`); shapes checked above.
    unsafe { cols_f16::dot_cols_f16_ymm(xs, m, stride, outs) }
}

fn avx512_dot_cols_f16(xs: &[&[f32]], m: &[half::f16], stride: usize, outs: &mut [&mut [f32]]) {
    super::check_dot_cols(xs, m, stride, outs);
    // SAFETY: AVX-512 F present; shapes checked above.
    unsafe { cols_f16::dot_cols_f16_zmm(xs, m, stride, outs) }
}

/// `outs[h][j] = Σ_i xs[h][i] · m[i·stride + j]` for `K` vectors written once over
/// `pulp::Simd`: `B` vectors of columns at a time, loaded once per `i` for all `K` vectors,
/// each of the `K × B` sums kept in a register over all `i` (a multiply, then an add: the
/// rounding of the plain loop). The sums are independent chains, so the adds overlap
/// instead of waiting on one another; the last partial vector of columns is read and written
/// through a lane mask. The caller checked the shapes ([`super::check_dot_cols`]).
struct DotColsF32<'a, 'b, const K: usize, const B: usize> {
    xs: [&'a [f32]; K],
    m: &'a [f32],
    stride: usize,
    outs: &'a mut [&'b mut [f32]],
}

impl<'a, 'b, const K: usize, const B: usize> DotColsF32<'a, 'b, K, B> {
    /// `xs.len() == outs.len() == K` (checked by the caller).
    fn new(xs: &[&'a [f32]], m: &'a [f32], stride: usize, outs: &'a mut [&'b mut [f32]]) -> Self {
        DotColsF32 {
            xs: core::array::from_fn(|h| xs[h]),
            m,
            stride,
            outs,
        }
    }
}

impl<const K: usize, const B: usize> WithSimd for DotColsF32<'_, '_, K, B> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let (m, stride, outs) = (self.m, self.stride, self.outs);
        let (len, n, lanes) = (self.xs[0].len(), outs[0].len(), S::F32_LANES);
        // Sliced to `len` so that `x[i]` below needs no bounds check.
        let xs: [&[f32]; K] = core::array::from_fn(|h| &self.xs[h][..len]);
        // Whole blocks of full vectors: plain loads.
        let whole = n / (B * lanes) * B * lanes;
        for j0 in (0..whole).step_by(B * lanes) {
            let mut acc = [[simd.splat_f32s(0.0); B]; K];
            for i in 0..len {
                let at = i * stride + j0;
                prefetch_cols(m[at..].as_ptr(), (B * lanes * 4).div_ceil(64) * 64);
                let (v, _) = S::as_simd_f32s(&m[at..at + B * lanes]);
                for (ah, x) in acc.iter_mut().zip(xs) {
                    let xs = simd.splat_f32s(x[i]);
                    for (a, &v) in ah.iter_mut().zip(v) {
                        *a = simd.add_f32s(*a, simd.mul_f32s(xs, v));
                    }
                }
            }
            for (ah, out) in acc.iter().zip(outs.iter_mut()) {
                let (o, _) = S::as_mut_simd_f32s(&mut out[j0..j0 + B * lanes]);
                o.copy_from_slice(ah);
            }
        }
        // The rest (fewer than a block's columns), in whole vectors: the lanes past `n` read
        // what follows in `m` (the stride's padding or the next row), computed and dropped.
        // Only the last rows, where that would run past `m`, take lane-masked loads (pulp's
        // are calls, not inlined).
        let rest = n - whole;
        if rest > 0 {
            let nv = rest.div_ceil(lanes);
            let span = nv * lanes;
            let plain = match m.len().checked_sub(whole + span) {
                Some(room) if stride > 0 => (room / stride + 1).min(len),
                Some(_) => len,
                None => 0,
            };
            let mut acc = [[simd.splat_f32s(0.0); B]; K];
            for i in 0..plain {
                let at = i * stride + whole;
                let (v, _) = S::as_simd_f32s(&m[at..at + span]);
                for (ah, x) in acc.iter_mut().zip(xs) {
                    let xs = simd.splat_f32s(x[i]);
                    for (a, &v) in ah.iter_mut().zip(v) {
                        *a = simd.add_f32s(*a, simd.mul_f32s(xs, v));
                    }
                }
            }
            for i in plain..len {
                let row = &m[i * stride + whole..i * stride + n];
                let mut v = [simd.splat_f32s(0.0); B];
                for (v, cols) in v.iter_mut().zip(row.chunks(lanes)) {
                    *v = simd.partial_load_f32s(cols);
                }
                for (ah, x) in acc.iter_mut().zip(xs) {
                    let xs = simd.splat_f32s(x[i]);
                    for (a, &v) in ah[..nv].iter_mut().zip(&v) {
                        *a = simd.add_f32s(*a, simd.mul_f32s(xs, v));
                    }
                }
            }
            for (ah, out) in acc.iter().zip(outs.iter_mut()) {
                for (a, o) in ah.iter().zip(out[whole..].chunks_mut(lanes)) {
                    simd.partial_store_f32s(o, *a);
                }
            }
        }
    }
}

fn v3_dot_f32(a: &[f32], b: &[f32]) -> f32 {
    match pulp::x86::V3::try_new() {
        Some(simd) => Simd::vectorize(simd, DotF32 { a, b }),
        None => Simd::vectorize(pulp::Scalar::new(), DotF32 { a, b }),
    }
}

fn v4_dot_f32(a: &[f32], b: &[f32]) -> f32 {
    match pulp::x86::V4::try_new() {
        Some(simd) => Simd::vectorize(simd, DotF32 { a, b }),
        None => v3_dot_f32(a, b),
    }
}
