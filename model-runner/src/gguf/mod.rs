//! GGUF v2/v3 container: a hardened pure parser over `&[u8]`, a memory-mapped
//! [`GgufFile`] that lends tensor data as borrowed slices, and a [`GgufWriter`].
//!
//! All file bytes are untrusted. Every length and count is checked against the bytes
//! that remain and the caps in [`limits`] before allocating; all arithmetic is checked;
//! every failure is a distinct [`GgufError`] variant naming the key or tensor. Only
//! little-endian files are read.

mod cursor;
mod error;
mod file;
pub mod limits;
mod metadata;
mod parse;
mod read_kv;
mod tensor;
mod types;
mod value;
pub mod writer;

use std::collections::HashMap;

pub use error::GgufError;
pub use file::GgufFile;
pub use limits::*;
pub use metadata::Metadata;
pub use parse::parse;
pub use tensor::TensorInfo;
pub use types::{GgmlType, I2S_BLOCK_ELEMS, I2S_TAIL_BYTES, SizeError};
pub use value::{Array, Value, ValueType};
pub use writer::GgufWriter;

/// A parsed GGUF header: everything but the tensor data, fully owned.
///
/// Invariants (established by [`parse`]): `version` is 2 or 3; `alignment` is a power
/// of two in 1..=[`MAX_ALIGNMENT`]; `data_offset` (bytes from file start) is the end
/// of the tensor infos rounded up to `alignment`; tensor names are unique and every
/// tensor's data lies in the file (see [`TensorInfo`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Gguf {
    /// Format version (2 or 3; same layout).
    pub version: u32,
    /// Key/value metadata in file order.
    pub metadata: Metadata,
    /// Tensor infos in file order.
    pub tensors: Vec<TensorInfo>,
    /// Data alignment in bytes (`general.alignment`, default 32).
    pub alignment: u64,
    /// Start of the data section, in bytes from the start of the file.
    pub data_offset: u64,
    tensor_index: HashMap<String, usize>,
}

impl Gguf {
    /// The tensor info called `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index
            .get(name)
            .and_then(|&i| self.tensors.get(i))
    }

    /// `general.architecture`, e.g. `"bitnet-b1.58"`.
    pub fn architecture(&self) -> Result<&str, GgufError> {
        self.metadata.get_str("general.architecture")
    }

    /// The data of `info` inside `file_bytes`, the bytes this header was parsed from.
    /// Fails with [`GgufError::TensorDataTruncated`] if the range is not inside
    /// `file_bytes` (only possible for foreign infos or different bytes).
    pub fn tensor_data<'b>(
        &self,
        file_bytes: &'b [u8],
        info: &TensorInfo,
    ) -> Result<&'b [u8], GgufError> {
        let data_len = (file_bytes.len() as u64).saturating_sub(self.data_offset);
        let truncated = || GgufError::TensorDataTruncated {
            tensor: info.name.clone(),
            offset: info.offset,
            n_bytes: info.n_bytes,
            end: info.end(),
            data_len,
            missing: info.end().saturating_sub(data_len),
        };
        let start = self
            .data_offset
            .checked_add(info.offset)
            .ok_or_else(truncated)?;
        let end = start.checked_add(info.n_bytes).ok_or_else(truncated)?;
        let (start, end) = (usize::try_from(start), usize::try_from(end));
        match (start, end) {
            (Ok(s), Ok(e)) => file_bytes.get(s..e).ok_or_else(truncated),
            _ => Err(truncated()),
        }
    }
}
