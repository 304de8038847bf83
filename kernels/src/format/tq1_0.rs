//! llama.cpp TQ1_0 (GGUF type 34): 256-element blocks of 54 bytes, `qs[48]`, `qh[4]`, f16 `d`.
//!
//! Codes are base-3 digits, five per byte, most significant first:
//! `qs[m]` (m < 32) holds elements `m + 32n` (n < 5); `qs[32 + m]` (m < 16) holds
//! `160 + 16n + m`; `qh[m]` (m < 4) holds `240 + 4n + m` (n < 4, fifth digit 0). A packed
//! byte `b` (0..243) is stored as `ceil(b * 256 / 243)`, so digit `n` of stored byte `s` is
//! `((s * 3^n) mod 256) * 3 >> 8`.

use half::f16;

use super::tq2_0::{block_scale, gemm_tq, ternarize_block};
use super::{Format, TernaryMatrix, check_row};
use crate::act::Activations;
use crate::error::{Result, check_len};
use crate::exec::Exec;

/// Bytes per 256-element block.
pub const BLOCK_BYTES: usize = 54;

const POW3: [u8; 5] = [1, 3, 9, 27, 81];

/// `(byte index within the block, digit index)` of element `j`.
#[inline(always)]
fn position(j: usize) -> (usize, usize) {
    match j {
        0..160 => (j % 32, j / 32),
        160..240 => (32 + (j - 160) % 16, (j - 160) / 16),
        _ => (48 + (j - 240) % 4, (j - 240) / 4),
    }
}

/// Digit `n` of a stored byte.
#[inline(always)]
pub(crate) fn digit(s: u8, n: usize) -> u8 {
    let u = s.wrapping_mul(POW3[n]) as u16;
    ((u * 3) >> 8) as u8
}

/// Decodes one block's 256 codes.
pub(crate) fn unpack_block(blk: &[u8], out: &mut [u8; 256]) {
    for (j, c) in out.iter_mut().enumerate() {
        let (b, n) = position(j);
        *c = digit(blk[b], n);
    }
}

fn pack_block(codes: &[u8], d: f16, blk: &mut [u8]) {
    // Accumulate base-3 numbers, most significant digit first.
    let mut acc = [0u16; 52];
    for (j, &c) in codes.iter().enumerate() {
        let (b, _) = position(j);
        acc[b] = acc[b] * 3 + u16::from(c.min(2));
    }
    for a in &mut acc[48..] {
        *a *= 3; // qh holds four digits: shift them to the most significant places
    }
    for (dst, &a) in blk[..52].iter_mut().zip(&acc) {
        *dst = (a * 256).div_ceil(243) as u8; // ceil(b * 256 / 243)
    }
    blk[52..54].copy_from_slice(&d.to_le_bytes());
}

/// A TQ1_0 matrix over owned or borrowed bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Tq1_0<B = Vec<u8>> {
    rows: usize,
    cols: usize,
    bytes: B,
}

impl<B: AsRef<[u8]>> Tq1_0<B> {
    /// Validates `bytes`: `cols % 256 == 0`, exactly `rows * cols/256 * 54` bytes.
    pub fn new(rows: usize, cols: usize, bytes: B) -> Result<Self> {
        Format::Tq1_0.check_bytes(rows, cols, bytes.as_ref().len())?;
        Ok(Tq1_0 { rows, cols, bytes })
    }
    /// The packed bytes.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }
    /// A borrowed view.
    pub fn view(&self) -> Tq1_0<&[u8]> {
        Tq1_0 {
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

impl Tq1_0<Vec<u8>> {
    /// llama.cpp's reference quantizer (per block `d = max|x|`, stored as f16).
    pub fn quantize(x: &[f32], rows: usize, cols: usize) -> Result<Self> {
        let layout = Format::Tq1_0.layout(rows, cols)?;
        check_len("weights [rows, cols]", x.len(), rows * cols)?;
        let mut bytes = vec![0u8; layout.total];
        let mut codes = [0u8; 256];
        for (xb, blk) in x.chunks_exact(256).zip(bytes.chunks_exact_mut(BLOCK_BYTES)) {
            let d = ternarize_block(xb, &mut codes);
            pack_block(&codes, f16::from_f32(d), blk);
        }
        Self::new(rows, cols, bytes)
    }

    /// Packs `codes` (`rows * cols`, 0..=2; 3 is stored as 2) with one scale per block.
    pub fn from_codes(codes: &[u8], scales: &[f32], rows: usize, cols: usize) -> Result<Self> {
        let layout = Format::Tq1_0.layout(rows, cols)?;
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

impl<B: AsRef<[u8]> + Send + Sync> TernaryMatrix for Tq1_0<B> {
    fn format(&self) -> Format {
        Format::Tq1_0
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
        let mut codes = [0u8; 256];
        for (blk, o) in self
            .row(row)
            .chunks_exact(BLOCK_BYTES)
            .zip(out.chunks_exact_mut(256))
        {
            unpack_block(blk, &mut codes);
            o.copy_from_slice(&codes);
        }
        Ok(())
    }

    fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<()> {
        check_row(self.rows, row)?;
        check_len("row output", out.len(), self.cols)?;
        let mut codes = [0u8; 256];
        for (blk, o) in self
            .row(row)
            .chunks_exact(BLOCK_BYTES)
            .zip(out.chunks_exact_mut(256))
        {
            unpack_block(blk, &mut codes);
            let d = block_scale(blk, 52);
            for (v, &c) in o.iter_mut().zip(&codes) {
                *v = (c as i32 - 1) as f32 * d;
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
            Format::Tq1_0,
            self.bytes.as_ref(),
            self.rows,
            self.cols,
            BLOCK_BYTES,
            52,
            super::tq2_0::TqDot {
                one: k.tq1_dot,
                arrange: None,
                rows_f32: k.tq1_rows_f32,
                tile_f32: k.tq1_tile_f32,
            },
            acts,
            y,
            exec,
        )
    }
}
