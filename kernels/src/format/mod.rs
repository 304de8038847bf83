//! The packed ternary formats: one struct per format, one [`TernaryMatrix`] impl each.
//!
//! Every format stores a ternary value `t ∈ {-1, 0, +1}` as the 2-bit code `c = t + 1`.
//! Kernels compute with `c - 1`, so a stray code 3 acts as +2 (as bitnet.cpp would).

pub mod i2s;
pub mod qk256;
pub mod tq1_0;
pub mod tq2_0;

use std::fmt;

use crate::act::Activations;
use crate::error::{KernelError, Result};
use crate::exec::Exec;

/// The four packed layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// bitnet.cpp I2_S, GGUF type 36: whole tensor in 128-element blocks + one f32 scale.
    I2s,
    /// `I2SQk256NoScale`: row-padded 256-element blocks of I2_S codes, scale beside.
    Qk256,
    /// llama.cpp TQ2_0, GGUF type 35: 256-element blocks of 2-bit codes + f16 scale.
    Tq2_0,
    /// llama.cpp TQ1_0, GGUF type 34: 256-element blocks of base-3 trits + f16 scale.
    Tq1_0,
}

impl Format {
    /// All formats.
    pub const ALL: [Format; 4] = [Format::I2s, Format::Qk256, Format::Tq2_0, Format::Tq1_0];

    /// Command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Format::I2s => "i2s",
            Format::Qk256 => "qk256",
            Format::Tq2_0 => "tq2_0",
            Format::Tq1_0 => "tq1_0",
        }
    }

    /// Parses a command-line name.
    pub fn parse(name: &str) -> Result<Format> {
        match name.to_ascii_lowercase().as_str() {
            "i2s" | "i2_s" => Ok(Format::I2s),
            "qk256" => Ok(Format::Qk256),
            "tq2_0" | "tq2" => Ok(Format::Tq2_0),
            "tq1_0" | "tq1" => Ok(Format::Tq1_0),
            _ => Err(KernelError::UnknownName {
                what: "format",
                name: name.to_string(),
                known: "i2s, qk256, tq2_0, tq1_0",
            }),
        }
    }

    /// The GGUF tensor type id, where the format is a GGUF type.
    pub fn ggml_type(self) -> Option<u32> {
        match self {
            Format::I2s => Some(36),
            Format::Tq2_0 => Some(35),
            Format::Tq1_0 => Some(34),
            Format::Qk256 => None,
        }
    }

    /// Exact packed byte length of a `rows x cols` matrix, with the same checks as the
    /// constructors (zero dimensions, block multiples, overflow).
    pub fn packed_len(self, rows: usize, cols: usize) -> Result<usize> {
        Ok(self.layout(rows, cols)?.total)
    }

    pub(crate) fn layout(self, rows: usize, cols: usize) -> Result<Layout> {
        if rows == 0 || cols == 0 {
            return Err(KernelError::ZeroDimension {
                format: self,
                rows,
                cols,
            });
        }
        let multiple = match self {
            Format::I2s => i2s::BLOCK,
            Format::Qk256 => 1,
            Format::Tq2_0 | Format::Tq1_0 => 256,
        };
        if !cols.is_multiple_of(multiple) {
            return Err(KernelError::ColsNotMultiple {
                format: self,
                cols,
                multiple,
            });
        }
        let over = || KernelError::Overflow {
            format: self,
            rows,
            cols,
        };
        let (stride, tail) = match self {
            Format::I2s => (cols / 4, i2s::SCALE_TAIL),
            Format::Qk256 => (cols.div_ceil(qk256::BLOCK) * qk256::BLOCK_BYTES, 0),
            Format::Tq2_0 => (cols / 256 * tq2_0::BLOCK_BYTES, 0),
            Format::Tq1_0 => (cols / 256 * tq1_0::BLOCK_BYTES, 0),
        };
        let total = rows
            .checked_mul(stride)
            .and_then(|b| b.checked_add(tail))
            .ok_or_else(over)?;
        // Element counts must fit too (unpack targets are rows*cols long).
        rows.checked_mul(cols).ok_or_else(over)?;
        Ok(Layout {
            row_stride_bytes: stride,
            total,
        })
    }

    /// Validates `got` bytes against the exact length for `rows x cols`.
    pub(crate) fn check_bytes(self, rows: usize, cols: usize, got: usize) -> Result<Layout> {
        let layout = self.layout(rows, cols)?;
        if got != layout.total {
            return Err(KernelError::ByteLength {
                format: self,
                got,
                expected: layout.total,
                rows,
                cols,
                row_stride_bytes: layout.row_stride_bytes,
            });
        }
        Ok(layout)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Byte geometry of a validated matrix.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub row_stride_bytes: usize,
    pub total: usize,
}

/// A validated packed ternary matrix of `rows` outputs by `cols` inputs.
///
/// Compute entry points take activations `x` as `[tokens, cols]` row-major f32 and write
/// `y` as `[tokens, rows]`; every length is checked and reported as a typed error.
pub trait TernaryMatrix: Send + Sync {
    /// Which packed layout this is.
    fn format(&self) -> Format;
    /// Output dimension.
    fn rows(&self) -> usize;
    /// Input dimension.
    fn cols(&self) -> usize;
    /// Bytes between the starts of consecutive rows.
    fn row_stride_bytes(&self) -> usize;

    /// Writes the codes (0..=3) of `row` into `out` (`cols` long).
    fn unpack_codes_row(&self, row: usize, out: &mut [u8]) -> Result<()>;

    /// Writes the weight values `(c - 1) * scale` of `row` into `out` (`cols` long).
    fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<()>;

    /// Exact-activation product: `y[t, r] = Σ_c (code - 1) · x[t, c] · scale`.
    fn gemm_f32(&self, x: &[f32], tokens: usize, y: &mut [f32], exec: &Exec) -> Result<()>;

    /// Quantizes `x` ([tokens, cols]) the way this format's int8 kernels expect
    /// (bitnet.cpp per-token int8 for I2_S/QK256, Q8_K for TQ1_0/TQ2_0).
    fn quantize_activations(&self, x: &[f32], tokens: usize, exec: &Exec) -> Result<Activations>;

    /// Int8-activation product over activations quantized by [`Self::quantize_activations`]
    /// (or shared from another matrix of the same input width and format family).
    fn gemm_quantized(&self, acts: &Activations, y: &mut [f32], exec: &Exec) -> Result<()>;

    /// Writes the codes of the whole matrix, row-major (`rows * cols` long).
    fn unpack_codes(&self, out: &mut [u8]) -> Result<()> {
        let (rows, cols) = (self.rows(), self.cols());
        crate::error::check_len("unpack_codes output", out.len(), rows * cols)?;
        for (r, chunk) in out.chunks_exact_mut(cols).enumerate() {
            self.unpack_codes_row(r, chunk)?;
        }
        Ok(())
    }

    /// Writes the ternary values `c - 1` of the whole matrix as i8 (`rows * cols` long).
    fn unpack_i8(&self, out: &mut [i8]) -> Result<()> {
        let (rows, cols) = (self.rows(), self.cols());
        crate::error::check_len("unpack_i8 output", out.len(), rows * cols)?;
        let mut codes = vec![0u8; cols];
        for (r, chunk) in out.chunks_exact_mut(cols).enumerate() {
            self.unpack_codes_row(r, &mut codes)?;
            for (o, &c) in chunk.iter_mut().zip(&codes) {
                *o = c as i8 - 1;
            }
        }
        Ok(())
    }

    /// Writes the dequantized matrix, row-major (`rows * cols` long).
    fn dequantize(&self, out: &mut [f32]) -> Result<()> {
        let (rows, cols) = (self.rows(), self.cols());
        crate::error::check_len("dequantize output", out.len(), rows * cols)?;
        for (r, chunk) in out.chunks_exact_mut(cols).enumerate() {
            self.dequantize_row(r, chunk)?;
        }
        Ok(())
    }

    /// Int8-activation product: quantize `x`, then [`Self::gemm_quantized`].
    fn gemm_i8(&self, x: &[f32], tokens: usize, y: &mut [f32], exec: &Exec) -> Result<()> {
        let acts = self.quantize_activations(x, tokens, exec)?;
        self.gemm_quantized(&acts, y, exec)
    }

    /// Rejects any code 3 (no producer writes it); kernels otherwise treat it as +2.
    fn check_codes_strict(&self) -> Result<()> {
        let cols = self.cols();
        let mut codes = vec![0u8; cols];
        for r in 0..self.rows() {
            self.unpack_codes_row(r, &mut codes)?;
            if let Some(c) = codes.iter().position(|&c| c > 2) {
                return Err(KernelError::InvalidCode {
                    format: self.format(),
                    index: r * cols + c,
                });
            }
        }
        Ok(())
    }
}

/// Checks the shapes of a `gemm_*` call: `x` is `[tokens, cols]`, `y` is `[tokens, rows]`.
pub(crate) fn check_gemm(
    rows: usize,
    cols: usize,
    x_len: usize,
    tokens: usize,
    y_len: usize,
) -> Result<()> {
    if tokens == 0 {
        return Err(KernelError::SliceLength {
            what: "tokens",
            got: 0,
            expected: 1,
        });
    }
    let over = || KernelError::SliceLength {
        what: "tokens",
        got: tokens,
        expected: 1,
    };
    crate::error::check_len(
        "x [tokens, cols]",
        x_len,
        tokens.checked_mul(cols).ok_or_else(over)?,
    )?;
    crate::error::check_len(
        "y [tokens, rows]",
        y_len,
        tokens.checked_mul(rows).ok_or_else(over)?,
    )
}

/// Checks a row index.
pub(crate) fn check_row(rows: usize, row: usize) -> Result<()> {
    if row < rows {
        Ok(())
    } else {
        Err(KernelError::SliceLength {
            what: "row index (must be < rows)",
            got: row,
            expected: rows,
        })
    }
}

/// Exact-activation product shared by every format: dequantize a row once (values
/// `(c-1)·scale` are exact in f32), then one f32 dot product per token.
pub(crate) fn gemm_f32_generic<M: TernaryMatrix + ?Sized>(
    m: &M,
    x: &[f32],
    tokens: usize,
    y: &mut [f32],
    exec: &Exec,
) -> Result<()> {
    let (rows, cols) = (m.rows(), m.cols());
    check_gemm(rows, cols, x.len(), tokens, y.len())?;
    let k = exec.kernels()?;
    exec.for_row_chunks(rows, tokens, rows * cols * tokens, y, |r0, out| {
        let mut w = vec![0f32; cols];
        for (i, o) in out.chunks_exact_mut(tokens).enumerate() {
            // The row index is in range by construction of the chunks.
            let ok = m.dequantize_row(r0 + i, &mut w).is_ok();
            debug_assert!(ok);
            for (t, ot) in o.iter_mut().enumerate() {
                *ot = (k.dot_f32)(&w, &x[t * cols..(t + 1) * cols]);
            }
        }
    });
    Ok(())
}
