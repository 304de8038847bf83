//! The SIMD layer: the only place with `unsafe`. One table of inner kernels per ISA,
//! built once; every entry is a safe function whose preconditions are checked on entry.
//!
//! Inner kernels compute raw integer sums `Σ c·q` over codes `c ∈ 0..=3` and int8 `q`;
//! callers turn them into the formats' float results in one shared place, so every ISA
//! produces the same bits.

pub(crate) mod scalar;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

use crate::act::BlockQ8K;
use crate::error::Result;
use crate::isa::Isa;

/// Rearranges one token's int8 activations into a kernel's read order.
pub(crate) type ArrangeFn = fn(q: &[i8], out: &mut [i8]);

/// Inner kernels of one ISA.
pub(crate) struct KernelTable {
    /// `out[i] = Σ_{j < nblk*128} code(row i, j) · q[j]` for `out.len()` (≥ 1) rows of
    /// 128-element I2_S blocks, the rows `stride` bytes apart starting at `w[0]`. `q` is in
    /// the layout made by `i2_arrange` (when the ISA has one), else in element order.
    pub i2_dot: fn(w: &[u8], stride: usize, nblk: usize, q: &[i8], out: &mut [i32]),
    /// One row, several tokens: `out[t] = Σ_j code(j) · q[t*q_stride + j]` for `out.len()`
    /// (1..=4) tokens, decoding each weight chunk once for all of them (prefill). `q` in
    /// `i2_arrange` layout where the ISA has one.
    pub i2_dot_tokens: fn(w: &[u8], nblk: usize, q: &[i8], q_stride: usize, out: &mut [i32]),
    /// Prefill's register tile over `quads` groups of four rows and `T` tokens, `T` one of
    /// [`i2_tile_tokens`](Self::i2_tile_tokens): `out[t*out_stride + r] =
    /// Σ_j code_r(j) · q[t*q_stride + j]` for tokens `t < T` and rows `r < 4*quads` at
    /// `w[r*stride..]`, each weight vector decoded once for the `T` tokens (AVX-512: four
    /// rows × four tokens, each activation vector loaded once for four rows; AVX2, short
    /// of registers, runs its eight- or four-token row kernel row after row inside the one
    /// call); `q` in `i2_arrange` layout. `None` where `i2_dot_tokens` row by row is as good.
    pub i2_dot_tile: Option<I2TileFn>,
    /// The token counts [`i2_dot_tile`](Self::i2_dot_tile) takes, largest first, each at
    /// most [`I2_TILE_TOKENS_MAX`].
    pub i2_tile_tokens: &'static [usize],
    /// Rearranges one token's activations (a multiple of 256 long) into the order `i2_dot`
    /// reads them, once per token; `None` where element order is what the kernel reads.
    pub i2_arrange: Option<ArrangeFn>,
    /// `out[b] = Σ_j code(block b, j) · a[b].qs[j]` over `out.len()` TQ2_0 blocks of `row`,
    /// with each `a[b].qs` in the layout made by `tq2_arrange` (when the ISA has one).
    pub tq2_dot: fn(row: &[u8], a: &[BlockQ8K], out: &mut [i32]),
    /// Rearranges one Q8_K block's 256 values into the order `tq2_dot` reads them, once per
    /// call; `None` where element order is what the kernel reads.
    pub tq2_arrange: Option<ArrangeFn>,
    /// Decode's TQ2_0 product with llama.cpp's float epilogue, for `out.len()` (1..=4)
    /// rows `stride` bytes apart from `w[0]`, each of `nb` blocks, against one token's
    /// blocks `a` (in `tq2_arrange` layout): `out[r] = Σ_b (f32)(s_rb − bsum[b]) · (dx[b] ·
    /// d_rb)` with `s_rb = Σ_j code(r, b, j) · a[b].qs[j]` (exact i32) and `d_rb` the block's
    /// f16 scale, the sum starting at `+0.0` in block order with every product and sum
    /// rounded to f32 (never fused): the bits of the one-token loop over `tq2_dot`. `None`
    /// where that loop is as good.
    pub tq2_rows_f32: Option<TqRowsFn>,
    /// [`tq2_rows_f32`](Self::tq2_rows_f32) for TQ1_0 rows (54-byte blocks, activations in
    /// element order).
    pub tq1_rows_f32: Option<TqRowsFn>,
    /// Prefill's TQ2_0 tile: `rows` (1..=2) rows `stride` bytes apart from `w[0]` against
    /// `tokens` (1..=4) tokens (token `t`'s blocks at `a[t*nb..]`, in `tq2_arrange` layout),
    /// decoding each block once for all tokens and loading each activation once for all
    /// rows, with llama.cpp's float epilogue: `out[4r + t] = Σ_b (f32)(s_rtb − bsum[4b + t])
    /// · (dx[4b + t] · d_rb)` from `+0.0` in block order, every product and sum rounded to
    /// f32 (never fused): the bits of the per-token loop over `tq2_dot`. `None` where that
    /// loop is as good.
    pub tq2_tile_f32: Option<TqTileFn>,
    /// [`tq2_tile_f32`](Self::tq2_tile_f32) for TQ1_0 rows (54-byte blocks, activations in
    /// element order).
    pub tq1_tile_f32: Option<TqTileFn>,
    /// The same for TQ1_0 blocks (element order).
    pub tq1_dot: fn(row: &[u8], a: &[BlockQ8K], out: &mut [i32]),
    /// `max_i (bits(x_i) & 0x7fff_ffff)`: the bit pattern of `max|x|`, NaN sorting highest.
    pub absmax_bits: fn(x: &[f32]) -> u32,
    /// `out_i = (x_i · scale) · w_i` (two f32 multiplies, never fused: the bits of the plain
    /// loop) over `x.len()` elements; returns [`absmax_bits`](Self::absmax_bits) of `out`.
    /// RMSNorm's second pass fused with the quantizer's max.
    pub norm_absmax: fn(x: &[f32], w: &[f32], scale: f32, out: &mut [f32]) -> u32,
    /// `q_i = clamp(round_half_even(x_i * s), -128, 127)`; returns `Σ q_i`.
    pub quant_i8: fn(x: &[f32], s: f32, q: &mut [i8]) -> i32,
    /// `Σ a_i · b_i` in f32 (order ISA-specific; see the lab's bound).
    pub dot_f32: fn(a: &[f32], b: &[f32]) -> f32,
    /// `Σ f16(w_i) · x_i` in f32 over little-endian f16 bytes `w` (`w.len() == 2 * x.len()`).
    pub dot_f16: fn(w: &[u8], x: &[f32]) -> f32,
    /// `Σ w_i · x_i` (exact i32) over `w.len() == x.len()` int8 values, for `w_i ≠ -128`
    /// (the int8 head clamps its weights to ±127); any `x_i`. `x_sum` must be `Σ x_i`
    /// (computed once per activation vector: a kernel may bias the weights and take
    /// `128 · x_sum` off). The sum must fit in i32 (`n < 2¹⁷` guarantees it).
    pub dot_i8: fn(w: &[i8], x: &[i8], x_sum: i32) -> i32,
    /// `y_i = y_i + a · x_i` over `min(len)` elements, the product and the sum each rounded
    /// to f32 (never fused), so every ISA gives the bits of the plain loop.
    pub axpy_f32: fn(a: f32, x: &[f32], y: &mut [f32]),
    /// `outs[h][j] = Σ_i xs[h][i] · m[i·stride + j]` for every `h < xs.len()` and
    /// `j < outs[h].len()`: 1 to [`crate::exec::DOT_COLS_MAX`] vectors of one length and as
    /// many outputs of one length, over one matrix that is read once for all of them. Each
    /// sum starts at `+0.0` and adds the rounded products in `i` order (never fused): the
    /// bits of the plain loop `out.fill(0); for i { for j { out[j] += x[i] * m[i*stride + j] } }`
    /// run for each `h`.
    pub dot_cols_f32: crate::exec::DotColsF32,
    /// [`dot_cols_f32`](Self::dot_cols_f32) over a matrix of halves: each element widened
    /// to f32 (exact), then the same sums, so the bits of widening `m` first.
    pub dot_cols_f16: crate::exec::DotColsF16,
    /// `x_i ← exp(x_i)` with the bits of `f32::exp` (libm's `expf`) for every input: SIMD
    /// kernels evaluate in f64 and keep a result only where it is the correctly rounded
    /// one beyond a margin that any `expf` within 0.504 ulp respects, and call `f32::exp`
    /// for the rest (see `x86/exp.rs`).
    pub exp_f32: crate::exec::ExpF32,
}

/// The table for `isa`, or an error if this CPU lacks it.
pub(crate) fn table(isa: Isa) -> Result<&'static KernelTable> {
    isa.require()?;
    Ok(match isa {
        Isa::Scalar => &scalar::TABLE,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => &x86::AVX2,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => &x86::AVX512,
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("require() rejects x86 ISAs elsewhere"),
    })
}

/// Asks for `bytes` to be brought into the L2 cache (`prefetcht1`; L3 keeps the lines L2
/// evicts), one prefetch per 64-byte line, without waiting for them (a long run can still
/// stall on the core's outstanding misses): for weights a later call reads, fetched while
/// the caller computes on other data. A hint only (it never faults and changes no value).
/// No-op off x86.
#[inline]
pub fn prefetch_l2(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // SAFETY: a prefetch of an address inside `bytes` reads nothing architecturally.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T1 }>(
                line.as_ptr() as *const i8
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Checks the slice lengths of `norm_absmax`.
#[inline]
pub(crate) fn check_norm(x: &[f32], w: &[f32], out: &[f32]) {
    assert!(
        w.len() == x.len() && out.len() == x.len(),
        "norm_absmax: lengths"
    );
}

/// Checks the slice bounds every `i2_dot` implementation relies on.
#[inline]
pub(crate) fn check_i2_dot(w: &[u8], stride: usize, nblk: usize, q: &[i8], rows: usize) {
    assert!(rows >= 1, "i2_dot: no rows");
    assert!(q.len() >= nblk * 128, "i2_dot: activations too short");
    assert!(
        w.len() >= (rows - 1) * stride + nblk * 32,
        "i2_dot: weights too short"
    );
}

/// See [`KernelTable::tq2_rows_f32`].
pub(crate) type TqRowsFn = fn(
    w: &[u8],
    stride: usize,
    nb: usize,
    a: &[BlockQ8K],
    bsum: &[i32],
    dx: &[f32],
    out: &mut [f32],
);

/// Checks the bounds of `tq2_rows_f32` (`block_bytes`-long blocks, whole blocks read).
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) fn check_tq_rows(
    w: &[u8],
    stride: usize,
    nb: usize,
    a: &[BlockQ8K],
    bsum: &[i32],
    dx: &[f32],
    rows: usize,
    block_bytes: usize,
) {
    assert!((1..=4).contains(&rows), "tq_rows: 1..=4 rows");
    assert!(
        a.len() >= nb && bsum.len() >= nb && dx.len() >= nb,
        "tq_rows: activations too short"
    );
    assert!(
        w.len() >= (rows - 1) * stride + nb * block_bytes,
        "tq_rows: weights too short"
    );
}

/// See [`KernelTable::tq2_tile_f32`].
pub(crate) type TqTileFn = fn(
    w: &[u8],
    stride: usize,
    rows: usize,
    a: &[BlockQ8K],
    nb: usize,
    tokens: usize,
    bsum_dx: (&[i32], &[f32]),
    out: &mut [f32],
);

/// Checks the bounds of `tq2_tile_f32` and `tq1_tile_f32` (`block_bytes`-long blocks).
#[inline]
pub(crate) fn check_tq_tile(
    w: &[u8],
    stride: usize,
    (rows, nb, tokens, block_bytes): (usize, usize, usize, usize),
    a: &[BlockQ8K],
    (bsum, dx): (&[i32], &[f32]),
    out: &[f32],
) {
    assert!((1..=2).contains(&rows), "tq_tile: 1..=2 rows");
    assert!((1..=4).contains(&tokens), "tq_tile: 1..=4 tokens");
    assert!(out.len() >= 4 * rows, "tq_tile: output too short");
    assert!(
        a.len() >= tokens * nb && bsum.len() >= 4 * nb && dx.len() >= 4 * nb,
        "tq_tile: activations too short"
    );
    assert!(
        w.len() >= (rows - 1) * stride + nb * block_bytes,
        "tq_tile: weights too short"
    );
}

/// The most tokens any ISA's [`KernelTable::i2_dot_tile`] takes.
pub(crate) const I2_TILE_TOKENS_MAX: usize = 8;

/// See [`KernelTable::i2_dot_tile`].
pub(crate) type I2TileFn = fn(
    w: &[u8],
    stride: usize,
    nblk: usize,
    quads: usize,
    q: &[i8],
    q_stride: usize,
    out: &mut [i32],
    out_stride: usize,
    tokens: usize,
);

/// Checks the slice bounds every `i2_dot_tile` implementation relies on, and that `tokens`
/// is one of the ISA's tile sizes (`allowed`).
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) fn check_i2_dot_tile(
    w: &[u8],
    stride: usize,
    nblk: usize,
    quads: usize,
    q: &[i8],
    q_stride: usize,
    out: &[i32],
    out_stride: usize,
    (tokens, allowed): (usize, &[usize]),
) {
    assert!(quads > 0, "i2_dot_tile: no rows");
    assert!(
        allowed.contains(&tokens) && (1..=I2_TILE_TOKENS_MAX).contains(&tokens),
        "i2_dot_tile: tokens"
    );
    assert!(stride >= nblk * 32, "i2_dot_tile: row stride too short");
    let rows = 4 * quads;
    assert!(
        (rows - 1)
            .checked_mul(stride)
            .and_then(|v| v.checked_add(nblk * 32))
            .is_some_and(|need| w.len() >= need),
        "i2_dot_tile: weights too short"
    );
    assert!(
        out_stride >= rows && out.len() >= (tokens - 1) * out_stride + rows,
        "i2_dot_tile: sums too short"
    );
    check_i2_token_bounds(&w[..nblk * 32], nblk, q, q_stride, tokens);
}

/// Checks the slice bounds every `i2_dot_tokens` implementation relies on.
#[inline]
pub(crate) fn check_i2_dot_tokens(w: &[u8], nblk: usize, q: &[i8], q_stride: usize, ntok: usize) {
    assert!((1..=4).contains(&ntok), "i2_dot_tokens: 1..=4 tokens");
    check_i2_token_bounds(w, nblk, q, q_stride, ntok);
}

/// The weight and activation bounds of `ntok` (≥ 1) tokens' `i2_dot_tokens`.
#[inline]
fn check_i2_token_bounds(w: &[u8], nblk: usize, q: &[i8], q_stride: usize, ntok: usize) {
    assert!(w.len() >= nblk * 32, "i2_dot_tokens: weights too short");
    assert!(
        q_stride >= nblk.div_ceil(2) * 256,
        "i2_dot_tokens: token stride too short"
    );
    assert!(
        q.len() >= (ntok - 1) * q_stride + nblk.div_ceil(2) * 256,
        "i2_dot_tokens: activations too short"
    );
}

/// `i2_dot_tokens` through `i2_dot`, one token at a time (ISAs without a fused kernel).
pub(crate) fn i2_dot_tokens_by_token(
    dot: fn(&[u8], usize, usize, &[i8], &mut [i32]),
    w: &[u8],
    nblk: usize,
    q: &[i8],
    q_stride: usize,
    out: &mut [i32],
) {
    for (t, o) in out.iter_mut().enumerate() {
        let mut s = [0i32];
        dot(w, nblk * 32, nblk, &q[t * q_stride..], &mut s);
        *o = s[0];
    }
}

/// Checks the slice bounds every `tq*_dot` implementation relies on.
#[inline]
pub(crate) fn check_tq_dot(row: &[u8], a: &[BlockQ8K], nblk: usize, block_bytes: usize) {
    assert!(row.len() >= nblk * block_bytes, "tq_dot: weights too short");
    assert!(a.len() >= nblk, "tq_dot: activations too short");
}

/// Checks the shapes and bounds every `dot_cols_f32` and `dot_cols_f16` implementation
/// relies on; returns `(len, n)`, the length of every `xs[h]` and of every `outs[h]`.
#[inline]
pub(crate) fn check_dot_cols<T>(
    xs: &[&[f32]],
    m: &[T],
    stride: usize,
    outs: &[&mut [f32]],
) -> (usize, usize) {
    assert!(
        (1..=crate::exec::DOT_COLS_MAX).contains(&xs.len()) && outs.len() == xs.len(),
        "dot_cols_f32: 1 to {} vectors, one output each",
        crate::exec::DOT_COLS_MAX
    );
    let (len, n) = (xs[0].len(), outs[0].len());
    assert!(
        xs.iter().all(|x| x.len() == len) && outs.iter().all(|o| o.len() == n),
        "dot_cols_f32: vectors or outputs of different lengths"
    );
    if let Some(last) = len.checked_sub(1)
        && n > 0
    {
        let need = last.checked_mul(stride).and_then(|v| v.checked_add(n));
        assert!(
            need.is_some_and(|need| m.len() >= need),
            "dot_cols_f32: matrix too short"
        );
    }
    (len, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `prefetch_l2` takes any slice (empty, shorter than a line, unaligned, ending
    /// mid-line) and leaves the bytes as they were.
    #[test]
    fn prefetch_l2_takes_any_slice_and_changes_nothing() {
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        for (a, b) in [(0, 0), (3, 4), (1, 66), (0, 1000), (999, 1000), (17, 700)] {
            prefetch_l2(&bytes[a..b]);
        }
        assert!(
            bytes
                .iter()
                .enumerate()
                .all(|(i, &v)| v == (i as u32 * 7) as u8)
        );
    }

    /// `elem` (a multiple of 256 activations) in the ISA's `i2_arrange` layout.
    fn i2_arranged(k: &KernelTable, elem: &[i8]) -> Vec<i8> {
        let mut q = elem.to_vec();
        if let Some(arrange) = k.i2_arrange {
            for (src, dst) in elem.chunks_exact(256).zip(q.chunks_exact_mut(256)) {
                arrange(src, dst);
            }
        }
        q
    }

    /// Every ISA's several-token row kernel gives, for each of 1–4 tokens, the exact sum of
    /// the scalar kernel on element-order activations: block counts 1–9 and 17, token
    /// strides wider than a token, every code byte (code 3 included), activations at the
    /// int8 extremes, and the largest sums (all codes 3 against -128).
    #[test]
    fn i2_dot_tokens_equal_scalar_per_token() {
        let mut rng = crate::testing::lcg(0x2545_f491_4f6c_dd1du64);
        let mut next = || (rng() >> 33) as u32;
        for isa in Isa::available() {
            let k = table(isa).unwrap();
            for nblk in (1..=9usize).chain([17]) {
                for ntok in 1..=4 {
                    let q_stride = nblk.div_ceil(2) * 256 + 256 * (next() as usize % 2);
                    // Code 3 against -128 everywhere over 17 blocks: the largest 16-bit sums
                    // a kernel may hold (AVX2: 8 blocks · 4 · 2 · 3 · 128 = 24 576).
                    let worst = nblk == 17;
                    let w: Vec<u8> = (0..nblk * 32)
                        .map(|_| if worst { 0xff } else { next() as u8 })
                        .collect();
                    let extremes = (nblk + ntok) % 3 == 0;
                    let elem: Vec<i8> = (0..ntok * q_stride)
                        .map(|_| match (worst, extremes) {
                            (true, _) => -128,
                            (_, true) => [-128i8, 127][next() as usize % 2],
                            _ => next() as i8,
                        })
                        .collect();
                    let q = i2_arranged(k, &elem);
                    let mut got = [i32::MIN; 5];
                    (k.i2_dot_tokens)(&w, nblk, &q, q_stride, &mut got[..ntok]);
                    for (t, &g) in got[..ntok].iter().enumerate() {
                        let mut want = [0i32];
                        let qt = &elem[t * q_stride..];
                        (scalar::TABLE.i2_dot)(&w, nblk * 32, nblk, qt, &mut want);
                        assert_eq!(g, want[0], "{isa} nblk {nblk} token {t}/{ntok}");
                    }
                    assert_eq!(got[ntok], i32::MIN, "wrote past its tokens");
                }
            }
        }
    }

    /// Every ISA's decode row kernel gives the scalar kernel's exact sums for 1–9 rows:
    /// block counts 1–9 and 17 (runs of 16-bit sums cut anywhere), row strides wider than a
    /// row, random codes (3 included) and activations, and the largest sums of both signs
    /// (every code 3 against -128, then against 127), which the 16-bit runs must hold (AVX2:
    /// four blocks of `4c` products, 4 · 2 · 2 · 12 · 128 = 24 576).
    #[test]
    fn i2_dot_equals_scalar_at_the_16_bit_bounds() {
        let mut rng = crate::testing::lcg(0x9e37_79b9_7f4a_7c15u64);
        let mut next = || (rng() >> 33) as u32;
        for isa in Isa::available() {
            let k = table(isa).unwrap();
            for nblk in (1..=9usize).chain([17]) {
                for (case, fill) in [None, Some(-128i8), Some(127)].into_iter().enumerate() {
                    let rows = 1 + (nblk * 3 + case) % 9;
                    let stride = nblk * 32 + 32 * (next() as usize % 2);
                    let w: Vec<u8> = (0..rows * stride)
                        .map(|_| if fill.is_some() { 0xff } else { next() as u8 })
                        .collect();
                    let elem: Vec<i8> = (0..nblk.div_ceil(2) * 256)
                        .map(|_| fill.unwrap_or_else(|| next() as i8))
                        .collect();
                    let q = i2_arranged(k, &elem);
                    let mut got = [i32::MIN; 10];
                    (k.i2_dot)(&w, stride, nblk, &q, &mut got[..rows]);
                    let mut want = [0i32; 9];
                    (scalar::TABLE.i2_dot)(&w, stride, nblk, &elem, &mut want[..rows]);
                    assert_eq!(got[..rows], want[..rows], "{isa} nblk {nblk} case {case}");
                    assert_eq!(got[rows], i32::MIN, "wrote past its rows");
                }
            }
        }
    }

    /// The tile (four rows × each of `i2_tile_tokens` tokens) gives, bit for bit, the sums of the
    /// ISA's one-row kernel for every row and token: odd and even block counts (the odd
    /// last block takes its own path), one to three groups of four rows, row strides wider
    /// than the row, codes 0..=3 and activations at the int8 extremes; it writes nothing
    /// between the tokens' sums.
    #[test]
    fn i2_tile_equals_rows_of_i2_dot_tokens() {
        let mut rng = crate::testing::lcg(0x853c_49e6_748f_ea9bu64);
        let mut next = || (rng() >> 33) as u32;
        for isa in Isa::available() {
            let k = table(isa).unwrap();
            let Some(tile) = k.i2_dot_tile else { continue };
            for (nblk, &nt) in (1..=7).zip(k.i2_tile_tokens.iter().cycle()) {
                assert!((1..=I2_TILE_TOKENS_MAX).contains(&nt), "{isa}: tile tokens");
                let stride = nblk * 32 + 32 * (next() as usize % 2);
                let q_stride = nblk.div_ceil(2) * 256 + 256 * (next() as usize % 2);
                let quads = 1 + nblk % 3;
                let rows = 4 * quads;
                let w: Vec<u8> = (0..(rows - 1) * stride + nblk * 32)
                    .map(|_| next() as u8)
                    .collect();
                let extremes = nblk % 3 == 0;
                let elem: Vec<i8> = (0..nt * q_stride)
                    .map(|i| match (extremes, i % 3) {
                        (true, 0) => -128,
                        (true, _) => 127,
                        _ => next() as i8,
                    })
                    .collect();
                let q = i2_arranged(k, &elem);
                // Sums of token t at got[t*out_stride..][..rows]; the gaps stay untouched.
                let out_stride = rows + 3;
                let mut got = vec![i32::MIN; (nt - 1) * out_stride + rows];
                tile(
                    &w, stride, nblk, quads, &q, q_stride, &mut got, out_stride, nt,
                );
                for r in 0..rows {
                    for t0 in (0..nt).step_by(4) {
                        let mt = (nt - t0).min(4);
                        let mut want = [0i32; 4];
                        let qt = &q[t0 * q_stride..];
                        (k.i2_dot_tokens)(&w[r * stride..], nblk, qt, q_stride, &mut want[..mt]);
                        for (j, &wt) in want[..mt].iter().enumerate() {
                            let t = t0 + j;
                            assert_eq!(
                                got[t * out_stride + r],
                                wt,
                                "{isa} {nt} tokens, nblk {nblk} row {r} t {t}"
                            );
                        }
                    }
                }
                for t in 0..nt - 1 {
                    let gap = &got[t * out_stride + rows..(t + 1) * out_stride];
                    assert!(gap.iter().all(|&v| v == i32::MIN), "{isa} wrote a gap");
                }
            }
        }
    }

    /// `dot_f16` on every ISA over lengths around its step sizes (16 and 128 halves), with
    /// subnormal, zero, largest and ordinary halves: within `n·u·Σ|w·x|` of the exact sum
    /// (the conversion is exact; `n` roundings of at most `u = 2⁻²⁴` relative each, plus the
    /// absolute slack of subnormal sums). One infinite half makes the sum that infinity, a
    /// NaN half makes it NaN, wherever it sits.
    #[test]
    fn dot_f16_special_halves_on_every_isa() {
        let specials = [
            0x0001u16, 0x03ff, 0x8001, 0x0000, 0x8000, 0x7bff, 0xfbff, 0x3c00,
        ];
        let mut rng = crate::testing::lcg(0x6a09_e667_f3bc_c909u64);
        let mut next = || (rng() >> 33) as u32;
        for isa in Isa::available() {
            let k = table(isa).unwrap();
            for n in [1, 15, 16, 17, 127, 128, 129, 144, 255, 256, 300, 2560] {
                let h: Vec<u16> = (0..n)
                    .map(|_| match next() % 4 {
                        0 => specials[next() as usize % specials.len()],
                        _ => half::f16::from_f32_const((next() % 2001) as f32 / 1000.0 - 1.0)
                            .to_bits(),
                    })
                    .collect();
                let x: Vec<f32> = (0..n)
                    .map(|_| (next() % 3001) as f32 / 1000.0 - 1.5)
                    .collect();
                let bytes: Vec<u8> = h.iter().flat_map(|v| v.to_le_bytes()).collect();
                let (exact, mag) = h.iter().zip(&x).fold((0f64, 0f64), |(e, m), (&b, &xv)| {
                    let p = f64::from(half::f16::from_bits(b).to_f32()) * f64::from(xv);
                    (e + p, m + p.abs())
                });
                let got = (k.dot_f16)(&bytes, &x);
                let bound = n as f64 * 2f64.powi(-24) * mag * 1.01 + n as f64 * 2f64.powi(-149);
                assert!(
                    (f64::from(got) - exact).abs() <= bound,
                    "{isa:?} n={n}: {got} vs {exact} (bound {bound})"
                );
                let at = next() as usize % n;
                for (bits, want_nan) in [(0x7c00u16, false), (0xfc00, false), (0x7e00, true)] {
                    let mut b = bytes.clone();
                    b[2 * at..2 * at + 2].copy_from_slice(&bits.to_le_bytes());
                    let mut xs = x.clone();
                    xs[at] = 1.0;
                    let got = (k.dot_f16)(&b, &xs);
                    let inf = f32::from(half::f16::from_bits(bits));
                    if want_nan {
                        assert!(got.is_nan(), "{isa:?} n={n} NaN at {at}: {got}");
                    } else {
                        assert_eq!(got, inf, "{isa:?} n={n} {bits:#x} at {at}");
                    }
                }
            }
        }
    }

    /// The one-token rows kernels (TQ2_0 and TQ1_0) give, bit for bit, the ISA's one-row
    /// block sums run through the scalar epilogue: one to four rows, 1–11 blocks, row
    /// strides wider than the row, and f16 scales that are negative, zero, subnormal, the
    /// largest, infinite or NaN (see [`tq_rows`]); they write nothing past their rows.
    #[test]
    fn tq_rows_f32_have_the_one_token_loops_bits() {
        let mut rng = crate::testing::lcg(0x9b05_688c_2b3e_6c1fu64);
        let mut next = || (rng() >> 33) as u32;
        let mut checked = 0;
        for isa in Isa::available() {
            let k = table(isa).unwrap();
            let kinds = [
                (k.tq2_rows_f32, k.tq2_dot, 66),
                (k.tq1_rows_f32, k.tq1_dot, 54),
            ];
            for (rows_fn, dot, bytes) in kinds {
                let Some(rows_fn) = rows_fn else {
                    continue;
                };
                for nb in 1..=11 {
                    for rows in 1..=4 {
                        let special = (nb + rows) % 4 == 0;
                        let (w, stride) = tq_rows(&mut next, rows, nb, special, bytes);
                        let a = q8k_blocks(&mut next, nb, false);
                        let (bsum, dx) = sums_and_scales(&mut next, nb);
                        let mut got = [f32::NAN; 5];
                        rows_fn(&w, stride, nb, &a, &bsum, &dx, &mut got[..rows]);
                        for (r, &g) in got[..rows].iter().enumerate() {
                            let row = &w[r * stride..r * stride + nb * bytes];
                            let (bs, d) = (bsum.iter().copied(), dx.iter().copied());
                            let want = tq_epilogue(dot, row, bytes, &a, bs, d);
                            assert!(
                                same(g, want),
                                "{isa:?} {bytes}-byte blocks nb {nb} row {r}/{rows}: {g} vs {want}"
                            );
                        }
                        assert!(got[rows].is_nan(), "wrote past its rows");
                        checked += 1;
                    }
                }
            }
        }
        if Isa::available().contains(&Isa::Avx512Vnni) {
            assert!(checked > 0);
        }
    }

    /// Bad bounds panic before any load: no rows, five rows, short weights, fewer
    /// activation blocks, or fewer block sums and scales than blocks.
    #[test]
    fn tq2_rows_f32_refuses_bad_bounds() {
        let Some(rows_fn) = Isa::available()
            .into_iter()
            .find_map(|isa| table(isa).unwrap().tq2_rows_f32)
        else {
            return;
        };
        let a = ones(2);
        let w = vec![0u8; 4 * 132];
        let ok = |w: &[u8], stride, nb, a: &[BlockQ8K], rows: usize| {
            let (bsum, dx) = ([0i32; 2], [1f32; 2]);
            let mut out = [0f32; 5];
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                rows_fn(w, stride, nb, a, &bsum, &dx, &mut out[..rows])
            }))
            .is_ok()
        };
        assert!(ok(&w, 132, 2, &a, 4));
        assert!(!ok(&w, 132, 2, &a, 0), "no rows");
        assert!(!ok(&w, 132, 2, &a, 5), "five rows");
        assert!(!ok(&w[..3 * 132 + 131], 132, 2, &a, 4), "short weights");
        assert!(!ok(&w, 132, 2, &a[..1], 4), "short activations");
        assert!(!ok(&w, 132, 3, &a, 1), "more blocks than bsum/dx");
    }

    /// Bad bounds panic before any load (both tiles): three rows, five tokens, a short
    /// output, short weights, fewer activation blocks than tokens × blocks, or short block
    /// sums.
    #[test]
    fn tq_tiles_refuse_bad_bounds() {
        let tiles = Isa::available().into_iter().flat_map(|isa| {
            let k = table(isa).unwrap();
            [(k.tq2_tile_f32, 66), (k.tq1_tile_f32, 54)]
        });
        for (tile, bytes) in tiles {
            let Some(tile) = tile else {
                continue;
            };
            let a = ones(8);
            let w = vec![0u8; 4 * bytes];
            let (bsum, dx) = ([0i32; 8], [1f32; 8]);
            let ok = |w: &[u8], rows, a: &[BlockQ8K], tokens, bsum: &[i32], out: usize| {
                let mut o = [0f32; 12];
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    tile(w, 2 * bytes, rows, a, 2, tokens, (bsum, &dx), &mut o[..out])
                }))
                .is_ok()
            };
            assert!(ok(&w, 2, &a, 4, &bsum, 8));
            assert!(!ok(&w, 3, &a, 4, &bsum, 12), "three rows");
            assert!(!ok(&w, 2, &a, 5, &bsum, 8), "five tokens");
            assert!(!ok(&w, 2, &a, 4, &bsum, 7), "short output");
            assert!(
                !ok(&w[..4 * bytes - 1], 2, &a, 4, &bsum, 8),
                "short weights"
            );
            assert!(!ok(&w, 2, &a[..7], 4, &bsum, 8), "short activations");
            assert!(!ok(&w, 2, &a, 4, &bsum[..7], 8), "short block sums");
        }
    }

    /// The prefill tiles (TQ2_0 and TQ1_0) give, bit for bit, the one-token kernel's block
    /// sums run through the scalar epilogue for each row and token: 1–2 rows at a stride
    /// wider than a row, 1–4 tokens, block counts 1–9, random code bytes (TQ2_0's code 3,
    /// every TQ1_0 byte value), int8 extremes, and f16 scales that are zero, subnormal, the
    /// largest, infinite or NaN; they write nothing past their `4·rows` outputs.
    #[test]
    fn tq_tiles_have_the_per_token_loops_bits() {
        let mut rng = crate::testing::lcg(0x3c6e_f372_fe94_f82bu64);
        let mut next = || (rng() >> 33) as u32;
        let mut checked = 0;
        for isa in Isa::available() {
            let k = table(isa).unwrap();
            for (tile, dot, bytes) in [
                (k.tq2_tile_f32, k.tq2_dot, 66),
                (k.tq1_tile_f32, k.tq1_dot, 54),
            ] {
                let Some(tile) = tile else {
                    continue;
                };
                for nb in 1..=9 {
                    for (rows, tokens) in (1..=2).flat_map(|r| (1..=4).map(move |t| (r, t))) {
                        let special = (nb + tokens) % 3 == 0;
                        let (w, stride) = tq_rows(&mut next, rows, nb, special, bytes);
                        let a = q8k_blocks(&mut next, tokens * nb, special);
                        let (bsum, dx) = sums_and_scales(&mut next, 4 * nb);
                        let mut got = [f32::NAN; 9];
                        let lanes = (&bsum[..], &dx[..]);
                        let out = &mut got[..4 * rows];
                        tile(&w, stride, rows, &a, nb, tokens, lanes, out);
                        for r in 0..rows {
                            let row = &w[r * stride..r * stride + nb * bytes];
                            for t in 0..tokens {
                                let a = &a[t * nb..(t + 1) * nb];
                                let lane = |v: &[i32]| {
                                    v[t..].iter().step_by(4).copied().collect::<Vec<_>>()
                                };
                                let d: Vec<f32> = dx[t..].iter().step_by(4).copied().collect();
                                let (bs, d) = (lane(&bsum).into_iter(), d.into_iter());
                                let want = tq_epilogue(dot, row, bytes, a, bs, d);
                                let g = got[4 * r + t];
                                assert!(
                                    same(g, want),
                                    "{isa:?} {bytes}-byte blocks nb {nb} row {r}/{rows} \
                                     token {t}/{tokens}: {g} vs {want}"
                                );
                            }
                        }
                        assert!(
                            got[4 * rows..].iter().all(|v| v.is_nan()),
                            "wrote past its rows"
                        );
                        checked += 1;
                    }
                }
            }
        }
        // AVX2 and AVX-512 have both tiles: every shape of both formats ran on each.
        let simd = Isa::available()
            .iter()
            .filter(|&&i| i != Isa::Scalar)
            .count();
        assert_eq!(checked, simd * 2 * 9 * 8);
    }

    /// The TQ2_0 activation layout moves every one of a block's 256 values exactly once.
    #[test]
    fn tq_arrangements_are_permutations() {
        let q: Vec<i8> = (0..=255u8).map(|v| v as i8).collect();
        for isa in Isa::available() {
            let k = table(isa).unwrap();
            for arrange in [k.tq2_arrange].into_iter().flatten() {
                let mut out = vec![0i8; 256];
                arrange(&q, &mut out);
                let mut seen = out.iter().map(|&v| v as u8).collect::<Vec<_>>();
                seen.sort_unstable();
                assert!(seen.iter().copied().eq(0..=255u8), "{isa:?}");
            }
        }
    }

    /// Every ISA's TQ1_0 kernel gives the scalar kernel's block sums over raw bytes, not only
    /// the packer's: each of the 256 values of a stored byte (so every `u = s · 3ⁿ mod 256`,
    /// including the digit boundaries 85/86 and 170/171 that packed data never reaches) and
    /// activations at the int8 extremes.
    #[test]
    fn tq1_dot_matches_scalar_on_every_byte() {
        let mut rng = crate::testing::lcg(0x51f1_5eed_7a11_0b57u64);
        let mut next = || (rng() >> 33) as u32;
        let nb = 12;
        for isa in Isa::available() {
            let k = table(isa).unwrap();
            for round in 0..8u32 {
                // Round r puts byte value 32r + (i mod 32) at position i: all 256 values
                // over the rounds, in every position class of the block.
                let row: Vec<u8> = (0..nb * 54)
                    .map(|i| match next() % 4 {
                        0 => next() as u8,
                        _ => (32 * round + (i as u32 % 32)) as u8,
                    })
                    .collect();
                let a = q8k_blocks(&mut next, nb, round % 2 == 1);
                let (mut got, mut want) = (vec![0i32; nb], vec![0i32; nb]);
                (k.tq1_dot)(&row, &a, &mut got);
                (scalar::TABLE.tq1_dot)(&row, &a, &mut want);
                assert_eq!(got, want, "{isa:?} round {round}");
            }
        }
    }

    /// `rows` TQ rows of `nb` random `bytes`-long blocks (66: TQ2_0, 54: TQ1_0; the f16
    /// scale in the last two bytes), a random stride (one block wider or not) apart, and the
    /// stride. Block scales are ordinary f16 values, or when `special` also negative, zero,
    /// subnormal, the largest, infinite and NaN of either sign.
    fn tq_rows(
        next: &mut impl FnMut() -> u32,
        rows: usize,
        nb: usize,
        special: bool,
        bytes: usize,
    ) -> (Vec<u8>, usize) {
        const SPECIAL: [u16; 11] = [
            0x3c00, 0x2e66, 0xb800, 0x0000, 0x8000, 0x0001, 0x03ff, 0x7bff, 0x7c00, 0x7e01, 0xfe01,
        ];
        let stride = nb * bytes + bytes * (next() as usize % 2);
        let mut w: Vec<u8> = (0..(rows - 1) * stride + nb * bytes)
            .map(|_| next() as u8)
            .collect();
        for r in 0..rows {
            for b in 0..nb {
                let h = match special {
                    true => SPECIAL[next() as usize % SPECIAL.len()],
                    false => 0x3000 + (next() as u16 % 0x1000),
                };
                let at = r * stride + b * bytes + bytes - 2;
                w[at..at + 2].copy_from_slice(&h.to_le_bytes());
            }
        }
        (w, stride)
    }

    /// `n` Q8_K blocks of random activations, or of −128/127 only when `extremes`.
    fn q8k_blocks(next: &mut impl FnMut() -> u32, n: usize, extremes: bool) -> Vec<BlockQ8K> {
        (0..n)
            .map(|_| BlockQ8K {
                d: 1.0,
                qs: std::array::from_fn(|_| match extremes {
                    true => [-128i8, 127][next() as usize % 2],
                    false => next() as i8,
                }),
                bsums: [0; 16],
            })
            .collect()
    }

    /// `n` random block sums and activation scales.
    fn sums_and_scales(next: &mut impl FnMut() -> u32, n: usize) -> (Vec<i32>, Vec<f32>) {
        let bsum = (0..n).map(|_| next() as i32 % 20000 - 10000).collect();
        let dx = (0..n).map(|_| (next() % 1000) as f32 / 997.0).collect();
        (bsum, dx)
    }

    /// The one-token loop: `row`'s block sums against `a` by the ISA's one-row kernel `dot`
    /// (`bytes`-long blocks), then llama.cpp's scalar epilogue in block order.
    fn tq_epilogue(
        dot: fn(&[u8], &[BlockQ8K], &mut [i32]),
        row: &[u8],
        bytes: usize,
        a: &[BlockQ8K],
        bsum: impl Iterator<Item = i32>,
        dx: impl Iterator<Item = f32>,
    ) -> f32 {
        let nb = row.len() / bytes;
        let mut s = vec![0i32; nb];
        dot(row, a, &mut s);
        let mut want = 0f32;
        for (b, (bs, d)) in bsum.zip(dx).take(nb).enumerate() {
            let dw = crate::format::tq2_0::block_scale(&row[b * bytes..], bytes - 2);
            want += (s[b] - bs) as f32 * (d * dw);
        }
        want
    }

    /// Equal bits, or both NaN (two NaNs meeting may keep either payload).
    fn same(got: f32, want: f32) -> bool {
        got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan())
    }

    /// `n` Q8_K blocks of ones.
    fn ones(n: usize) -> Vec<BlockQ8K> {
        let one = BlockQ8K {
            d: 1.0,
            qs: [1; 256],
            bsums: [0; 16],
        };
        vec![one; n]
    }
}
