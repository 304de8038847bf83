//! Every way a GGUF file (or a request against one) can be rejected.
//!
//! One variant per failure; each message names the key or tensor and the numbers
//! involved. Byte positions (`at`) are absolute offsets into the file.

use std::path::PathBuf;

/// A GGUF read, lookup or write failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    // ---- file access -------------------------------------------------------------
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    // ---- header ------------------------------------------------------------------
    #[error("not a GGUF file: magic bytes {found:02x?}, expected \"GGUF\" (47 47 55 46)")]
    BadMagic { found: [u8; 4] },
    #[error(
        "GGUF version field reads {raw:#010x} (= {swapped} when byte-swapped): this is a \
         big-endian GGUF file; only little-endian files are supported"
    )]
    BigEndian { raw: u32, swapped: u32 },
    #[error(
        "unsupported GGUF version {version}: only versions 2 and 3 are read \
         (version 1 used 32-bit counts and lengths)"
    )]
    UnsupportedVersion { version: u32 },
    #[error(
        "unexpected end of file reading {what} at byte {at}: needs {needed} bytes, {available} left"
    )]
    UnexpectedEof {
        what: String,
        at: u64,
        needed: u64,
        available: u64,
    },
    #[error(
        "header claims {count} key/value pairs, but the {remaining} bytes after the header \
         hold at most {max_fit} (each takes at least {min_each} bytes)"
    )]
    TooManyKv {
        count: u64,
        remaining: u64,
        max_fit: u64,
        min_each: u64,
    },
    #[error(
        "header claims {count} tensors, but the {remaining} bytes left after the minimum \
         key/value space hold at most {max_fit} tensor infos (each takes at least {min_each} bytes)"
    )]
    TooManyTensors {
        count: u64,
        remaining: u64,
        max_fit: u64,
        min_each: u64,
    },

    // ---- metadata ----------------------------------------------------------------
    #[error("key #{index} at byte {at} is empty")]
    EmptyKey { index: u64, at: u64 },
    #[error("key #{index} at byte {at} claims {len} bytes, more than the {max}-byte key limit")]
    KeyTooLong {
        index: u64,
        at: u64,
        len: u64,
        max: u64,
    },
    #[error(
        "{what} at byte {at} claims {len} bytes, but only {remaining} bytes remain in the file"
    )]
    StringPastEnd {
        what: String,
        at: u64,
        len: u64,
        remaining: u64,
    },
    #[error("{what} at byte {at} claims {len} bytes, more than the {max}-byte string limit")]
    StringTooLong {
        what: String,
        at: u64,
        len: u64,
        max: u64,
    },
    #[error("{what} at byte {at} is not valid UTF-8")]
    InvalidUtf8 { what: String, at: u64 },
    #[error("key '{key}': unknown value type id {type_id} at byte {at} (known: 0..=12)")]
    UnknownValueType { key: String, type_id: u32, at: u64 },
    #[error("key '{key}': arrays nested deeper than {max_depth} levels at byte {at}")]
    ArrayTooDeep {
        key: String,
        max_depth: u32,
        at: u64,
    },
    #[error(
        "key '{key}': array of {count} {elem_type} at byte {at} needs at least {min_bytes} \
         bytes, but only {remaining} remain in the file"
    )]
    ArrayPastEnd {
        key: String,
        elem_type: &'static str,
        count: u64,
        min_bytes: u128,
        at: u64,
        remaining: u64,
    },
    #[error("key '{key}': bool at byte {at} holds {value}, not 0 or 1")]
    InvalidBool { key: String, value: u8, at: u64 },
    #[error("key '{key}': metadata section exceeds the {max}-byte limit at byte {at}")]
    MetadataTooLarge { key: String, max: u64, at: u64 },
    #[error("duplicate metadata key '{key}'")]
    DuplicateKey { key: String },
    #[error("'general.alignment' must be a u32, found {found}")]
    AlignmentWrongType { found: &'static str },
    #[error("'general.alignment' = {value} is not a non-zero power of two")]
    InvalidAlignment { value: u64 },
    #[error("'general.alignment' = {value} exceeds the {max}-byte limit")]
    AlignmentTooLarge { value: u64, max: u64 },

    // ---- tensor infos --------------------------------------------------------------
    #[error("tensor #{index} at byte {at} has an empty name")]
    EmptyTensorName { index: u64, at: u64 },
    #[error(
        "tensor #{index} at byte {at}: name claims {len} bytes, more than the {max}-byte limit"
    )]
    TensorNameTooLong {
        index: u64,
        at: u64,
        len: u64,
        max: u64,
    },
    #[error("duplicate tensor name '{name}'")]
    DuplicateTensorName { name: String },
    #[error("tensor '{tensor}' has 0 dimensions (at least 1 is required)")]
    NoDimensions { tensor: String },
    #[error("tensor '{tensor}' has {n_dims} dimensions, more than the maximum {max}")]
    TooManyDimensions {
        tensor: String,
        n_dims: u32,
        max: u32,
    },
    #[error("tensor '{tensor}': dimension {dim} of {dims:?} is zero")]
    ZeroDimension {
        tensor: String,
        dim: usize,
        dims: Vec<u64>,
    },
    #[error(
        "tensor '{tensor}': dimension {dim} = {value} is negative as ggml's int64 (> i64::MAX)"
    )]
    DimensionTooLarge {
        tensor: String,
        dim: usize,
        value: u64,
    },
    #[error("tensor '{tensor}': element count of dimensions {dims:?} overflows i64")]
    ElementCountOverflow { tensor: String, dims: Vec<u64> },
    #[error("tensor '{tensor}': unknown ggml type id {type_id}")]
    UnknownTensorType { tensor: String, type_id: u32 },
    #[error(
        "tensor '{tensor}': type {ggml_type} packs blocks of {block_size} along ne0, \
         but ne0 = {ne0} is not a multiple"
    )]
    RowNotBlockMultiple {
        tensor: String,
        ggml_type: &'static str,
        ne0: u64,
        block_size: u64,
    },
    #[error(
        "tensor '{tensor}': I2_S packs the whole tensor in 128-element blocks, \
         but it has {n_elements} elements (not a multiple of 128)"
    )]
    I2sNotBlockMultiple { tensor: String, n_elements: u64 },
    #[error("tensor '{tensor}': byte size of {n_elements} {ggml_type} elements overflows u64")]
    TensorSizeOverflow {
        tensor: String,
        ggml_type: &'static str,
        n_elements: u64,
    },

    // ---- data layout -------------------------------------------------------------
    #[error("header end {header_end} rounded up to alignment {alignment} overflows")]
    DataOffsetOverflow { header_end: u64, alignment: u64 },
    #[error("tensor '{tensor}': offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedOffset {
        tensor: String,
        offset: u64,
        alignment: u64,
    },
    #[error("tensor '{tensor}': offset {offset} + size {n_bytes} overflows u64")]
    OffsetOverflow {
        tensor: String,
        offset: u64,
        n_bytes: u64,
    },
    #[error(
        "tensor '{tensor}': offset {offset} lies past the end of the {data_len}-byte data section \
         (file {file_len} bytes, data starts at {data_offset})"
    )]
    TensorOffsetPastEnd {
        tensor: String,
        offset: u64,
        data_len: u64,
        data_offset: u64,
        file_len: u64,
    },
    #[error(
        "tensor '{tensor}': data [{offset}, {end}) ({n_bytes} bytes) runs {missing} bytes past \
         the end of the {data_len}-byte data section (file truncated?)"
    )]
    TensorDataTruncated {
        tensor: String,
        offset: u64,
        n_bytes: u64,
        end: u64,
        data_len: u64,
        missing: u64,
    },
    #[error(
        "tensors '{first}' [{first_offset}, {first_end}) and '{second}' starting at \
         {second_offset} overlap"
    )]
    TensorsOverlap {
        first: String,
        first_offset: u64,
        first_end: u64,
        second: String,
        second_offset: u64,
    },

    // ---- lookups -----------------------------------------------------------------
    #[error("metadata key '{key}' is missing")]
    MissingKey { key: String },
    #[error("metadata key '{key}' holds {found}, expected {expected}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error("metadata key '{key}' holds {value}, which does not fit in {target}")]
    ValueOutOfRange {
        key: String,
        value: String,
        target: &'static str,
    },
    #[error("no tensor named '{name}'")]
    TensorNotFound { name: String },

    // ---- writer ------------------------------------------------------------------
    #[error("tensor '{tensor}': {got} data bytes given, its dims and type need {expected}")]
    TensorDataLength {
        tensor: String,
        expected: u64,
        got: u64,
    },
    #[error("GGUF writer only writes versions 2 and 3, not {version}")]
    WriterVersion { version: u32 },
    #[error("cannot write {what}: {reason}")]
    Unwritable { what: String, reason: String },
}
