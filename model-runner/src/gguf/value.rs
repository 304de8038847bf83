//! Metadata values: the 13 GGUF value types, scalars and (typed) arrays.
//!
//! Arrays are stored per element type (`Array::U8(Vec<u8>)`, ...) rather than as
//! `Vec<Value>`, so memory stays within a small factor of the file bytes and an empty
//! array keeps its element type (needed for byte-identical rewriting).

use std::io::{self, Write};

/// GGUF value type ids (`gguf_type`), as stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    /// The type for a stored id, `None` if unknown.
    pub fn from_id(id: u32) -> Option<Self> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The stored id.
    pub const fn id(self) -> u32 {
        self as u32
    }

    /// Lower-case name used in error messages (`"u32"`, `"string"`, `"array"`).
    pub const fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }

    /// Encoded size of one scalar in bytes; `None` for strings and arrays.
    pub const fn fixed_size(self) -> Option<u64> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// True for the eight integer types (not bool).
    pub const fn is_integer(self) -> bool {
        use ValueType::*;
        matches!(self, U8 | I8 | U16 | I16 | U32 | I32 | U64 | I64)
    }

    /// Fewest bytes one element of this type can take in a file (a string is at least
    /// its u64 length; an array at least its u32 type + u64 count).
    pub const fn min_size(self) -> u64 {
        match self.fixed_size() {
            Some(n) => n,
            None => match self {
                ValueType::String => 8,
                _ => 12,
            },
        }
    }
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Array),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// A homogeneous array value; nested arrays carry their own element type each.
#[derive(Debug, Clone, PartialEq)]
pub enum Array {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<Array>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

impl Value {
    /// The value's GGUF type.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// Description for error messages: `"u32"`, `"array[string; 1024]"`.
    pub fn type_description(&self) -> String {
        match self {
            Value::Array(a) => format!("array[{}; {}]", a.elem_type().name(), a.len()),
            v => v.value_type().name().to_owned(),
        }
    }

    /// Any integer value widened to i128; `None` for floats, bools, strings, arrays.
    pub fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v.into(),
            Value::I8(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U64(v) => v.into(),
            Value::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// Nesting depth: 0 for scalars and strings, 1 for a flat array, ...
    pub fn array_depth(&self) -> u32 {
        match self {
            Value::Array(a) => a.depth(),
            _ => 0,
        }
    }

    /// Appends the encoded value (without its type id) to `w`.
    pub(crate) fn encode(&self, w: &mut impl Write) -> io::Result<()> {
        match self {
            Value::U8(v) => w.write_all(&[*v]),
            Value::I8(v) => w.write_all(&v.to_le_bytes()),
            Value::U16(v) => w.write_all(&v.to_le_bytes()),
            Value::I16(v) => w.write_all(&v.to_le_bytes()),
            Value::U32(v) => w.write_all(&v.to_le_bytes()),
            Value::I32(v) => w.write_all(&v.to_le_bytes()),
            Value::F32(v) => w.write_all(&v.to_le_bytes()),
            Value::Bool(v) => w.write_all(&[u8::from(*v)]),
            Value::String(s) => encode_str(s, w),
            Value::Array(a) => a.encode(w),
            Value::U64(v) => w.write_all(&v.to_le_bytes()),
            Value::I64(v) => w.write_all(&v.to_le_bytes()),
            Value::F64(v) => w.write_all(&v.to_le_bytes()),
        }
    }
}

impl Array {
    /// Element type of the array.
    pub fn elem_type(&self) -> ValueType {
        match self {
            Array::U8(_) => ValueType::U8,
            Array::I8(_) => ValueType::I8,
            Array::U16(_) => ValueType::U16,
            Array::I16(_) => ValueType::I16,
            Array::U32(_) => ValueType::U32,
            Array::I32(_) => ValueType::I32,
            Array::F32(_) => ValueType::F32,
            Array::Bool(_) => ValueType::Bool,
            Array::String(_) => ValueType::String,
            Array::Array(_) => ValueType::Array,
            Array::U64(_) => ValueType::U64,
            Array::I64(_) => ValueType::I64,
            Array::F64(_) => ValueType::F64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Array::U8(v) => v.len(),
            Array::I8(v) => v.len(),
            Array::U16(v) => v.len(),
            Array::I16(v) => v.len(),
            Array::U32(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::F32(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::String(v) => v.len(),
            Array::Array(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::I64(v) => v.len(),
            Array::F64(v) => v.len(),
        }
    }

    /// True if the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Nesting depth: 1 for a flat array, 2 for an array of flat arrays, ...
    /// (an empty array of arrays counts as 2: the declared element type decides).
    pub fn depth(&self) -> u32 {
        match self {
            Array::Array(v) => 1 + v.iter().map(Array::depth).max().unwrap_or(1),
            _ => 1,
        }
    }

    /// Element `i` widened to i128 if the array holds integers.
    pub fn integer_at(&self, i: usize) -> Option<i128> {
        Some(match self {
            Array::U8(v) => (*v.get(i)?).into(),
            Array::I8(v) => (*v.get(i)?).into(),
            Array::U16(v) => (*v.get(i)?).into(),
            Array::I16(v) => (*v.get(i)?).into(),
            Array::U32(v) => (*v.get(i)?).into(),
            Array::I32(v) => (*v.get(i)?).into(),
            Array::U64(v) => (*v.get(i)?).into(),
            Array::I64(v) => (*v.get(i)?).into(),
            _ => return None,
        })
    }

    /// Appends element type, u64 count and elements to `w`.
    pub(crate) fn encode(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&self.elem_type().id().to_le_bytes())?;
        w.write_all(&(self.len() as u64).to_le_bytes())?;
        fn each<T: Copy, const N: usize>(
            v: &[T],
            w: &mut impl Write,
            f: impl Fn(T) -> [u8; N],
        ) -> io::Result<()> {
            v.iter().try_for_each(|&x| w.write_all(&f(x)))
        }
        match self {
            Array::U8(v) => w.write_all(v),
            Array::I8(v) => each(v, w, i8::to_le_bytes),
            Array::U16(v) => each(v, w, u16::to_le_bytes),
            Array::I16(v) => each(v, w, i16::to_le_bytes),
            Array::U32(v) => each(v, w, u32::to_le_bytes),
            Array::I32(v) => each(v, w, i32::to_le_bytes),
            Array::F32(v) => each(v, w, f32::to_le_bytes),
            Array::Bool(v) => each(v, w, |b| [u8::from(b)]),
            Array::String(v) => v.iter().try_for_each(|s| encode_str(s, w)),
            Array::Array(v) => v.iter().try_for_each(|a| a.encode(w)),
            Array::U64(v) => each(v, w, u64::to_le_bytes),
            Array::I64(v) => each(v, w, i64::to_le_bytes),
            Array::F64(v) => each(v, w, f64::to_le_bytes),
        }
    }
}

/// Appends a GGUF string: u64 byte length, then the UTF-8 bytes.
pub(crate) fn encode_str(s: &str, w: &mut impl Write) -> io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

impl From<u8> for Value {
    fn from(v: u8) -> Self {
        Value::U8(v)
    }
}
impl From<i8> for Value {
    fn from(v: i8) -> Self {
        Value::I8(v)
    }
}
impl From<u16> for Value {
    fn from(v: u16) -> Self {
        Value::U16(v)
    }
}
impl From<i16> for Value {
    fn from(v: i16) -> Self {
        Value::I16(v)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::U32(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::I32(v)
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::F32(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::U64(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::I64(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::F64(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}
impl From<Array> for Value {
    fn from(v: Array) -> Self {
        Value::Array(v)
    }
}
