//! ggml tensor element types: numeric ids as stored in GGUF, and byte-size rules.
//!
//! Blocked types store `block_size` elements in `type_size` bytes and need
//! `ne0 % block_size == 0`. I2_S (bitnet.cpp) is the exception: the whole tensor is
//! one run of 128-element / 32-byte blocks followed by a 32-byte tail (f32 scale +
//! 28 bytes padding), so its size is `n / 4 + 32` and needs only `n % 128 == 0`.

/// A ggml tensor type with its GGUF id (`as u32` gives the id).
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum GgmlType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
    TQ1_0 = 34,
    TQ2_0 = 35,
    /// bitnet.cpp's whole-tensor ternary format (id 36 in bitnet.cpp's ggml fork).
    I2_S = 36,
}

/// Bytes after the packed codes of an I2_S tensor: f32 scale + 28 bytes padding.
pub const I2S_TAIL_BYTES: u64 = 32;

/// Elements per I2_S block (32 bytes of 2-bit codes).
pub const I2S_BLOCK_ELEMS: u64 = 128;

impl GgmlType {
    /// Every type this reader knows, in id order.
    pub const ALL: [GgmlType; 32] = {
        use GgmlType::*;
        [
            F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K,
            IQ2_XXS, IQ2_XS, IQ3_XXS, IQ1_S, IQ4_NL, IQ3_S, IQ2_S, IQ4_XS, I8, I16, I32, I64, F64,
            IQ1_M, BF16, TQ1_0, TQ2_0, I2_S,
        ]
    };

    /// The GGUF / ggml numeric id.
    pub const fn id(self) -> u32 {
        self as u32
    }

    /// The type for a GGUF id, `None` for unknown or removed ids (4, 5, 31..=33, 37+).
    pub fn from_id(id: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.id() == id)
    }

    /// ggml's name for the type (`"Q4_0"`, `"I2_S"`, ...).
    pub const fn name(self) -> &'static str {
        use GgmlType::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q8_1 => "Q8_1",
            Q2_K => "Q2_K",
            Q3_K => "Q3_K",
            Q4_K => "Q4_K",
            Q5_K => "Q5_K",
            Q6_K => "Q6_K",
            Q8_K => "Q8_K",
            IQ2_XXS => "IQ2_XXS",
            IQ2_XS => "IQ2_XS",
            IQ3_XXS => "IQ3_XXS",
            IQ1_S => "IQ1_S",
            IQ4_NL => "IQ4_NL",
            IQ3_S => "IQ3_S",
            IQ2_S => "IQ2_S",
            IQ4_XS => "IQ4_XS",
            I8 => "I8",
            I16 => "I16",
            I32 => "I32",
            I64 => "I64",
            F64 => "F64",
            IQ1_M => "IQ1_M",
            BF16 => "BF16",
            TQ1_0 => "TQ1_0",
            TQ2_0 => "TQ2_0",
            I2_S => "I2_S",
        }
    }

    /// Elements per block (1 for plain scalar types; 128 for I2_S's code blocks).
    pub const fn block_size(self) -> u64 {
        use GgmlType::*;
        match self {
            F32 | F16 | BF16 | I8 | I16 | I32 | I64 | F64 => 1,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 | IQ4_NL => 32,
            I2_S => I2S_BLOCK_ELEMS,
            Q2_K | Q3_K | Q4_K | Q5_K | Q6_K | Q8_K | IQ2_XXS | IQ2_XS | IQ3_XXS | IQ1_S
            | IQ3_S | IQ2_S | IQ4_XS | IQ1_M | TQ1_0 | TQ2_0 => 256,
        }
    }

    /// Bytes per block (for I2_S: the 32 code bytes, without the per-tensor tail).
    pub const fn type_size(self) -> u64 {
        use GgmlType::*;
        match self {
            F32 | I32 => 4,
            F16 | BF16 | I16 => 2,
            I8 => 1,
            I64 | F64 => 8,
            Q4_0 => 18,
            Q4_1 => 20,
            Q5_0 => 22,
            Q5_1 => 24,
            Q8_0 => 34,
            Q8_1 => 36,
            Q2_K => 84,
            Q3_K => 110,
            Q4_K => 144,
            Q5_K => 176,
            Q6_K => 210,
            Q8_K => 292,
            IQ2_XXS => 66,
            IQ2_XS => 74,
            IQ3_XXS => 98,
            IQ1_S => 50,
            IQ4_NL => 18,
            IQ3_S => 110,
            IQ2_S => 82,
            IQ4_XS => 136,
            IQ1_M => 56,
            TQ1_0 => 54,
            TQ2_0 => 66,
            I2_S => 32,
        }
    }

    /// Byte size of a tensor with dimensions `dims` (ne order, `ne[0]` contiguous).
    ///
    /// Checks the layout rule (`ne0 % block_size == 0`, or `n % 128 == 0` for I2_S) and
    /// overflow; see [`SizeError`]. Does not reject zero dimensions (the reader does).
    pub fn n_bytes(self, dims: &[u64]) -> Result<u64, SizeError> {
        let n = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or(SizeError::ElementCountOverflow)?;
        let block = self.block_size();
        if self == GgmlType::I2_S {
            if n % block != 0 {
                return Err(SizeError::I2sNotBlockMultiple { n_elements: n });
            }
        } else {
            let ne0 = dims.first().copied().unwrap_or(1);
            if ne0 % block != 0 {
                return Err(SizeError::RowNotBlockMultiple {
                    ne0,
                    block_size: block,
                });
            }
        }
        let tail = if self == GgmlType::I2_S {
            I2S_TAIL_BYTES
        } else {
            0
        };
        (n / block)
            .checked_mul(self.type_size())
            .and_then(|b| b.checked_add(tail))
            .ok_or(SizeError::SizeOverflow { n_elements: n })
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.name(), self.id())
    }
}

/// Why [`GgmlType::n_bytes`] rejected a shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeError {
    /// The product of the dimensions overflows u64.
    ElementCountOverflow,
    /// `ne0` is not a multiple of the type's block size.
    RowNotBlockMultiple { ne0: u64, block_size: u64 },
    /// An I2_S tensor whose element count is not a multiple of 128.
    I2sNotBlockMultiple { n_elements: u64 },
    /// The byte size overflows u64.
    SizeOverflow { n_elements: u64 },
}
