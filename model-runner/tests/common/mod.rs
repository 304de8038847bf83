//! Shared by the GGUF catalogue tests: a raw byte builder, deliberately able to write
//! invalid files, and small helpers around it.
#![allow(dead_code)] // each test binary uses its own subset

use bitnet_runner::gguf::{GgufError, parse};

pub const U8: u32 = 0;
pub const U32: u32 = 4;
pub const BOOL: u32 = 7;
pub const STRING: u32 = 8;
pub const ARRAY: u32 = 9;
pub const U64: u32 = 10;
pub const F32_T: u32 = 0;
pub const Q4_0_T: u32 = 2;
pub const I2_S_T: u32 = 36;

#[derive(Clone, Default)]
pub struct Raw(pub Vec<u8>);

impl Raw {
    pub fn header(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        Raw::default()
            .bytes(b"GGUF")
            .u32(version)
            .u64(n_tensors)
            .u64(n_kv)
    }
    pub fn bytes(mut self, b: &[u8]) -> Raw {
        self.0.extend_from_slice(b);
        self
    }
    pub fn u8(self, v: u8) -> Raw {
        self.bytes(&[v])
    }
    pub fn u32(self, v: u32) -> Raw {
        self.bytes(&v.to_le_bytes())
    }
    pub fn u64(self, v: u64) -> Raw {
        self.bytes(&v.to_le_bytes())
    }
    pub fn str(self, s: &str) -> Raw {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }
    /// Key and value type; the value follows.
    pub fn kv(self, key: &str, ty: u32) -> Raw {
        self.str(key).u32(ty)
    }
    pub fn kv_u32(self, key: &str, v: u32) -> Raw {
        self.kv(key, U32).u32(v)
    }
    pub fn tensor(self, name: &str, dims: &[u64], ty: u32, offset: u64) -> Raw {
        let mut r = self.str(name).u32(dims.len() as u32);
        for &d in dims {
            r = r.u64(d);
        }
        r.u32(ty).u64(offset)
    }
    pub fn zeros(self, n: usize) -> Raw {
        self.bytes(&vec![0; n])
    }
    pub fn pad(self, align: usize) -> Raw {
        let n = self.0.len().next_multiple_of(align) - self.0.len();
        self.zeros(n)
    }
}

pub fn err(bytes: &[u8]) -> GgufError {
    parse(bytes).expect_err("malformed input must be rejected")
}

/// One tensor (no metadata) at `offset`, followed by `data_len` zero bytes of data.
pub fn one_tensor(dims: &[u64], ty: u32, offset: u64, data_len: usize) -> Vec<u8> {
    Raw::header(3, 1, 0)
        .tensor("t", dims, ty, offset)
        .pad(32)
        .zeros(data_len)
        .0
}
