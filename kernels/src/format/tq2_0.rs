//! llama.cpp TQ2_0 (GGUF type 35): 256-element blocks of 66 bytes, `qs[64]` then f16 `d`.
//!
//! Element `ch*128 + l*32 + k` (`ch < 2`, `l < 4`, `k < 32`) is byte `ch*32 + k` at bit
//! shift `2*l` (group 0 in the low bits, the reverse of I2_S). Value `(c - 1) * d`.
//!
//! ```text
//! block: | qs[0..32]: elements 0..128 | qs[32..64]: elements 128..256 | d: f16 |
//! ```

use half::f16;

use super::{Format, TernaryMatrix, check_row};
use crate::act::{Activations, ActsQ8K, BlockQ8K};
use crate::error::{KernelError, Result, check_len};
use crate::exec::Exec;

/// Bytes per 256-element block.
pub const BLOCK_BYTES: usize = 66;

/// Code of element `j` (0..256) of one block.
#[inline(always)]
pub(crate) fn code_at(blk: &[u8], j: usize) -> u8 {
    let (ch, l, k) = (j / 128, (j % 128) / 32, j % 32);
    (blk[ch * 32 + k] >> (2 * l)) & 3
}

/// The f16 scale of a block whose bytes start at `blk`, at byte offset `at`.
///
/// Converted inline in plain integer code (exact, NaNs quieted as by `vcvtph2ps`): `half`'s
/// `to_f32` picks F16C at run time through a call per value, which in the one-token TQ2_0
/// GEMV forced its float sum out of registers around every block and cost ~1/3 of the time.
#[inline(always)]
pub(crate) fn block_scale(blk: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([blk[at], blk[at + 1]]).to_f32_const()
}

/// The reference quantizer's per-block rule: `d = max|x|`, codes `round(x / d) + 1`
/// computed as `round_half_away(x * (1/d)) + 1`; `d = 0` gives all codes 1.
pub(crate) fn ternarize_block(x: &[f32], codes: &mut [u8]) -> f32 {
    let d = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    for (c, &v) in codes.iter_mut().zip(x) {
        *c = ((v * id).round() as i32 + 1).clamp(0, 2) as u8;
    }
    d
}

/// A TQ2_0 matrix over owned or borrowed bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Tq2_0<B = Vec<u8>> {
    rows: usize,
    cols: usize,
    bytes: B,
}

impl<B: AsRef<[u8]>> Tq2_0<B> {
    /// Validates `bytes`: `cols % 256 == 0`, exactly `rows * cols/256 * 66` bytes.
    pub fn new(rows: usize, cols: usize, bytes: B) -> Result<Self> {
        Format::Tq2_0.check_bytes(rows, cols, bytes.as_ref().len())?;
        Ok(Tq2_0 { rows, cols, bytes })
    }
    /// The packed bytes.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }
    /// A borrowed view.
    pub fn view(&self) -> Tq2_0<&[u8]> {
        Tq2_0 {
            rows: self.rows,
            cols: self.cols,
            bytes: self.bytes.as_ref(),
        }
    }
    fn row(&self, row: usize) -> &[u8] {
        let s = self.cols / 256 * BLOCK_BYTES;
        &self.bytes.as_ref()[row * s..(row + 1) * s]
    }
}

impl Tq2_0<Vec<u8>> {
    /// llama.cpp's reference quantizer (per block `d = max|x|`, stored as f16).
    pub fn quantize(x: &[f32], rows: usize, cols: usize) -> Result<Self> {
        let layout = Format::Tq2_0.layout(rows, cols)?;
        check_len("weights [rows, cols]", x.len(), rows * cols)?;
        let mut bytes = vec![0u8; layout.total];
        let mut codes = [0u8; 256];
        for (xb, blk) in x.chunks_exact(256).zip(bytes.chunks_exact_mut(BLOCK_BYTES)) {
            let d = ternarize_block(xb, &mut codes);
            pack_block(&codes, f16::from_f32(d), blk);
        }
        Self::new(rows, cols, bytes)
    }

    /// Packs `codes` (`rows * cols`, 0..=3) with one scale per block (`rows * cols / 256`).
    pub fn from_codes(codes: &[u8], scales: &[f32], rows: usize, cols: usize) -> Result<Self> {
        let layout = Format::Tq2_0.layout(rows, cols)?;
        check_len("codes [rows, cols]", codes.len(), rows * cols)?;
        check_len(
            "scales [rows * cols / 256]",
            scales.len(),
            rows * cols / 256,
        )?;
        let mut bytes = vec![0u8; layout.total];
        for ((cb, &d), blk) in codes
            .chunks_exact(256)
            .zip(scales)
            .zip(bytes.chunks_exact_mut(BLOCK_BYTES))
        {
            pack_block(cb, f16::from_f32(d), blk);
        }
        Self::new(rows, cols, bytes)
    }
}

fn pack_block(codes: &[u8], d: f16, blk: &mut [u8]) {
    blk[..64].fill(0);
    for (j, &c) in codes.iter().enumerate() {
        let (ch, l, k) = (j / 128, (j % 128) / 32, j % 32);
        blk[ch * 32 + k] |= (c & 3) << (2 * l);
    }
    blk[64..66].copy_from_slice(&d.to_le_bytes());
}

impl<B: AsRef<[u8]> + Send + Sync> TernaryMatrix for Tq2_0<B> {
    fn format(&self) -> Format {
        Format::Tq2_0
    }
    fn rows(&self) -> usize {
        self.rows
    }
    fn cols(&self) -> usize {
        self.cols
    }
    fn row_stride_bytes(&self) -> usize {
        self.cols / 256 * BLOCK_BYTES
    }

    fn unpack_codes_row(&self, row: usize, out: &mut [u8]) -> Result<()> {
        check_row(self.rows, row)?;
        check_len("row output", out.len(), self.cols)?;
        for (blk, o) in self
            .row(row)
            .chunks_exact(BLOCK_BYTES)
            .zip(out.chunks_exact_mut(256))
        {
            for (j, c) in o.iter_mut().enumerate() {
                *c = code_at(blk, j);
            }
        }
        Ok(())
    }

    fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<()> {
        check_row(self.rows, row)?;
        check_len("row output", out.len(), self.cols)?;
        for (blk, o) in self
            .row(row)
            .chunks_exact(BLOCK_BYTES)
            .zip(out.chunks_exact_mut(256))
        {
            let d = block_scale(blk, 64);
            for (j, v) in o.iter_mut().enumerate() {
                *v = (code_at(blk, j) as i32 - 1) as f32 * d;
            }
        }
        Ok(())
    }

    fn gemm_f32(&self, x: &[f32], tokens: usize, y: &mut [f32], exec: &Exec) -> Result<()> {
        super::gemm_f32_generic(self, x, tokens, y, exec)
    }

    fn quantize_activations(&self, x: &[f32], tokens: usize, _exec: &Exec) -> Result<Activations> {
        Ok(Activations::Q8K(crate::act::quantize_q8k(
            x, self.cols, tokens,
        )?))
    }

    fn gemm_quantized(&self, acts: &Activations, y: &mut [f32], exec: &Exec) -> Result<()> {
        let k = exec.kernels()?;
        gemm_tq(
            Format::Tq2_0,
            self.bytes.as_ref(),
            self.rows,
            self.cols,
            BLOCK_BYTES,
            64,
            TqDot {
                one: k.tq2_dot,
                arrange: k.tq2_arrange,
                rows_f32: k.tq2_rows_f32,
                tile_f32: k.tq2_tile_f32,
            },
            acts,
            y,
            exec,
        )
    }
}

/// A TQ format's inner kernels, as [`gemm_tq`] uses them.
pub(crate) struct TqDot {
    /// One row against one token's blocks (see `KernelTable::tq2_dot`).
    pub one: fn(&[u8], &[BlockQ8K], &mut [i32]),
    /// The activation layout the kernels read, if not element order.
    pub arrange: Option<crate::simd::ArrangeFn>,
    /// One token against up to four rows with the float epilogue (see
    /// `KernelTable::tq2_rows_f32`), if the ISA has it.
    pub rows_f32: Option<crate::simd::TqRowsFn>,
    /// Up to two rows against up to four tokens with the float epilogue (see
    /// `KernelTable::tq2_tile_f32`), if the ISA has it.
    pub tile_f32: Option<crate::simd::TqTileFn>,
}

/// Q8_K-activation product over rows of TQ blocks (TQ1_0 and TQ2_0 share it), in llama.cpp's
/// float order: `sumf = 0; for each block: sumf += (f32)sumi * (d_x * d_w)` with
/// `sumi = Σ (c-1)·q = Σ c·q − Σ bsums` exact in i32.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_tq(
    format: Format,
    bytes: &[u8],
    rows: usize,
    cols: usize,
    block_bytes: usize,
    scale_at: usize,
    dot: TqDot,
    acts: &Activations,
    y: &mut [f32],
    exec: &Exec,
) -> Result<()> {
    let a: &ActsQ8K = match acts {
        Activations::Q8K(a) if a.cols == cols => a,
        other => {
            return Err(KernelError::WrongActivations {
                format,
                got: other.describe(),
                expected: format!("Q8_K, cols={cols}"),
            });
        }
    };
    let tokens = a.tokens;
    super::check_gemm(rows, cols, tokens * cols, tokens, y.len())?;
    let nb = cols / 256;
    let stride = nb * block_bytes;
    let groups = tokens.div_ceil(4);
    // `y = W · a` with the kernels reading `kblocks` (`a`'s blocks as they want them), and
    // the epilogue reading each block's `Σ q` and `d` from `bsum` and `dx`, laid out as the
    // sums are: group of four tokens `g`, block `b`, token `4g + l` at `(g·nb + b)·4 + l`
    // (zero for lanes past the last token); one token's at `b`.
    let gemm = |kblocks: &[BlockQ8K], bsum: &[i32], dx: &[f32], y: &mut [f32]| {
        exec.for_row_chunks(rows, tokens, rows * cols * tokens, y, |r0, out| {
            if let Some(rows_f32) = dot.rows_f32.filter(|_| tokens == 1) {
                // Decode with the ISA's rows kernel, four rows a call.
                for (p, o) in out.chunks_mut(4).enumerate() {
                    let w = &bytes[(r0 + 4 * p) * stride..(r0 + 4 * p + o.len()) * stride];
                    rows_f32(w, stride, nb, kblocks, &bsum[..nb], &dx[..nb], o);
                }
                return;
            }
            if let Some(tile) = dot.tile_f32.filter(|_| tokens > 1) {
                // Rows in pairs against four tokens at a time, the epilogue in the kernel;
                // the pairs in chunks of about TILE_CHUNK_BYTES of weights, which stay in
                // L1 across the token groups while each group's activations stay in L1
                // across the chunk's pairs.
                let chunk_rows = (TILE_CHUNK_BYTES / (TQ_ROWS * stride)).max(1) * TQ_ROWS;
                for (c, oc) in out.chunks_mut(chunk_rows * tokens).enumerate() {
                    let rc = r0 + chunk_rows * c;
                    for t0 in (0..tokens).step_by(4) {
                        let m = (tokens - t0).min(4);
                        let kb = &kblocks[t0 * nb..(t0 + m) * nb];
                        let lanes = (&bsum[t0 * nb..(t0 + 4) * nb], &dx[t0 * nb..(t0 + 4) * nb]);
                        for (p, o) in oc.chunks_mut(TQ_ROWS * tokens).enumerate() {
                            let (r, nr) = (rc + TQ_ROWS * p, o.len() / tokens);
                            let w = &bytes[r * stride..(r + nr) * stride];
                            let mut v = [0f32; 4 * TQ_ROWS];
                            tile(w, stride, nr, kb, nb, m, lanes, &mut v[..4 * nr]);
                            for (oi, vi) in o.chunks_mut(tokens).zip(v.chunks_exact(4)) {
                                oi[t0..t0 + m].copy_from_slice(&vi[..m]);
                            }
                        }
                    }
                }
                return;
            }
            // Two rows' block-major sums of one group of tokens, one token's sums, two
            // rows' block scales.
            let mut st = (
                [0i32; 4 * TQ_ROWS * STACK_BLOCKS],
                [0i32; STACK_BLOCKS],
                [0f32; TQ_ROWS * STACK_BLOCKS],
            );
            let mut heap = (Vec::new(), Vec::new(), Vec::new());
            let (sums, one, d_w): (&mut [i32], &mut [i32], &mut [f32]) = if nb <= STACK_BLOCKS {
                (
                    &mut st.0[..4 * TQ_ROWS * nb],
                    &mut st.1[..nb],
                    &mut st.2[..TQ_ROWS * nb],
                )
            } else {
                heap.0.resize(4 * TQ_ROWS * nb, 0);
                heap.1.resize(nb, 0);
                heap.2.resize(TQ_ROWS * nb, 0.0);
                (&mut heap.0, &mut heap.1, &mut heap.2)
            };
            if tokens == 1 {
                // Decode: row by row, the block sums straight into the one-token order.
                let (bsum, dx) = (&bsum[..nb], &dx[..nb]);
                for (i, o) in out.iter_mut().enumerate() {
                    let w = &bytes[(r0 + i) * stride..(r0 + i + 1) * stride];
                    (dot.one)(w, kblocks, one);
                    let mut acc = 0f32;
                    for ((&s, blk), (&bs, &d)) in one
                        .iter()
                        .zip(w.chunks_exact(block_bytes))
                        .zip(bsum.iter().zip(dx))
                    {
                        acc += (s - bs) as f32 * (d * block_scale(blk, scale_at));
                    }
                    *o = acc;
                }
                return;
            }
            // ISAs without a tile: the one-token kernel per row and token, into the
            // block-major sums of a row pair and four tokens, then their epilogue.
            for (p, o) in out.chunks_mut(TQ_ROWS * tokens).enumerate() {
                let (r, nr) = (r0 + TQ_ROWS * p, o.len() / tokens);
                let w = &bytes[r * stride..(r + nr) * stride];
                for (b, d) in d_w[..nr * nb].iter_mut().enumerate() {
                    let (i, b) = (b / nb, b % nb);
                    *d = block_scale(&w[i * stride + b * block_bytes..], scale_at);
                }
                for g in 0..tokens.div_ceil(4) {
                    let (t0, m) = (4 * g, (tokens - 4 * g).min(4));
                    let kb = &kblocks[t0 * nb..(t0 + m) * nb];
                    let sums = &mut sums[..4 * nb * nr];
                    sums.fill(0);
                    for (i, si) in sums.chunks_exact_mut(4 * nb).enumerate() {
                        for (l, kt) in kb.chunks_exact(nb).enumerate() {
                            (dot.one)(&w[i * stride..(i + 1) * stride], kt, one);
                            for (b, &v) in one.iter().enumerate() {
                                si[4 * b + l] = v;
                            }
                        }
                    }
                    // Four tokens side by side, each lane the scalar order exactly.
                    let at = g * nb * 4..(g + 1) * nb * 4;
                    for (i, (si, dwi)) in sums
                        .chunks_exact(4 * nb)
                        .zip(d_w.chunks_exact(nb))
                        .enumerate()
                    {
                        let mut acc = [0f32; 4];
                        for (((s, bs), d), &dw) in si
                            .chunks_exact(4)
                            .zip(bsum[at.clone()].chunks_exact(4))
                            .zip(dx[at.clone()].chunks_exact(4))
                            .zip(dwi)
                        {
                            for l in 0..4 {
                                acc[l] += (s[l] - bs[l]) as f32 * (d[l] * dw);
                            }
                        }
                        o[i * tokens + t0..i * tokens + t0 + m].copy_from_slice(&acc[..m]);
                    }
                }
            }
        });
    };
    // Σ q and d per activation block in the epilogue's layout, once per call instead of once
    // per row (in this thread's reused buffers).
    let lanes = groups * nb * 4;
    crate::scratch::with_i32(lanes, |bsum| {
        crate::scratch::with_f32(lanes, |dx| {
            bsum.fill(0);
            dx.fill(0.0);
            for (t, blocks) in a.blocks.chunks_exact(nb).enumerate() {
                for (b, blk) in blocks.iter().enumerate() {
                    // One token (decode): block order, nothing between.
                    let at = if tokens == 1 {
                        b
                    } else {
                        ((t / 4) * nb + b) * 4 + t % 4
                    };
                    bsum[at] = blk.bsums.iter().map(|&v| i32::from(v)).sum();
                    dx[at] = blk.d;
                }
            }
            // The blocks as the kernels read them (rearranged once per call where the ISA
            // wants it).
            match dot.arrange {
                Some(arrange) => crate::scratch::with_blocks(a.blocks.len(), |kb| {
                    for (dst, src) in kb.iter_mut().zip(&a.blocks) {
                        *dst = *src;
                        arrange(&src.qs, &mut dst.qs);
                    }
                    gemm(kb, bsum, dx, y);
                }),
                None => gemm(&a.blocks, bsum, dx, y),
            }
        })
    });
    Ok(())
}

/// Rows per call of the prefill tile (three measured the same as two).
const TQ_ROWS: usize = 2;

/// Bytes of weights per chunk of rows of the prefill tile: the chunk's rows are read once
/// per group of four tokens, so they are kept to about half of a 32 KiB L1 (the group's
/// activations take the rest: 4 · 10 Q8_K blocks of 292 bytes on a 2560-column row).
const TILE_CHUNK_BYTES: usize = 16 * 1024;

/// Blocks per row whose per-chunk sums and scales live on the stack (cols ≤ 16384).
const STACK_BLOCKS: usize = 64;
