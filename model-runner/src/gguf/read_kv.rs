//! Decoding of key/value pairs from an untrusted cursor.
//!
//! Order of checks for every length or count: the cap (string limit, depth limit), then
//! the bytes left in the file, then the metadata budget ([`MAX_METADATA_BYTES`] from
//! the start of the kv section) -- all before anything is allocated.

use super::cursor::Cursor;
use super::error::GgufError;
use super::limits::{
    MAX_ARRAY_DEPTH, MAX_KEY_LEN, MAX_METADATA_BYTES, MAX_STRING_LEN, PREALLOC_CAP,
};
use super::value::{Array, Value, ValueType};

/// Reads key/value pair number `index`; `kv_start` is where the kv section began.
pub(crate) fn read_kv(
    cur: &mut Cursor<'_>,
    index: u64,
    kv_start: u64,
) -> Result<(String, Value), GgufError> {
    let budget_end = kv_start.saturating_add(MAX_METADATA_BYTES);
    let label = format!("#{index}");
    let mut r = ValueReader {
        cur,
        key: &label,
        budget_end,
    };
    let at = r.cur.pos();
    let len = r
        .cur
        .u64()
        .map_err(|s| s.eof(format!("length of key #{index}")))?;
    if len > MAX_KEY_LEN {
        return Err(GgufError::KeyTooLong {
            index,
            at,
            len,
            max: MAX_KEY_LEN,
        });
    }
    if len == 0 {
        return Err(GgufError::EmptyKey { index, at });
    }
    let key = r.string_bytes(len, at, || format!("key #{index}"))?;
    let mut r = ValueReader {
        cur: r.cur,
        key: &key,
        budget_end,
    };
    let ty = r.value_type()?;
    let value = r.value(ty, 0)?;
    Ok((key, value))
}

/// Reads values belonging to one key; `key` names it in errors.
struct ValueReader<'c, 'a, 'k> {
    cur: &'c mut Cursor<'a>,
    key: &'k str,
    budget_end: u64,
}

impl<'a> ValueReader<'_, 'a, '_> {
    /// Takes `n` bytes: fails if the file or the metadata budget is exhausted.
    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], GgufError> {
        self.budget(n)?;
        self.cur
            .take(n)
            .map_err(|s| s.eof(format!("{what} of key '{}'", self.key)))
    }

    /// Fails with `MetadataTooLarge` if `n` more bytes would pass the budget.
    /// Callers check the file length first when they want that error to win.
    fn budget(&self, n: u64) -> Result<(), GgufError> {
        let end = u128::from(self.cur.pos()) + u128::from(n);
        if end > u128::from(self.budget_end) && n <= self.cur.remaining() {
            return Err(GgufError::MetadataTooLarge {
                key: self.key.to_owned(),
                max: MAX_METADATA_BYTES,
                at: self.cur.pos(),
            });
        }
        Ok(())
    }

    fn array_n<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64, what)?);
        Ok(out)
    }

    fn value_type(&mut self) -> Result<ValueType, GgufError> {
        let at = self.cur.pos();
        let id = u32::from_le_bytes(self.array_n("value type")?);
        ValueType::from_id(id).ok_or_else(|| GgufError::UnknownValueType {
            key: self.key.to_owned(),
            type_id: id,
            at,
        })
    }

    /// Reads `len` bytes of UTF-8 whose length field was at `at` (already cap-checked).
    fn string_bytes(
        &mut self,
        len: u64,
        at: u64,
        what: impl Fn() -> String,
    ) -> Result<String, GgufError> {
        if len > self.cur.remaining() {
            return Err(GgufError::StringPastEnd {
                what: what(),
                at,
                len,
                remaining: self.cur.remaining(),
            });
        }
        self.budget(len)?;
        let start = self.cur.pos();
        let bytes = self.cur.take(len).map_err(|s| s.eof(what()))?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| GgufError::InvalidUtf8 {
                what: what(),
                at: start,
            })
    }

    /// Reads a length-prefixed string value capped at [`MAX_STRING_LEN`].
    fn string(&mut self, what: impl Fn() -> String) -> Result<String, GgufError> {
        let at = self.cur.pos();
        let len = u64::from_le_bytes(self.array_n("string length")?);
        if len > MAX_STRING_LEN {
            return Err(GgufError::StringTooLong {
                what: what(),
                at,
                len,
                max: MAX_STRING_LEN,
            });
        }
        self.string_bytes(len, at, what)
    }

    /// Reads one value of type `ty`; `depth` is the nesting of the enclosing array.
    fn value(&mut self, ty: ValueType, depth: u32) -> Result<Value, GgufError> {
        Ok(match ty {
            ValueType::U8 => Value::U8(u8::from_le_bytes(self.array_n("u8 value")?)),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array_n("i8 value")?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array_n("u16 value")?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array_n("i16 value")?)),
            ValueType::U32 => Value::U32(u32::from_le_bytes(self.array_n("u32 value")?)),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array_n("i32 value")?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array_n("f32 value")?)),
            ValueType::U64 => Value::U64(u64::from_le_bytes(self.array_n("u64 value")?)),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array_n("i64 value")?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array_n("f64 value")?)),
            ValueType::Bool => {
                let at = self.cur.pos();
                let [b] = self.array_n("bool value")?;
                Value::Bool(self.bool(b, at)?)
            }
            ValueType::String => {
                let key = self.key;
                Value::String(self.string(|| format!("string value of key '{key}'"))?)
            }
            ValueType::Array => Value::Array(self.array(depth + 1)?),
        })
    }

    fn bool(&self, b: u8, at: u64) -> Result<bool, GgufError> {
        match b {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(GgufError::InvalidBool {
                key: self.key.to_owned(),
                value,
                at,
            }),
        }
    }

    /// Reads an array at nesting `depth` (1 = top-level array).
    fn array(&mut self, depth: u32) -> Result<Array, GgufError> {
        let at = self.cur.pos();
        let elem = self.value_type()?;
        if elem == ValueType::Array && depth >= MAX_ARRAY_DEPTH {
            return Err(GgufError::ArrayTooDeep {
                key: self.key.to_owned(),
                max_depth: MAX_ARRAY_DEPTH,
                at,
            });
        }
        let count = u64::from_le_bytes(self.array_n("array length")?);
        let min_bytes = u128::from(count) * u128::from(elem.min_size());
        if min_bytes > u128::from(self.cur.remaining()) {
            return Err(GgufError::ArrayPastEnd {
                key: self.key.to_owned(),
                elem_type: elem.name(),
                count,
                min_bytes,
                at,
                remaining: self.cur.remaining(),
            });
        }
        // `min_bytes <= remaining`, so it fits in u64 and `count` in usize.
        self.budget(min_bytes as u64)?;
        let n = count as usize;
        let key = self.key;
        Ok(match elem {
            ValueType::U8 => Array::U8(self.fixed(n, u8::from_le_bytes)?),
            ValueType::I8 => Array::I8(self.fixed(n, i8::from_le_bytes)?),
            ValueType::U16 => Array::U16(self.fixed(n, u16::from_le_bytes)?),
            ValueType::I16 => Array::I16(self.fixed(n, i16::from_le_bytes)?),
            ValueType::U32 => Array::U32(self.fixed(n, u32::from_le_bytes)?),
            ValueType::I32 => Array::I32(self.fixed(n, i32::from_le_bytes)?),
            ValueType::F32 => Array::F32(self.fixed(n, f32::from_le_bytes)?),
            ValueType::U64 => Array::U64(self.fixed(n, u64::from_le_bytes)?),
            ValueType::I64 => Array::I64(self.fixed(n, i64::from_le_bytes)?),
            ValueType::F64 => Array::F64(self.fixed(n, f64::from_le_bytes)?),
            ValueType::Bool => {
                let start = self.cur.pos();
                let raw = self.fixed(n, |[b]: [u8; 1]| b)?;
                let bools = raw.iter().zip(start..).map(|(&b, pos)| self.bool(b, pos));
                Array::Bool(bools.collect::<Result<_, _>>()?)
            }
            ValueType::String => {
                let mut v = Vec::with_capacity(n.min(PREALLOC_CAP));
                for i in 0..n {
                    v.push(self.string(|| format!("element {i} of string array '{key}'"))?);
                }
                Array::String(v)
            }
            ValueType::Array => {
                let mut v = Vec::with_capacity(n.min(PREALLOC_CAP));
                for _ in 0..n {
                    v.push(self.array(depth + 1)?);
                }
                Array::Array(v)
            }
        })
    }

    /// Reads `n` little-endian elements of `N` bytes each (length already checked).
    fn fixed<T, const N: usize>(
        &mut self,
        n: usize,
        f: fn([u8; N]) -> T,
    ) -> Result<Vec<T>, GgufError> {
        let len = (n as u64).saturating_mul(N as u64);
        let bytes = self.take(len, "array data")?;
        Ok(bytes
            .chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                f(a)
            })
            .collect())
    }
}
