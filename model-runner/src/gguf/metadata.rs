//! Ordered key/value metadata with key lookup and typed accessors.
//!
//! Keys are unique (insertion rejects duplicates) and iterate in file order.
//! `get_*` accessors fail with [`GgufError::MissingKey`] / [`GgufError::WrongType`] /
//! [`GgufError::ValueOutOfRange`] naming the key; `opt_*` variants return `Ok(None)`
//! for a missing key but still fail on a wrong type. Integer accessors accept any
//! stored integer type whose value fits the requested type.

use std::borrow::Cow;
use std::collections::HashMap;

use super::error::GgufError;
use super::value::{Array, Value};

/// GGUF metadata: key/value pairs in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    entries: Vec<(String, Value)>,
    index: HashMap<String, usize>,
}

impl Metadata {
    /// Empty metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `key = value`; fails with [`GgufError::DuplicateKey`] if `key` exists.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) -> Result<(), GgufError> {
        let key = key.into();
        if self.index.contains_key(&key) {
            return Err(GgufError::DuplicateKey { key });
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
        Ok(())
    }

    /// Replaces the value of `key` in place, or appends it if absent.
    pub fn set(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.index.get(&key) {
            Some(&i) => self.entries[i].1 = value,
            None => {
                self.index.insert(key.clone(), self.entries.len());
                self.entries.push((key, value));
            }
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if there are no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Pairs in file order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Keys in file order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// True if `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    /// The raw value of `key`, or [`GgufError::MissingKey`].
    pub fn require(&self, key: &str) -> Result<&Value, GgufError> {
        self.get(key).ok_or_else(|| GgufError::MissingKey {
            key: key.to_owned(),
        })
    }

    pub fn get_u32(&self, key: &str) -> Result<u32, GgufError> {
        self.integer(key, "u32")
    }
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        self.integer(key, "u64")
    }
    pub fn get_i32(&self, key: &str) -> Result<i32, GgufError> {
        self.integer(key, "i32")
    }
    pub fn get_i64(&self, key: &str) -> Result<i64, GgufError> {
        self.integer(key, "i64")
    }

    /// An `f32` value (an `f64` value is accepted and rounded to f32).
    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        match self.require(key)? {
            Value::F32(v) => Ok(*v),
            Value::F64(v) => Ok(*v as f32),
            other => Err(wrong(key, "f32", other)),
        }
    }

    pub fn get_bool(&self, key: &str) -> Result<bool, GgufError> {
        match self.require(key)? {
            Value::Bool(v) => Ok(*v),
            other => Err(wrong(key, "bool", other)),
        }
    }

    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        match self.require(key)? {
            Value::String(v) => Ok(v),
            other => Err(wrong(key, "string", other)),
        }
    }

    /// The array value of `key`, whatever its element type.
    pub fn get_array(&self, key: &str) -> Result<&Array, GgufError> {
        match self.require(key)? {
            Value::Array(a) => Ok(a),
            other => Err(wrong(key, "array", other)),
        }
    }

    pub fn get_str_array(&self, key: &str) -> Result<&[String], GgufError> {
        match self.require(key)? {
            Value::Array(Array::String(v)) => Ok(v),
            other => Err(wrong(key, "array[string]", other)),
        }
    }

    pub fn get_f32_array(&self, key: &str) -> Result<&[f32], GgufError> {
        match self.require(key)? {
            Value::Array(Array::F32(v)) => Ok(v),
            other => Err(wrong(key, "array[f32]", other)),
        }
    }

    /// An integer array as i32: borrowed when stored as i32, converted from any other
    /// integer element type when every element fits.
    pub fn get_i32_array(&self, key: &str) -> Result<Cow<'_, [i32]>, GgufError> {
        let array = match self.require(key)? {
            Value::Array(Array::I32(v)) => return Ok(Cow::Borrowed(v)),
            Value::Array(a) if a.elem_type().is_integer() => a,
            other => return Err(wrong(key, "array[integer]", other)),
        };
        (0..array.len())
            .map(|i| {
                let v = array.integer_at(i).unwrap_or_default();
                i32::try_from(v).map_err(|_| GgufError::ValueOutOfRange {
                    key: format!("{key}[{i}]"),
                    value: v.to_string(),
                    target: "i32",
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Cow::Owned)
    }

    pub fn opt_u32(&self, key: &str) -> Result<Option<u32>, GgufError> {
        self.opt(key, Self::get_u32)
    }
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>, GgufError> {
        self.opt(key, Self::get_u64)
    }
    pub fn opt_i32(&self, key: &str) -> Result<Option<i32>, GgufError> {
        self.opt(key, Self::get_i32)
    }
    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>, GgufError> {
        self.opt(key, Self::get_i64)
    }
    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>, GgufError> {
        self.opt(key, Self::get_f32)
    }
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, GgufError> {
        self.opt(key, Self::get_bool)
    }
    pub fn opt_str(&self, key: &str) -> Result<Option<&str>, GgufError> {
        self.opt(key, Self::get_str)
    }
    pub fn opt_str_array(&self, key: &str) -> Result<Option<&[String]>, GgufError> {
        self.opt(key, Self::get_str_array)
    }
    pub fn opt_f32_array(&self, key: &str) -> Result<Option<&[f32]>, GgufError> {
        self.opt(key, Self::get_f32_array)
    }
    pub fn opt_i32_array(&self, key: &str) -> Result<Option<Cow<'_, [i32]>>, GgufError> {
        self.opt(key, Self::get_i32_array)
    }

    fn opt<'a, T>(
        &'a self,
        key: &str,
        get: impl FnOnce(&'a Self, &str) -> Result<T, GgufError>,
    ) -> Result<Option<T>, GgufError> {
        if self.contains_key(key) {
            get(self, key).map(Some)
        } else {
            Ok(None)
        }
    }

    fn integer<T: TryFrom<i128>>(&self, key: &str, target: &'static str) -> Result<T, GgufError> {
        let value = self.require(key)?;
        let v = value
            .as_integer()
            .ok_or_else(|| wrong(key, target, value))?;
        T::try_from(v).map_err(|_| GgufError::ValueOutOfRange {
            key: key.to_owned(),
            value: format!("{v} ({})", value.value_type().name()),
            target,
        })
    }
}

fn wrong(key: &str, expected: &'static str, found: &Value) -> GgufError {
    GgufError::WrongType {
        key: key.to_owned(),
        expected,
        found: found.type_description(),
    }
}
