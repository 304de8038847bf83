//! Format constants and the hard caps the reader enforces on untrusted files.
//!
//! Every length or count read from a file is checked against the bytes that remain
//! *and* against these caps before anything is allocated. The writer enforces the same
//! caps, so everything it produces is readable.

/// The four magic bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";

/// Metadata key that overrides the data alignment (must hold a `u32`).
pub const ALIGNMENT_KEY: &str = "general.alignment";

/// Data alignment in bytes when the file has no `general.alignment` key.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// Largest accepted `general.alignment`, in bytes (1 MiB). Real files use 32.
pub const MAX_ALIGNMENT: u64 = 1 << 20;

/// Largest accepted key/value section, in file bytes (64 MiB). A 128k-token
/// vocabulary with merges is well under 16 MiB.
pub const MAX_METADATA_BYTES: u64 = 64 << 20;

/// Longest accepted metadata key, in bytes (the GGUF spec's 2^16 - 1).
pub const MAX_KEY_LEN: u64 = 65_535;

/// Longest accepted string value (including strings inside arrays), in bytes (16 MiB).
pub const MAX_STRING_LEN: u64 = 16 << 20;

/// Longest accepted tensor name, in bytes. (ggml itself stops at 63.)
pub const MAX_TENSOR_NAME_LEN: u64 = 256;

/// Deepest accepted array nesting: 1 = flat arrays, 2 = arrays of flat arrays.
pub const MAX_ARRAY_DEPTH: u32 = 2;

/// Most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`); 0 is rejected too.
pub const MAX_N_DIMS: u32 = 4;

/// Smallest possible key/value pair in bytes: u64 key length, a 1-byte key, u32 type,
/// 1-byte value. `n_kv` is rejected up front if `n_kv * MIN_KV_BYTES` exceeds the file.
pub const MIN_KV_BYTES: u64 = 8 + 1 + 4 + 1;

/// Smallest possible tensor info in bytes: u64 name length, a 1-byte name, u32 n_dims,
/// one u64 dimension, u32 type, u64 offset. Bounds `n_tensors` like [`MIN_KV_BYTES`].
pub const MIN_TENSOR_INFO_BYTES: u64 = 8 + 1 + 4 + 8 + 4 + 8;

/// Bytes of the fixed header: magic, u32 version, u64 tensor count, u64 kv count.
pub const HEADER_BYTES: u64 = 4 + 4 + 8 + 8;

/// Upper bound on speculative `Vec` capacity taken from a file count (elements).
/// Counts are already bounded by the file size; this keeps a lying count from
/// reserving more than the entries actually parsed need.
pub(crate) const PREALLOC_CAP: usize = 1 << 16;
