//! QK256 (`I2SQk256NoScale`): the row-padded kernel layout of I2_S codes.
//!
//! Each row is `ceil(cols / 256)` blocks of 256 elements in 64 bytes; each 128-element half
//! of a block is laid out exactly like an I2_S block. Elements past `cols` are padding
//! (written as code 1 = zero, never read into a result). The scale is not in the bytes: it
//! travels beside them (1.0 unless set). An I2_S tensor with `cols % 256 == 0` *is* a QK256
//! matrix plus a scale, byte for byte.
//!
//! ```text
//! row r: | block 0 (64 B)               | block 1 | ... | block B-1 (padded) |
//!        | I2_S half 0 (32 B) | half 1  |
//! ```

use super::i2s::{self, gemm_i2};
use super::{Format, TernaryMatrix, check_row};
use crate::act::Activations;
use crate::error::{KernelError, Result, check_len};
use crate::exec::Exec;

/// Elements per QK256 block.
pub const BLOCK: usize = 256;
/// Bytes per QK256 block.
pub const BLOCK_BYTES: usize = 64;

/// A QK256 matrix over owned or borrowed bytes, with its per-tensor scale beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct I2SQk256NoScale<B = Vec<u8>> {
    rows: usize,
    cols: usize,
    blocks_per_row: usize,
    row_stride_bytes: usize,
    scale: f32,
    qs: B,
}

impl<B: AsRef<[u8]>> I2SQk256NoScale<B> {
    /// Validates `qs`: exactly `rows * ceil(cols/256) * 64` bytes, nothing else. Scale 1.0.
    pub fn new(rows: usize, cols: usize, qs: B) -> Result<Self> {
        let layout = Format::Qk256.check_bytes(rows, cols, qs.as_ref().len())?;
        Ok(I2SQk256NoScale {
            rows,
            cols,
            blocks_per_row: cols.div_ceil(BLOCK),
            row_stride_bytes: layout.row_stride_bytes,
            scale: 1.0,
            qs,
        })
    }

    /// Sets the per-tensor scale (not validated here; see [`Self::try_with_scale`]).
    pub fn with_scale(mut self, scale: f32) -> Self {
        self.scale = scale;
        self
    }

    /// Sets the per-tensor scale, rejecting NaN and infinities.
    pub fn try_with_scale(self, scale: f32) -> Result<Self> {
        if scale.is_finite() {
            Ok(self.with_scale(scale))
        } else {
            Err(KernelError::NonFiniteScale {
                format: Format::Qk256,
                scale,
            })
        }
    }

    /// Number of 256-element blocks per row (`ceil(cols / 256)`).
    pub fn blocks_per_row(&self) -> usize {
        self.blocks_per_row
    }

    /// The per-tensor scale.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// The packed bytes.
    pub fn qs(&self) -> &[u8] {
        self.qs.as_ref()
    }

    /// A borrowed view of the same matrix.
    pub fn view(&self) -> I2SQk256NoScale<&[u8]> {
        I2SQk256NoScale {
            rows: self.rows,
            cols: self.cols,
            blocks_per_row: self.blocks_per_row,
            row_stride_bytes: self.row_stride_bytes,
            scale: self.scale,
            qs: self.qs.as_ref(),
        }
    }

    fn row(&self, row: usize) -> &[u8] {
        &self.qs.as_ref()[row * self.row_stride_bytes..(row + 1) * self.row_stride_bytes]
    }
}

impl I2SQk256NoScale<Vec<u8>> {
    /// Packs `codes` (`rows * cols`, each 0..=3); padding past `cols` is code 1. Scale 1.0.
    pub fn from_codes(codes: &[u8], rows: usize, cols: usize) -> Result<Self> {
        let layout = Format::Qk256.layout(rows, cols)?;
        check_len("codes [rows, cols]", codes.len(), rows * cols)?;
        let padded = layout.row_stride_bytes * 4;
        let mut row_codes = vec![1u8; padded];
        let mut qs = vec![0u8; layout.total];
        for (src, dst) in codes
            .chunks_exact(cols)
            .zip(qs.chunks_exact_mut(layout.row_stride_bytes))
        {
            row_codes[..cols].copy_from_slice(src);
            i2s::pack_blocks(&row_codes, dst);
        }
        Self::new(rows, cols, qs)
    }
}

impl<B: AsRef<[u8]> + Send + Sync> TernaryMatrix for I2SQk256NoScale<B> {
    fn format(&self) -> Format {
        Format::Qk256
    }
    fn rows(&self) -> usize {
        self.rows
    }
    fn cols(&self) -> usize {
        self.cols
    }
    fn row_stride_bytes(&self) -> usize {
        self.row_stride_bytes
    }

    fn unpack_codes_row(&self, row: usize, out: &mut [u8]) -> Result<()> {
        check_row(self.rows, row)?;
        check_len("row output", out.len(), self.cols)?;
        for (blk, o) in self
            .row(row)
            .chunks_exact(i2s::BLOCK_BYTES)
            .zip(out.chunks_mut(i2s::BLOCK))
        {
            for (j, c) in o.iter_mut().enumerate() {
                *c = i2s::code_at(blk, j);
            }
        }
        Ok(())
    }

    fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<()> {
        check_row(self.rows, row)?;
        check_len("row output", out.len(), self.cols)?;
        i2s::i2_dequantize(self.row(row), self.scale, out);
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
        gemm_i2(
            Format::Qk256,
            self.qs.as_ref(),
            self.rows,
            self.cols,
            self.row_stride_bytes,
            self.scale,
            acts,
            y,
            exec,
        )
    }
}

// Accessors named after the fields, for tests and callers that check geometry.
impl<B> I2SQk256NoScale<B> {
    /// Output dimension.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Input dimension.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// `blocks_per_row * 64`.
    pub fn row_stride_bytes(&self) -> usize {
        self.row_stride_bytes
    }
}
