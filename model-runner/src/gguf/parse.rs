//! The pure parser: header, key/values, tensor infos and data-layout validation over
//! an untrusted `&[u8]` holding a whole file.

use std::collections::HashMap;

use super::Gguf;
use super::cursor::Cursor;
use super::error::GgufError;
use super::limits::{
    ALIGNMENT_KEY, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_ALIGNMENT, MAX_N_DIMS, MAX_TENSOR_NAME_LEN,
    MIN_KV_BYTES, MIN_TENSOR_INFO_BYTES, PREALLOC_CAP,
};
use super::metadata::Metadata;
use super::read_kv::read_kv;
use super::tensor::{TensorInfo, check_dims, tensor_n_bytes};
use super::types::GgmlType;
use super::value::Value;

/// Parses a complete GGUF v2/v3 file held in `bytes`.
///
/// Never panics and never allocates more than a small multiple of `bytes.len()`
/// (metadata is further capped by [`MAX_METADATA_BYTES`](super::MAX_METADATA_BYTES)).
/// On success every tensor's data range lies inside `bytes`; see [`TensorInfo`].
pub fn parse(bytes: &[u8]) -> Result<Gguf, GgufError> {
    let mut cur = Cursor::new(bytes);
    let version = read_preamble(&mut cur)?;
    let n_tensors = cur.u64().map_err(|s| s.eof("tensor count"))?;
    let n_kv = cur.u64().map_err(|s| s.eof("key/value count"))?;
    check_counts(n_tensors, n_kv, cur.remaining())?;

    let kv_start = cur.pos();
    let mut metadata = Metadata::new();
    for index in 0..n_kv {
        let (key, value) = read_kv(&mut cur, index, kv_start)?;
        metadata.insert(key, value)?;
    }
    let alignment = alignment_of(&metadata)?;

    // `n_tensors` was bounded by the file size above; capacity is capped regardless.
    let mut tensors = Vec::with_capacity(usize::try_from(n_tensors).unwrap_or(0).min(PREALLOC_CAP));
    let mut tensor_index = HashMap::new();
    for index in 0..n_tensors {
        let info = read_tensor_info(&mut cur, index)?;
        if tensor_index.contains_key(&info.name) {
            return Err(GgufError::DuplicateTensorName { name: info.name });
        }
        tensor_index.insert(info.name.clone(), tensors.len());
        tensors.push(info);
    }

    let header_end = cur.pos();
    let data_offset = align_up(header_end, alignment).ok_or(GgufError::DataOffsetOverflow {
        header_end,
        alignment,
    })?;
    check_layout(&tensors, alignment, data_offset, bytes.len() as u64)?;
    Ok(Gguf {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
        tensor_index,
    })
}

/// Reads and checks magic and version; returns the version (2 or 3).
fn read_preamble(cur: &mut Cursor<'_>) -> Result<u32, GgufError> {
    let found: [u8; 4] = cur.array().map_err(|s| s.eof("magic"))?;
    if found != GGUF_MAGIC {
        return Err(GgufError::BadMagic { found });
    }
    let version = cur.u32().map_err(|s| s.eof("version"))?;
    match version {
        2 | 3 => Ok(version),
        raw if (1..=3).contains(&raw.swap_bytes()) => Err(GgufError::BigEndian {
            raw,
            swapped: raw.swap_bytes(),
        }),
        _ => Err(GgufError::UnsupportedVersion { version }),
    }
}

/// Rejects counts that cannot fit in the `remaining` bytes after the header, even if
/// every entry had the minimum size.
fn check_counts(n_tensors: u64, n_kv: u64, remaining: u64) -> Result<(), GgufError> {
    let max_kv = remaining / MIN_KV_BYTES;
    if n_kv > max_kv {
        return Err(GgufError::TooManyKv {
            count: n_kv,
            remaining,
            max_fit: max_kv,
            min_each: MIN_KV_BYTES,
        });
    }
    let rest = remaining - n_kv * MIN_KV_BYTES;
    let max_tensors = rest / MIN_TENSOR_INFO_BYTES;
    if n_tensors > max_tensors {
        return Err(GgufError::TooManyTensors {
            count: n_tensors,
            remaining: rest,
            max_fit: max_tensors,
            min_each: MIN_TENSOR_INFO_BYTES,
        });
    }
    Ok(())
}

/// The data alignment: `general.alignment` (a u32, non-zero power of two, at most
/// [`MAX_ALIGNMENT`]) or [`DEFAULT_ALIGNMENT`].
pub(crate) fn alignment_of(metadata: &Metadata) -> Result<u64, GgufError> {
    let value = match metadata.get(ALIGNMENT_KEY) {
        None => return Ok(DEFAULT_ALIGNMENT),
        Some(Value::U32(v)) => u64::from(*v),
        Some(other) => {
            return Err(GgufError::AlignmentWrongType {
                found: other.value_type().name(),
            });
        }
    };
    if !value.is_power_of_two() {
        return Err(GgufError::InvalidAlignment { value });
    }
    if value > MAX_ALIGNMENT {
        return Err(GgufError::AlignmentTooLarge {
            value,
            max: MAX_ALIGNMENT,
        });
    }
    Ok(value)
}

/// `x` rounded up to a multiple of the power of two `align`; `None` on overflow.
pub(crate) fn align_up(x: u64, align: u64) -> Option<u64> {
    debug_assert!(align.is_power_of_two());
    Some(x.checked_add(align - 1)? & !(align - 1))
}

/// Reads tensor info number `index` and validates its name, shape and type.
fn read_tensor_info(cur: &mut Cursor<'_>, index: u64) -> Result<TensorInfo, GgufError> {
    let at = cur.pos();
    let len = cur
        .u64()
        .map_err(|s| s.eof(format!("name length of tensor #{index}")))?;
    if len > MAX_TENSOR_NAME_LEN {
        return Err(GgufError::TensorNameTooLong {
            index,
            at,
            len,
            max: MAX_TENSOR_NAME_LEN,
        });
    }
    if len == 0 {
        return Err(GgufError::EmptyTensorName { index, at });
    }
    let what = || format!("name of tensor #{index}");
    if len > cur.remaining() {
        return Err(GgufError::StringPastEnd {
            what: what(),
            at,
            len,
            remaining: cur.remaining(),
        });
    }
    let name_at = cur.pos();
    let raw = cur.take(len).map_err(|s| s.eof(what()))?;
    let name = std::str::from_utf8(raw)
        .map_err(|_| GgufError::InvalidUtf8 {
            what: what(),
            at: name_at,
        })?
        .to_owned();

    let n_dims = cur
        .u32()
        .map_err(|s| s.eof(format!("n_dims of tensor '{name}'")))?;
    if n_dims == 0 {
        return Err(GgufError::NoDimensions { tensor: name });
    }
    if n_dims > MAX_N_DIMS {
        return Err(GgufError::TooManyDimensions {
            tensor: name,
            n_dims,
            max: MAX_N_DIMS,
        });
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for d in 0..n_dims {
        dims.push(
            cur.u64()
                .map_err(|s| s.eof(format!("dimension {d} of tensor '{name}'")))?,
        );
    }
    let type_id = cur
        .u32()
        .map_err(|s| s.eof(format!("type of tensor '{name}'")))?;
    let offset = cur
        .u64()
        .map_err(|s| s.eof(format!("offset of tensor '{name}'")))?;

    check_dims(&name, &dims)?;
    let Some(ggml_type) = GgmlType::from_id(type_id) else {
        return Err(GgufError::UnknownTensorType {
            tensor: name,
            type_id,
        });
    };
    let n_bytes = tensor_n_bytes(&name, &dims, ggml_type)?;
    Ok(TensorInfo {
        name,
        dims,
        ggml_type,
        offset,
        n_bytes,
    })
}

/// Checks every tensor's data range: aligned, no overflow, inside the file, and no
/// two ranges overlapping.
fn check_layout(
    tensors: &[TensorInfo],
    alignment: u64,
    data_offset: u64,
    file_len: u64,
) -> Result<(), GgufError> {
    let data_len = file_len.saturating_sub(data_offset);
    for t in tensors {
        if t.offset % alignment != 0 {
            return Err(GgufError::MisalignedOffset {
                tensor: t.name.clone(),
                offset: t.offset,
                alignment,
            });
        }
        let Some(end) = t.offset.checked_add(t.n_bytes) else {
            return Err(GgufError::OffsetOverflow {
                tensor: t.name.clone(),
                offset: t.offset,
                n_bytes: t.n_bytes,
            });
        };
        if t.offset >= data_len {
            return Err(GgufError::TensorOffsetPastEnd {
                tensor: t.name.clone(),
                offset: t.offset,
                data_len,
                data_offset,
                file_len,
            });
        }
        if end > data_len {
            return Err(GgufError::TensorDataTruncated {
                tensor: t.name.clone(),
                offset: t.offset,
                n_bytes: t.n_bytes,
                end,
                data_len,
                missing: end - data_len,
            });
        }
    }
    let mut order: Vec<&TensorInfo> = tensors.iter().collect();
    order.sort_by_key(|t| (t.offset, t.n_bytes));
    for pair in order.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a.end() > b.offset {
            return Err(GgufError::TensorsOverlap {
                first: a.name.clone(),
                first_offset: a.offset,
                first_end: a.end(),
                second: b.name.clone(),
                second_offset: b.offset,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align_up_is_checked() {
        assert_eq!(align_up(0, 32), Some(0));
        assert_eq!(align_up(29_283, 32), Some(29_312));
        assert_eq!(align_up(64, 32), Some(64));
        assert_eq!(align_up(u64::MAX - 30, 32), None);
    }

    #[test]
    fn counts_are_bounded_by_remaining_bytes() {
        assert!(check_counts(0, 0, 0).is_ok());
        assert!(check_counts(0, 2, 2 * MIN_KV_BYTES).is_ok());
        assert!(check_counts(0, 3, 3 * MIN_KV_BYTES - 1).is_err());
        assert!(check_counts(1, 1, MIN_KV_BYTES + MIN_TENSOR_INFO_BYTES).is_ok());
        assert!(check_counts(u64::MAX, u64::MAX, u64::MAX).is_err());
    }
}
