//! GGUF writer: metadata and tensors (name, dims, type, raw bytes) into a file or a
//! `Vec<u8>`, laid out like gguf-py's `GGUFWriter`.
//!
//! Layout: header, key/values in insertion order, tensor infos in insertion order,
//! zero padding to the alignment, then each tensor's bytes followed by zero padding to
//! the alignment. Offsets are assigned in insertion order. The alignment is the value
//! of `general.alignment` if set, else 32. Everything accepted here passes the
//! reader's checks, so the output always parses.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{self, Write};
use std::path::Path;

use super::Gguf;
use super::error::GgufError;
use super::limits::{
    ALIGNMENT_KEY, GGUF_MAGIC, MAX_ARRAY_DEPTH, MAX_KEY_LEN, MAX_METADATA_BYTES, MAX_STRING_LEN,
    MAX_TENSOR_NAME_LEN,
};
use super::metadata::Metadata;
use super::parse::{align_up, alignment_of};
use super::tensor::tensor_n_bytes;
use super::types::GgmlType;
use super::value::{Array, Value, encode_str};

/// Builds a GGUF file; tensor data may be borrowed (`'a`) to avoid copies.
#[derive(Debug, Clone)]
pub struct GgufWriter<'a> {
    version: u32,
    metadata: Metadata,
    tensors: Vec<PendingTensor<'a>>,
    names: HashSet<String>,
}

#[derive(Debug, Clone)]
struct PendingTensor<'a> {
    name: String,
    dims: Vec<u64>,
    ggml_type: GgmlType,
    data: Cow<'a, [u8]>,
}

impl Default for GgufWriter<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> GgufWriter<'a> {
    /// An empty version-3 file with the default alignment (32, no `general.alignment` key).
    pub fn new() -> Self {
        Self {
            version: 3,
            metadata: Metadata::new(),
            tensors: Vec::new(),
            names: HashSet::new(),
        }
    }

    /// A writer reproducing a parsed file: its version, metadata in order and tensors
    /// in order, with data borrowed from `file_bytes` (the bytes `gguf` was parsed from).
    /// The output is byte-identical to the input when the input's tensors are laid out
    /// back to back in info order with zero padding, as gguf-py writes them.
    pub fn from_gguf(gguf: &Gguf, file_bytes: &'a [u8]) -> Result<Self, GgufError> {
        let mut w = Self::new();
        w.set_version(gguf.version)?;
        for (key, value) in gguf.metadata.iter() {
            w.add(key, value.clone())?;
        }
        for t in &gguf.tensors {
            let data = gguf.tensor_data(file_bytes, t)?;
            w.add_tensor(t.name.clone(), &t.dims, t.ggml_type, data)?;
        }
        Ok(w)
    }

    /// Sets the version field (2 or 3; the layouts are identical).
    pub fn set_version(&mut self, version: u32) -> Result<&mut Self, GgufError> {
        if !(2..=3).contains(&version) {
            return Err(GgufError::WriterVersion { version });
        }
        self.version = version;
        Ok(self)
    }

    /// Appends `key = value`. Rejects duplicate, empty or over-long keys, over-long
    /// strings, arrays nested deeper than [`MAX_ARRAY_DEPTH`], and an invalid
    /// `general.alignment`.
    pub fn add(
        &mut self,
        key: impl Into<String>,
        value: impl Into<Value>,
    ) -> Result<&mut Self, GgufError> {
        let key = key.into();
        let value = value.into();
        check_key(&key)?;
        check_value(&key, &value)?;
        if key == ALIGNMENT_KEY {
            let mut probe = Metadata::new();
            probe.set(ALIGNMENT_KEY, value.clone());
            alignment_of(&probe)?;
        }
        self.metadata.insert(key, value)?;
        Ok(self)
    }

    /// Sets `general.alignment` (in place if present, else appended).
    pub fn set_alignment(&mut self, alignment: u32) -> Result<&mut Self, GgufError> {
        let mut probe = Metadata::new();
        probe.set(ALIGNMENT_KEY, Value::U32(alignment));
        alignment_of(&probe)?;
        self.metadata.set(ALIGNMENT_KEY, Value::U32(alignment));
        Ok(self)
    }

    /// Appends a tensor. `dims` are in ggml `ne` order (`dims[0]` contiguous); `data`
    /// must be exactly the type's size for that shape (I2_S: `n / 4 + 32`).
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dims: &[u64],
        ggml_type: GgmlType,
        data: impl Into<Cow<'a, [u8]>>,
    ) -> Result<&mut Self, GgufError> {
        let name = name.into();
        let data = data.into();
        if name.is_empty() || name.len() as u64 > MAX_TENSOR_NAME_LEN {
            return Err(GgufError::Unwritable {
                what: format!("tensor name '{name}'"),
                reason: format!("length {} not in 1..={MAX_TENSOR_NAME_LEN}", name.len()),
            });
        }
        if self.names.contains(&name) {
            return Err(GgufError::DuplicateTensorName { name });
        }
        let expected = tensor_n_bytes(&name, dims, ggml_type)?;
        if data.len() as u64 != expected {
            return Err(GgufError::TensorDataLength {
                tensor: name,
                expected,
                got: data.len() as u64,
            });
        }
        self.names.insert(name.clone());
        self.tensors.push(PendingTensor {
            name,
            dims: dims.to_vec(),
            ggml_type,
            data,
        });
        Ok(self)
    }

    /// The metadata added so far, in order.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The data alignment that will be used, in bytes.
    pub fn alignment(&self) -> u64 {
        // Validated when the key was added.
        alignment_of(&self.metadata).unwrap_or(super::limits::DEFAULT_ALIGNMENT)
    }

    /// Total size of the file that [`write_to`](Self::write_to) produces, in bytes.
    pub fn encoded_len(&self) -> u64 {
        let mut counter = Counter::default();
        // Writing to a counter cannot fail.
        let _ = self.write_header(&mut counter);
        let align = self.alignment();
        let header = padded(counter.0, align);
        let data: u64 = self
            .tensors
            .iter()
            .map(|t| padded(t.data.len() as u64, align))
            .sum();
        header + data
    }

    /// The whole file in memory.
    pub fn to_bytes(&self) -> Result<Vec<u8>, GgufError> {
        self.check_metadata_size()?;
        let mut out = Vec::with_capacity(usize::try_from(self.encoded_len()).unwrap_or(0));
        self.write_unchecked(&mut out)
            .map_err(|source| GgufError::Io {
                op: "write",
                path: "<memory>".into(),
                source,
            })?;
        Ok(out)
    }

    /// Writes the file to `path` (created or truncated), streaming tensor data.
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<(), GgufError> {
        self.check_metadata_size()?;
        let path = path.as_ref();
        let io = |op, source| GgufError::Io {
            op,
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::create(path).map_err(|e| io("create", e))?;
        let mut w = io::BufWriter::new(file);
        self.write_unchecked(&mut w).map_err(|e| io("write", e))?;
        w.flush().map_err(|e| io("write", e))
    }

    /// Writes the file to any writer.
    pub fn write_to(&self, w: &mut impl Write) -> Result<(), GgufError> {
        self.check_metadata_size()?;
        self.write_unchecked(w).map_err(|source| GgufError::Io {
            op: "write",
            path: "<writer>".into(),
            source,
        })
    }

    fn check_metadata_size(&self) -> Result<(), GgufError> {
        let mut counter = Counter::default();
        let _ = self.write_kvs(&mut counter);
        if counter.0 > MAX_METADATA_BYTES {
            return Err(GgufError::Unwritable {
                what: "metadata".into(),
                reason: format!(
                    "{} bytes exceed the {MAX_METADATA_BYTES}-byte limit",
                    counter.0
                ),
            });
        }
        Ok(())
    }

    fn write_unchecked(&self, w: &mut impl Write) -> io::Result<()> {
        let header_len = self.write_header(w)?;
        let align = self.alignment();
        write_zeros(w, padded(header_len, align) - header_len)?;
        for t in &self.tensors {
            w.write_all(&t.data)?;
            let n = t.data.len() as u64;
            write_zeros(w, padded(n, align) - n)?;
        }
        Ok(())
    }

    /// Writes header, key/values and tensor infos; returns the bytes written.
    fn write_header(&self, w: &mut impl Write) -> io::Result<u64> {
        let mut w = CountingWriter { inner: w, count: 0 };
        w.write_all(&GGUF_MAGIC)?;
        w.write_all(&self.version.to_le_bytes())?;
        w.write_all(&(self.tensors.len() as u64).to_le_bytes())?;
        w.write_all(&(self.metadata.len() as u64).to_le_bytes())?;
        self.write_kvs(&mut w)?;
        let align = self.alignment();
        let mut offset = 0u64;
        for t in &self.tensors {
            encode_str(&t.name, &mut w)?;
            w.write_all(&(t.dims.len() as u32).to_le_bytes())?;
            for d in &t.dims {
                w.write_all(&d.to_le_bytes())?;
            }
            w.write_all(&t.ggml_type.id().to_le_bytes())?;
            w.write_all(&offset.to_le_bytes())?;
            offset += padded(t.data.len() as u64, align);
        }
        Ok(w.count)
    }

    fn write_kvs(&self, w: &mut impl Write) -> io::Result<()> {
        for (key, value) in self.metadata.iter() {
            encode_str(key, w)?;
            w.write_all(&value.value_type().id().to_le_bytes())?;
            value.encode(w)?;
        }
        Ok(())
    }
}

fn check_key(key: &str) -> Result<(), GgufError> {
    if key.is_empty() || key.len() as u64 > MAX_KEY_LEN {
        return Err(GgufError::Unwritable {
            what: format!("key '{key}'"),
            reason: format!("length {} not in 1..={MAX_KEY_LEN}", key.len()),
        });
    }
    Ok(())
}

fn check_value(key: &str, value: &Value) -> Result<(), GgufError> {
    if value.array_depth() > MAX_ARRAY_DEPTH {
        return Err(GgufError::Unwritable {
            what: format!("key '{key}'"),
            reason: format!(
                "arrays nested {} deep (max {MAX_ARRAY_DEPTH})",
                value.array_depth()
            ),
        });
    }
    let too_long = |s: &String| s.len() as u64 > MAX_STRING_LEN;
    fn any_string(a: &Array, f: &dyn Fn(&String) -> bool) -> bool {
        match a {
            Array::String(v) => v.iter().any(f),
            Array::Array(v) => v.iter().any(|a| any_string(a, f)),
            _ => false,
        }
    }
    let bad = match value {
        Value::String(s) => too_long(s),
        Value::Array(a) => any_string(a, &too_long),
        _ => false,
    };
    if bad {
        return Err(GgufError::Unwritable {
            what: format!("key '{key}'"),
            reason: format!("a string is longer than {MAX_STRING_LEN} bytes"),
        });
    }
    Ok(())
}

/// `n` rounded up to the alignment (a validated power of two; lengths are in-memory
/// sizes, far from overflow).
fn padded(n: u64, align: u64) -> u64 {
    align_up(n, align).unwrap_or(n)
}

fn write_zeros(w: &mut impl Write, n: u64) -> io::Result<()> {
    const ZEROS: [u8; 4096] = [0; 4096];
    let mut left = n;
    while left > 0 {
        let k = left.min(ZEROS.len() as u64) as usize;
        w.write_all(&ZEROS[..k])?;
        left -= k as u64;
    }
    Ok(())
}

/// Counts bytes passed through to `inner`.
struct CountingWriter<'w, W: Write> {
    inner: &'w mut W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A writer that only counts bytes.
#[derive(Default)]
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
