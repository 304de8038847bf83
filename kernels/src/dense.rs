//! Dense (non-ternary) products the model needs beside the ternary projections: the F16
//! output head / tied embedding, and F32 matrices. Row-parallel like the ternary kernels.

use half::f16;

use crate::error::{KernelError, Result, check_len};
use crate::exec::Exec;
use crate::format::check_gemm;

/// Element type of a dense row-major matrix stored as little-endian bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenseType {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    Bf16,
}

impl DenseType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DenseType::F32 => 4,
            DenseType::F16 | DenseType::Bf16 => 2,
        }
    }
}

/// A dense `rows x cols` matrix over borrowed little-endian bytes (e.g. a memory map).
#[derive(Debug, Clone, Copy)]
pub struct Dense<'a> {
    ty: DenseType,
    rows: usize,
    cols: usize,
    bytes: &'a [u8],
}

impl<'a> Dense<'a> {
    /// Validates `bytes`: exactly `rows * cols * size` bytes, no zero dimension.
    pub fn new(ty: DenseType, rows: usize, cols: usize, bytes: &'a [u8]) -> Result<Self> {
        if rows == 0 || cols == 0 {
            return Err(KernelError::SliceLength {
                what: "dense matrix rows/cols",
                got: 0,
                expected: 1,
            });
        }
        let expected = rows
            .checked_mul(cols)
            .and_then(|n| n.checked_mul(ty.size()))
            .ok_or(KernelError::SliceLength {
                what: "dense matrix bytes",
                got: usize::MAX,
                expected: 0,
            })?;
        check_len("dense matrix bytes", bytes.len(), expected)?;
        Ok(Dense {
            ty,
            rows,
            cols,
            bytes,
        })
    }

    /// Element type.
    pub fn dtype(&self) -> DenseType {
        self.ty
    }
    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Converts row `row` to f32 (`out.len() == cols`), e.g. an embedding lookup.
    pub fn row_to_f32(&self, row: usize, out: &mut [f32]) -> Result<()> {
        crate::format::check_row(self.rows, row)?;
        check_len("row output", out.len(), self.cols)?;
        let b =
            &self.bytes[row * self.cols * self.ty.size()..(row + 1) * self.cols * self.ty.size()];
        convert(self.ty, b, out);
        Ok(())
    }

    /// `y[t, r] = Σ_c W[r, c] · x[t, c]` with `x` `[tokens, cols]`, `y` `[tokens, rows]`.
    pub fn gemm(&self, x: &[f32], tokens: usize, y: &mut [f32], exec: &Exec) -> Result<()> {
        let (rows, cols) = (self.rows, self.cols);
        check_gemm(rows, cols, x.len(), tokens, y.len())?;
        let k = exec.kernels()?;
        let size = self.ty.size();
        exec.for_row_chunks(rows, tokens, rows * cols * tokens, y, |r0, out| {
            // Scratch for converted rows; the F16 decode path never needs it (no allocation).
            let mut w = Vec::new();
            for (i, o) in out.chunks_exact_mut(tokens).enumerate() {
                let r = r0 + i;
                let row = &self.bytes[r * cols * size..(r + 1) * cols * size];
                if self.ty == DenseType::F16 && tokens == 1 {
                    // Decode: convert on the fly, one pass over the row's bytes.
                    o[0] = (k.dot_f16)(row, x);
                    continue;
                }
                w.resize(cols, 0.0);
                convert(self.ty, row, &mut w);
                for (t, ot) in o.iter_mut().enumerate() {
                    *ot = (k.dot_f32)(&w, &x[t * cols..(t + 1) * cols]);
                }
            }
        });
        Ok(())
    }
}

fn convert(ty: DenseType, b: &[u8], out: &mut [f32]) {
    match ty {
        DenseType::F32 => {
            for (o, c) in out.iter_mut().zip(b.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        DenseType::F16 => {
            for (o, c) in out.iter_mut().zip(b.chunks_exact(2)) {
                *o = f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        DenseType::Bf16 => {
            for (o, c) in out.iter_mut().zip(b.chunks_exact(2)) {
                *o = f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16);
            }
        }
    }
}
