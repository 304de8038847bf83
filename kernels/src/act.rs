//! Activation quantizers: bitnet.cpp per-token int8 (for I2_S/QK256) and llama.cpp Q8_K
//! (for TQ1_0/TQ2_0).

use crate::error::{KernelError, Result, check_len};
use crate::exec::Exec;
use crate::simd;

/// Activations row padding: every token row of [`ActsI8::q`] is a multiple of this long,
/// zero-filled past `cols`, so whole weight blocks can be read without a tail loop
/// (a zero activation contributes nothing whatever the padding code).
pub const I8_ROW_ALIGN: usize = 256;

/// bitnet.cpp per-token int8 activations.
///
/// For token `t`: `s = (f32)(127 / max(1e-5, max|x|))` (max and division in f64),
/// `q = clamp(round_half_even(x * s), -128, 127)` with `x * s` in f32, `sum = Σ q`.
#[derive(Debug, Clone, PartialEq)]
pub struct ActsI8 {
    /// Input width (unpadded).
    pub cols: usize,
    /// Length of one token row in `q`: `cols` rounded up to [`I8_ROW_ALIGN`].
    pub stride: usize,
    /// Number of token rows.
    pub tokens: usize,
    /// `[tokens, stride]` quantized values, zero past `cols`.
    pub q: Vec<i8>,
    /// Per-token scale `s` (value = q / s).
    pub scale: Vec<f32>,
    /// Per-token `Σ q` (exact).
    pub sum: Vec<i32>,
}

/// One Q8_K block: 256 int8 values with scale `d` and 16 partial sums.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct BlockQ8K {
    /// Scale: value = q * d.
    pub d: f32,
    /// Quantized values.
    pub qs: [i8; 256],
    /// Sums of each 16 consecutive `qs`.
    pub bsums: [i16; 16],
}

const _: () = assert!(core::mem::size_of::<BlockQ8K>() == 4 + 256 + 32);

/// llama.cpp Q8_K activations: `[tokens][cols / 256]` blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct ActsQ8K {
    /// Input width (a multiple of 256).
    pub cols: usize,
    /// Number of token rows.
    pub tokens: usize,
    /// `tokens * cols / 256` blocks, token-major.
    pub blocks: Vec<BlockQ8K>,
}

/// Quantized activations, as each format family consumes them.
#[derive(Debug, Clone, PartialEq)]
pub enum Activations {
    /// For I2_S and QK256.
    I8(ActsI8),
    /// For TQ1_0 and TQ2_0.
    Q8K(ActsQ8K),
}

impl Activations {
    /// Human-readable kind and width, for errors.
    pub fn describe(&self) -> String {
        match self {
            Activations::I8(a) => format!("int8 per-token, cols={}", a.cols),
            Activations::Q8K(a) => format!("Q8_K, cols={}", a.cols),
        }
    }
}

/// Checks `x.len() == cols * tokens` (without overflow) and returns that length.
fn check_x(x: &[f32], cols: usize, tokens: usize) -> Result<usize> {
    let n = cols.checked_mul(tokens).ok_or(KernelError::SliceLength {
        what: "activations",
        got: usize::MAX,
        expected: 0,
    })?;
    check_len("x [tokens, cols]", x.len(), n)?;
    Ok(n)
}

/// Quantizes `x` (`[tokens, cols]`) with bitnet.cpp's per-token int8 rule.
pub fn quantize_i8(x: &[f32], cols: usize, tokens: usize, exec: &Exec) -> Result<ActsI8> {
    let k = exec.kernels()?;
    if cols == 0 || tokens == 0 {
        return Err(KernelError::SliceLength {
            what: "activation cols/tokens",
            got: 0,
            expected: 1,
        });
    }
    check_x(x, cols, tokens)?;
    let stride = cols.div_ceil(I8_ROW_ALIGN) * I8_ROW_ALIGN;
    let mut q = vec![0i8; stride * tokens];
    let mut scale = Vec::with_capacity(tokens);
    let mut sum = Vec::with_capacity(tokens);
    for (t, (xr, qr)) in x
        .chunks_exact(cols)
        .zip(q.chunks_exact_mut(stride))
        .enumerate()
    {
        let amax =
            simd::absmax_checked(k, xr).ok_or(KernelError::NonFiniteActivation { token: t })?;
        let s = (127.0f64 / (amax as f64).max(1e-5)) as f32;
        sum.push((k.quant_i8)(xr, s, &mut qr[..cols]));
        scale.push(s);
    }
    Ok(ActsI8 {
        cols,
        stride,
        tokens,
        q,
        scale,
        sum,
    })
}

/// Quantizes `x` (`[tokens, cols]`, `cols % 256 == 0`) to Q8_K blocks (llama.cpp's
/// `quantize_row_q8_K_ref`): per block, `amax` is the first element of largest magnitude,
/// `iscale = -127 / amax`, `q = min(127, round_half_even(iscale * x))`, `d = 1 / iscale`;
/// an all-zero block gets `d = 0`, `q = 0`.
pub fn quantize_q8k(x: &[f32], cols: usize, tokens: usize) -> Result<ActsQ8K> {
    if cols == 0 || tokens == 0 || !cols.is_multiple_of(256) {
        return Err(KernelError::SliceLength {
            what: "Q8_K activation cols (a non-zero multiple of 256)",
            got: cols,
            expected: cols.div_ceil(256).max(1) * 256,
        });
    }
    let n = check_x(x, cols, tokens)?;
    let mut blocks = Vec::with_capacity(n / 256);
    for (i, xb) in x.chunks_exact(256).enumerate() {
        if xb.iter().any(|v| !v.is_finite()) {
            return Err(KernelError::NonFiniteActivation {
                token: i * 256 / cols,
            });
        }
        blocks.push(quantize_block_q8k(xb));
    }
    Ok(ActsQ8K {
        cols,
        tokens,
        blocks,
    })
}

fn quantize_block_q8k(x: &[f32]) -> BlockQ8K {
    let mut b = BlockQ8K {
        d: 0.0,
        qs: [0; 256],
        bsums: [0; 16],
    };
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        return b;
    }
    let iscale = -127.0f32 / max;
    for (q, &v) in b.qs.iter_mut().zip(x) {
        // |iscale * v| <= 127 (+ rounding) when `max` is normal. A subnormal `max` makes
        // `iscale` infinite: the saturating `as` then yields junk codes, but `d = 1/iscale`
        // is ±0, so the block contributes exactly 0 (the twin does the same).
        *q = ((iscale * v).round_ties_even() as i32).min(127) as i8;
    }
    for (s, chunk) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
        *s = chunk.iter().map(|&q| q as i16).sum();
    }
    b.d = 1.0 / iscale;
    b
}
