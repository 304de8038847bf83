//! Typed errors of every constructor and compute entry point. Nothing in this crate panics on
//! bad dimensions or lengths: it returns one of these.

use crate::{Format, Isa};

/// Result alias of this crate.
pub type Result<T, E = KernelError> = core::result::Result<T, E>;

/// What went wrong, with the numbers needed to see why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// The packed byte slice does not have exactly the length the dimensions require.
    #[error(
        "{format}: got {got} bytes, expected exactly {expected} \
         (rows={rows}, cols={cols}, row_stride_bytes={row_stride_bytes})"
    )]
    ByteLength {
        format: Format,
        got: usize,
        expected: usize,
        rows: usize,
        cols: usize,
        row_stride_bytes: usize,
    },
    /// `rows` or `cols` is zero.
    #[error("{format}: zero dimension (rows={rows}, cols={cols})")]
    ZeroDimension {
        format: Format,
        rows: usize,
        cols: usize,
    },
    /// `rows * row_stride` (or a similar product) does not fit in `usize`.
    #[error("{format}: size of a {rows}x{cols} matrix overflows usize")]
    Overflow {
        format: Format,
        rows: usize,
        cols: usize,
    },
    /// The format needs `cols` to be a multiple of its block length.
    #[error("{format}: cols={cols} is not a multiple of {multiple}")]
    ColsNotMultiple {
        format: Format,
        cols: usize,
        multiple: usize,
    },
    /// An input or output slice of a compute entry point has the wrong length.
    #[error("{what}: got {got} elements, expected {expected}")]
    SliceLength {
        what: &'static str,
        got: usize,
        expected: usize,
    },
    /// A scale stored with the weights is NaN or infinite.
    #[error("{format}: scale {scale} is not finite")]
    NonFiniteScale { format: Format, scale: f32 },
    /// A dense weight to be repacked is NaN or infinite.
    #[error("dense matrix row {row}: weight is not finite (cannot repack to int8)")]
    NonFiniteWeight { row: usize },
    /// A code outside 0..=2 (strict checks only; kernels compute with it as +2).
    #[error("{format}: code 3 at element {index} (no producer writes it)")]
    InvalidCode { format: Format, index: usize },
    /// The requested instruction set is not available on this CPU.
    #[error("ISA {requested} is not available on this CPU (available: {available})")]
    IsaUnavailable { requested: Isa, available: String },
    /// A name given for an ISA or format is unknown.
    #[error("unknown {what} `{name}` (known: {known})")]
    UnknownName {
        what: &'static str,
        name: String,
        known: &'static str,
    },
    /// Activations quantized for another format family or input width.
    #[error("{format}: activations are {got}, expected {expected}")]
    WrongActivations {
        format: Format,
        got: String,
        expected: String,
    },
    /// An activation value is NaN or infinite (int8 quantization is undefined for it).
    #[error("activation token {token}: non-finite value (NaN or infinity)")]
    NonFiniteActivation { token: usize },
    /// A thread count of zero or a pool that could not be built.
    #[error("thread pool: {0}")]
    Threads(String),
}

/// Checks a slice length, naming the slice in the error.
pub(crate) fn check_len(what: &'static str, got: usize, expected: usize) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(KernelError::SliceLength {
            what,
            got,
            expected,
        })
    }
}
