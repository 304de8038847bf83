//! Tensor descriptors and the shape/size rules shared by the reader and the writer.

use super::error::GgufError;
use super::limits::MAX_N_DIMS;
use super::types::{GgmlType, SizeError};

/// One tensor as described in the header.
///
/// Invariants for infos produced by [`parse`](super::parse): 1..=4 non-zero dims whose
/// product fits in i64; `n_bytes` follows the type's size rule; `offset` (bytes,
/// relative to the data section) is aligned and `offset + n_bytes` lies within the file;
/// no two tensors overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name, unique within the file.
    pub name: String,
    /// Dimensions in ggml `ne` order: `dims[0]` is contiguous (a `[rows, cols]` matrix
    /// is stored as `[cols, rows]`).
    pub dims: Vec<u64>,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Start of the data, in bytes from the start of the data section.
    pub offset: u64,
    /// Size of the data in bytes (I2_S: `n / 4 + 32`).
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Number of elements (product of `dims`). Saturates only for infos not from a parser.
    pub fn n_elements(&self) -> u64 {
        self.dims
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .unwrap_or(u64::MAX)
    }

    /// One past the last data byte, relative to the data section.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.n_bytes)
    }
}

/// Validates dims and type for tensor `name`, returning the data size in bytes.
///
/// Rejects 0 or more than [`MAX_N_DIMS`] dims, zero dims, dims that are negative as
/// ggml's int64, element counts above `i64::MAX`, and the type's layout rule.
pub(crate) fn tensor_n_bytes(name: &str, dims: &[u64], ty: GgmlType) -> Result<u64, GgufError> {
    check_dims(name, dims)?;
    ty.n_bytes(dims).map_err(|e| match e {
        SizeError::ElementCountOverflow => GgufError::ElementCountOverflow {
            tensor: name.to_owned(),
            dims: dims.to_vec(),
        },
        SizeError::RowNotBlockMultiple { ne0, block_size } => GgufError::RowNotBlockMultiple {
            tensor: name.to_owned(),
            ggml_type: ty.name(),
            ne0,
            block_size,
        },
        SizeError::I2sNotBlockMultiple { n_elements } => GgufError::I2sNotBlockMultiple {
            tensor: name.to_owned(),
            n_elements,
        },
        SizeError::SizeOverflow { n_elements } => GgufError::TensorSizeOverflow {
            tensor: name.to_owned(),
            ggml_type: ty.name(),
            n_elements,
        },
    })
}

/// Checks the dimension count and every dimension, independent of the type.
pub(crate) fn check_dims(name: &str, dims: &[u64]) -> Result<(), GgufError> {
    if dims.is_empty() {
        return Err(GgufError::NoDimensions {
            tensor: name.to_owned(),
        });
    }
    if dims.len() > MAX_N_DIMS as usize {
        return Err(GgufError::TooManyDimensions {
            tensor: name.to_owned(),
            n_dims: u32::try_from(dims.len()).unwrap_or(u32::MAX),
            max: MAX_N_DIMS,
        });
    }
    for (dim, &value) in dims.iter().enumerate() {
        if value == 0 {
            return Err(GgufError::ZeroDimension {
                tensor: name.to_owned(),
                dim,
                dims: dims.to_vec(),
            });
        }
        if value > i64::MAX as u64 {
            return Err(GgufError::DimensionTooLarge {
                tensor: name.to_owned(),
                dim,
                value,
            });
        }
    }
    let n = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
    match n {
        Some(n) if n <= i64::MAX as u64 => Ok(()),
        _ => Err(GgufError::ElementCountOverflow {
            tensor: name.to_owned(),
            dims: dims.to_vec(),
        }),
    }
}
