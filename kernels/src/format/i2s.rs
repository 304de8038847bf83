//! bitnet.cpp I2_S (GGUF type 36).
//!
//! The whole tensor (`n = rows * cols` elements, flat row-major) is cut into 128-element
//! blocks of 32 bytes. Byte `g` of a block holds elements `g, g+32, g+64, g+96` in bits
//! 7:6, 5:4, 3:2, 1:0. One f32 scale follows the codes at byte `n / 4`, then 28 bytes of
//! padding: `n / 4 + 32` bytes in all. `cols % 128 == 0`, so every row is whole blocks.

use super::qk256::I2SQk256NoScale;
use super::{Format, TernaryMatrix, check_gemm, check_row};
use crate::act::{Activations, ActsI8};
use crate::error::{KernelError, Result, check_len};
use crate::exec::Exec;
use crate::simd::I2_TILE_TOKENS_MAX;

/// Elements per I2_S block.
pub const BLOCK: usize = 128;
/// Bytes per I2_S block.
pub const BLOCK_BYTES: usize = 32;
/// Bytes after the codes: the f32 scale and 28 bytes of padding.
pub const SCALE_TAIL: usize = 32;

/// Bit shift of group `g` (0..4) inside a block byte: group 0 sits in bits 7:6.
#[inline(always)]
pub(crate) fn group_shift(g: usize) -> u32 {
    6 - 2 * g as u32
}

/// Code of element `j` (0..128) of one 32-byte block.
#[inline(always)]
pub(crate) fn code_at(block: &[u8], j: usize) -> u8 {
    (block[j % 32] >> group_shift(j / 32)) & 3
}

/// Unpacks whole 128-element blocks: `out.len() == blocks.len() * 4`.
pub(crate) fn unpack_blocks(blocks: &[u8], out: &mut [u8]) {
    for (blk, o) in blocks
        .chunks_exact(BLOCK_BYTES)
        .zip(out.chunks_exact_mut(BLOCK))
    {
        for (j, c) in o.iter_mut().enumerate() {
            *c = code_at(blk, j);
        }
    }
}

/// Packs codes (0..=3) into whole blocks: `codes.len() == out.len() * 4`, a multiple of 128.
pub(crate) fn pack_blocks(codes: &[u8], out: &mut [u8]) {
    for (cb, blk) in codes
        .chunks_exact(BLOCK)
        .zip(out.chunks_exact_mut(BLOCK_BYTES))
    {
        blk.fill(0);
        for (j, &c) in cb.iter().enumerate() {
            blk[j % 32] |= (c & 3) << group_shift(j / 32);
        }
    }
}

/// An I2_S tensor over owned (`Vec<u8>`) or borrowed (`&[u8]`, e.g. a memory map) bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct I2s<B = Vec<u8>> {
    rows: usize,
    cols: usize,
    scale: f32,
    bytes: B,
}

impl<B: AsRef<[u8]>> I2s<B> {
    /// Validates `bytes` as a `rows x cols` I2_S tensor: exactly `rows*cols/4 + 32` bytes,
    /// `cols % 128 == 0`, a finite scale.
    pub fn new(rows: usize, cols: usize, bytes: B) -> Result<Self> {
        let layout = Format::I2s.check_bytes(rows, cols, bytes.as_ref().len())?;
        let at = layout.total - SCALE_TAIL;
        let b = bytes.as_ref();
        let scale = f32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        if !scale.is_finite() {
            return Err(KernelError::NonFiniteScale {
                format: Format::I2s,
                scale,
            });
        }
        Ok(I2s {
            rows,
            cols,
            scale,
            bytes,
        })
    }

    /// The whole tensor bytes (codes, scale, padding).
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }

    /// The packed codes: the first `rows * cols / 4` bytes.
    pub fn codes(&self) -> &[u8] {
        &self.bytes.as_ref()[..self.rows * self.cols / 4]
    }

    /// The per-tensor scale stored after the codes.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// A borrowed view of the same tensor.
    pub fn view(&self) -> I2s<&[u8]> {
        I2s {
            rows: self.rows,
            cols: self.cols,
            scale: self.scale,
            bytes: self.bytes.as_ref(),
        }
    }

    /// The same codes as a QK256 matrix (zero copies), carrying this tensor's scale.
    /// Needs `cols % 256 == 0`, where each 256-element QK256 block is two I2_S blocks.
    pub fn as_qk256(&self) -> Result<I2SQk256NoScale<&[u8]>> {
        if !self.cols.is_multiple_of(256) {
            return Err(KernelError::ColsNotMultiple {
                format: Format::Qk256,
                cols: self.cols,
                multiple: 256,
            });
        }
        Ok(I2SQk256NoScale::new(self.rows, self.cols, self.codes())?.with_scale(self.scale))
    }
}

impl I2s<Vec<u8>> {
    /// bitnet.cpp's quantizer: `scale = max|w|`, `c = |w| < 1e-6 ? 1 : (w > 0 ? 2 : 0)`.
    /// Meant for ternary-valued inputs (`t * scale`); see [`crate::quant::absmean_ternary`]
    /// for full-precision weights.
    pub fn quantize(weights: &[f32], rows: usize, cols: usize) -> Result<Self> {
        let layout = Format::I2s.layout(rows, cols)?;
        check_len("weights [rows, cols]", weights.len(), rows * cols)?;
        let scale = weights.iter().fold(0f32, |m, w| m.max(w.abs()));
        let codes: Vec<u8> = weights
            .iter()
            .map(|&w| {
                if w.abs() < 1e-6 {
                    1
                } else if w > 0.0 {
                    2
                } else {
                    0
                }
            })
            .collect();
        Self::pack(&codes, rows, cols, scale, layout.total)
    }

    /// Packs `codes` (`rows * cols`, each 0..=3) with `scale`.
    pub fn from_codes(codes: &[u8], rows: usize, cols: usize, scale: f32) -> Result<Self> {
        let layout = Format::I2s.layout(rows, cols)?;
        check_len("codes [rows, cols]", codes.len(), rows * cols)?;
        Self::pack(codes, rows, cols, scale, layout.total)
    }

    fn pack(codes: &[u8], rows: usize, cols: usize, scale: f32, total: usize) -> Result<Self> {
        let mut bytes = vec![0u8; total];
        let n4 = total - SCALE_TAIL;
        pack_blocks(codes, &mut bytes[..n4]);
        bytes[n4..n4 + 4].copy_from_slice(&scale.to_le_bytes());
        Self::new(rows, cols, bytes)
    }
}

impl<B: AsRef<[u8]> + Send + Sync> TernaryMatrix for I2s<B> {
    fn format(&self) -> Format {
        Format::I2s
    }
    fn rows(&self) -> usize {
        self.rows
    }
    fn cols(&self) -> usize {
        self.cols
    }
    fn row_stride_bytes(&self) -> usize {
        self.cols / 4
    }

    fn unpack_codes_row(&self, row: usize, out: &mut [u8]) -> Result<()> {
        check_row(self.rows, row)?;
        check_len("row output", out.len(), self.cols)?;
        let s = self.cols / 4;
        unpack_blocks(&self.codes()[row * s..(row + 1) * s], out);
        Ok(())
    }

    fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<()> {
        check_row(self.rows, row)?;
        check_len("row output", out.len(), self.cols)?;
        let s = self.cols / 4;
        i2_dequantize(&self.codes()[row * s..(row + 1) * s], self.scale, out);
        Ok(())
    }

    fn gemm_f32(&self, x: &[f32], tokens: usize, y: &mut [f32], exec: &Exec) -> Result<()> {
        super::gemm_f32_generic(self, x, tokens, y, exec)
    }

    fn quantize_activations(&self, x: &[f32], tokens: usize, exec: &Exec) -> Result<Activations> {
        Ok(Activations::I8(crate::act::quantize_i8(
            x, self.cols, tokens, exec,
        )?))
    }

    fn gemm_quantized(&self, acts: &Activations, y: &mut [f32], exec: &Exec) -> Result<()> {
        let stride = self.cols / 4;
        gemm_i2(
            Format::I2s,
            self.codes(),
            self.rows,
            self.cols,
            stride,
            self.scale,
            acts,
            y,
            exec,
        )
    }
}

/// `(c - 1) * scale` for the first `out.len()` elements of consecutive I2 blocks.
pub(crate) fn i2_dequantize(blocks: &[u8], scale: f32, out: &mut [f32]) {
    for (blk, o) in blocks.chunks(BLOCK_BYTES).zip(out.chunks_mut(BLOCK)) {
        for (j, v) in o.iter_mut().enumerate() {
            *v = (code_at(blk, j) as i32 - 1) as f32 * scale;
        }
    }
}

/// bitnet.cpp's float epilogue of the int8 product, shared by every ISA:
/// `((f32)Σc·q − (f32)Σq) / s_act × s_w`.
#[inline(always)]
pub(crate) fn finish_i2(sumi: i32, act_sum: i32, act_scale: f32, w_scale: f32) -> f32 {
    ((sumi as f32) - (act_sum as f32)) / act_scale * w_scale
}

/// From this many tokens on, the int8 GEMM splits tokens (not rows) across threads.
const TOKEN_SPLIT_MIN: usize = 16;
/// Rows per chunk of the token-split prefill (a 2560-column chunk: 20 KiB of codes).
const PREFILL_ROWS: usize = 32;
/// Activation bytes a prefill tile's tokens may take so that they stay in a 32 KiB L1
/// beside the row's codes: eight tokens of 2560 columns (20 KiB), four of 6912 (27 KiB;
/// eight ran 28% slower on Zen 3).
const TILE_ACT_BYTES: usize = 24 << 10;

/// Int8-activation product over rows of 128-element I2 blocks (I2_S and QK256 share it).
/// `stride` is the row stride in bytes; every row holds `stride / 32` blocks.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_i2(
    format: Format,
    codes: &[u8],
    rows: usize,
    cols: usize,
    stride: usize,
    w_scale: f32,
    acts: &Activations,
    y: &mut [f32],
    exec: &Exec,
) -> Result<()> {
    let a: &ActsI8 = match acts {
        Activations::I8(a) if a.cols == cols => a,
        other => {
            return Err(KernelError::WrongActivations {
                format,
                got: other.describe(),
                expected: format!("int8 per-token, cols={cols}"),
            });
        }
    };
    let tokens = a.tokens;
    check_gemm(rows, cols, tokens * cols, tokens, y.len())?;
    let k = exec.kernels()?;
    debug_assert!(stride / BLOCK_BYTES * BLOCK <= a.stride);
    if tokens >= TOKEN_SPLIT_MIN {
        gemm_i2_by_tokens(k, codes, rows, cols, stride, w_scale, a, y, exec);
        return Ok(());
    }
    // Activations in the order this ISA's kernel reads them (once per token, not per row),
    // in this thread's reused buffer.
    match k.i2_arrange {
        Some(arrange) => crate::scratch::with_i8(a.q.len(), |buf| {
            for (src, dst) in
                a.q.chunks_exact(a.stride)
                    .zip(buf.chunks_exact_mut(a.stride))
            {
                arrange(src, dst);
            }
            gemm_i2_arranged(k, codes, rows, cols, stride, w_scale, a, buf, y, exec);
        }),
        None => gemm_i2_arranged(k, codes, rows, cols, stride, w_scale, a, &a.q, y, exec),
    }
    Ok(())
}

/// The integer sums of rows `r0..r0 + nr` for the `m` (1..=[`I2_TILE_TOKENS_MAX`]) tokens
/// of `qt` (`q_stride` apart), token `t`'s sum of row `r0 + i` at `raw[t*raw_stride + i]`:
/// the ISA's tile for whole groups of four rows when `m` is one of its token counts, the
/// rest row by row, four tokens at a time; either way the same exact sums.
#[allow(clippy::too_many_arguments)]
fn token_sums(
    k: &crate::simd::KernelTable,
    codes: &[u8],
    stride: usize,
    nblk: usize,
    (r0, nr): (usize, usize),
    (qt, q_stride, m): (&[i8], usize, usize),
    raw: &mut [i32],
    raw_stride: usize,
) {
    let mut i0 = 0;
    if let (Some(tile), quads @ 1..) = (k.i2_dot_tile, nr / 4)
        && k.i2_tile_tokens.contains(&m)
    {
        let w = &codes[r0 * stride..];
        tile(w, stride, nblk, quads, qt, q_stride, raw, raw_stride, m);
        i0 = 4 * quads;
    }
    for i in i0..nr {
        let w = &codes[(r0 + i) * stride..(r0 + i + 1) * stride];
        for t0 in (0..m).step_by(4) {
            let mt = (m - t0).min(4);
            let mut s = [0i32; 4];
            (k.i2_dot_tokens)(w, nblk, &qt[t0 * q_stride..], q_stride, &mut s[..mt]);
            for (j, &sj) in s[..mt].iter().enumerate() {
                raw[(t0 + j) * raw_stride + i] = sj;
            }
        }
    }
}

/// [`gemm_i2`] of a long prompt: threads split the tokens, each computing every row for its
/// own tokens and writing its rows of y in place (no transpose), after arranging its own
/// tokens' activations for the ISA's kernel (in its reused buffer, in parallel). Rows go in
/// chunks of PREFILL_ROWS (their weights stay in L1/L2 across the chunk's token groups),
/// tokens in groups of the ISA's tile (four on AVX-512; on AVX2 eight, four for rows too
/// long for eight tokens' activations to stay in L1 across the chunk's rows, which is what
/// the groups are for); each weight chunk is decoded once per group, and
/// with the AVX-512 tile each activation vector is loaded once per four rows.
#[allow(clippy::too_many_arguments)]
fn gemm_i2_by_tokens(
    k: &crate::simd::KernelTable,
    codes: &[u8],
    rows: usize,
    cols: usize,
    stride: usize,
    w_scale: f32,
    a: &ActsI8,
    y: &mut [f32],
    exec: &Exec,
) {
    let nblk = stride / BLOCK_BYTES;
    // Tokens per group: the ISA tile's largest whose activations stay in L1 beside the
    // weights, else its smallest; four without a tile.
    let group = match (k.i2_dot_tile, k.i2_tile_tokens) {
        (Some(_), sizes @ [.., last]) => sizes
            .iter()
            .copied()
            .find(|&t| t * nblk * BLOCK <= TILE_ACT_BYTES)
            .unwrap_or(*last),
        _ => 4,
    };
    // Tokens t0.. of `ys`, activations `q` (token t at `q[t * a.stride..]`).
    let chunk = |t0: usize, q: &[i8], ys: &mut [f32]| {
        let nt = ys.len() / rows;
        let mut raw = [[0i32; PREFILL_ROWS]; I2_TILE_TOKENS_MAX];
        for r0 in (0..rows).step_by(PREFILL_ROWS) {
            let nr = (rows - r0).min(PREFILL_ROWS);
            // The next chunk's weights, a share per group of tokens, so they come from
            // L2 when its first group starts (a short stream per row that the hardware
            // prefetcher would not follow).
            let next = &codes[((r0 + nr) * stride).min(codes.len())..];
            let next = &next[..next.len().min(PREFILL_ROWS * stride)];
            let share = next
                .len()
                .div_ceil(nt.div_ceil(group))
                .next_multiple_of(64)
                .max(64);
            let mut shares = next.chunks(share);
            let mut t = 0;
            while t < nt {
                if let Some(part) = shares.next() {
                    crate::simd::prefetch_l2(part);
                }
                let m = (nt - t).min(group);
                let toks = (&q[t * a.stride..], a.stride, m);
                let sums = raw.as_flattened_mut();
                token_sums(k, codes, stride, nblk, (r0, nr), toks, sums, PREFILL_ROWS);
                for (j, rj) in raw[..m].iter().enumerate() {
                    let tt = t0 + t + j;
                    let yrow = &mut ys[(t + j) * rows + r0..(t + j) * rows + r0 + nr];
                    let (asum, ascale) = (a.sum[tt], a.scale[tt]);
                    for (yv, &sv) in yrow.iter_mut().zip(&rj[..nr]) {
                        *yv = finish_i2(sv, asum, ascale, w_scale);
                    }
                }
                t += m;
            }
        }
    };
    exec.for_token_groups(y, rows, 4, rows * cols * a.tokens, |t0, ys| {
        let own = &a.q[t0 * a.stride..(t0 + ys.len() / rows) * a.stride];
        match k.i2_arrange {
            Some(arrange) => crate::scratch::with_i8(own.len(), |buf| {
                let pairs = own
                    .chunks_exact(a.stride)
                    .zip(buf.chunks_exact_mut(a.stride));
                for (src, dst) in pairs {
                    arrange(src, dst);
                }
                chunk(t0, buf, ys);
            }),
            None => chunk(t0, own, ys),
        }
    });
}

/// Rows per `i2_dot` call in decode (a whole 32-row task of the executor): the call's checks
/// and dispatch were a visible share of a hot GEMV at four rows a call (2560 columns are 20
/// blocks a row), and the sums fit a small stack array.
const DECODE_ROWS: usize = 32;

/// [`gemm_i2`] of one token or a short prompt (threads split the rows), over activations `q`
/// as the ISA's `i2_arrange` leaves them.
#[allow(clippy::too_many_arguments)]
fn gemm_i2_arranged(
    k: &crate::simd::KernelTable,
    codes: &[u8],
    rows: usize,
    cols: usize,
    stride: usize,
    w_scale: f32,
    a: &ActsI8,
    q: &[i8],
    y: &mut [f32],
    exec: &Exec,
) {
    let tokens = a.tokens;
    let nblk = stride / BLOCK_BYTES;
    exec.for_row_chunks(rows, tokens, rows * cols * tokens, y, |r0, out| {
        let nr = out.len() / tokens;
        if tokens == 1 {
            // Decode: the chunk's rows in runs of `DECODE_ROWS` per kernel call.
            let mut r = 0;
            while r < nr {
                let m = (nr - r).min(DECODE_ROWS);
                let mut s = [0i32; DECODE_ROWS];
                (k.i2_dot)(&codes[(r0 + r) * stride..], stride, nblk, q, &mut s[..m]);
                for (i, &si) in s[..m].iter().enumerate() {
                    out[r + i] = finish_i2(si, a.sum[0], a.scale[0], w_scale);
                }
                r += m;
            }
            return;
        }
        // Prefill: four tokens at a time (their activations stay in L1) against every row of
        // the chunk (which stays in L1/L2 across token groups); each weight chunk is decoded
        // once per group of four tokens (four rows at a time with the ISA's tile). The
        // integer sums are kept token by token (`raw[t*nr + i]`) and finished afterwards.
        let mut raw = vec![0i32; out.len()];
        let mut t = 0;
        while t < tokens {
            let m = (tokens - t).min(4);
            let toks = (&q[t * a.stride..], a.stride, m);
            token_sums(
                k,
                codes,
                stride,
                nblk,
                (r0, nr),
                toks,
                &mut raw[t * nr..],
                nr,
            );
            t += m;
        }
        for (i, o) in out.chunks_exact_mut(tokens).enumerate() {
            for (tt, ot) in o.iter_mut().enumerate() {
                *ot = finish_i2(raw[tt * nr + i], a.sum[tt], a.scale[tt], w_scale);
            }
        }
    });
}
