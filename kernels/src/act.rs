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

impl ActsI8 {
    /// No tokens yet; the buffers grow on first use and are reused after (see
    /// [`quantize_i8_into`]).
    pub const fn empty() -> ActsI8 {
        ActsI8 {
            cols: 0,
            stride: 0,
            tokens: 0,
            q: Vec::new(),
            scale: Vec::new(),
            sum: Vec::new(),
        }
    }

    /// Shapes `self` for `tokens` rows of `cols` (zeroed values, no scales yet), reusing the
    /// buffers' capacity.
    fn reset(&mut self, cols: usize, tokens: usize) {
        self.cols = cols;
        self.stride = cols.div_ceil(I8_ROW_ALIGN) * I8_ROW_ALIGN;
        self.tokens = tokens;
        self.q.clear();
        self.q.resize(self.stride * tokens, 0);
        self.scale.clear();
        self.sum.clear();
    }

    /// Quantizes token row `t` from `x`, whose `max|x|` bits are `amax_bits` (as
    /// `absmax_bits` gives them), appending its scale and sum.
    fn push_row(
        &mut self,
        k: &simd::KernelTable,
        t: usize,
        x: &[f32],
        amax_bits: u32,
    ) -> Result<()> {
        let s = int8_scale(t, amax_bits)?;
        let row = &mut self.q[t * self.stride..t * self.stride + self.cols];
        self.sum.push((k.quant_i8)(x, s, row));
        self.scale.push(s);
        Ok(())
    }
}

/// bitnet.cpp's per-token int8 scale `127 / max(max|x|, 1e-5)` (in f64, rounded to f32)
/// from the bits of `max|x|`; token `t`'s error if that is not finite.
fn int8_scale(t: usize, amax_bits: u32) -> Result<f32> {
    if amax_bits >= 0x7f80_0000 {
        return Err(KernelError::NonFiniteActivation { token: t });
    }
    let amax = f32::from_bits(amax_bits);
    Ok((127.0f64 / (amax as f64).max(1e-5)) as f32)
}

/// Checks the shape of an int8 quantization and returns the ISA's kernels.
fn check_i8(
    x: &[f32],
    cols: usize,
    tokens: usize,
    exec: &Exec,
) -> Result<&'static simd::KernelTable> {
    let k = exec.kernels()?;
    if cols == 0 || tokens == 0 {
        return Err(KernelError::SliceLength {
            what: "activation cols/tokens",
            got: 0,
            expected: 1,
        });
    }
    check_x(x, cols, tokens)?;
    Ok(k)
}

/// Quantizes `x` (`[tokens, cols]`) with bitnet.cpp's per-token int8 rule.
pub fn quantize_i8(x: &[f32], cols: usize, tokens: usize, exec: &Exec) -> Result<ActsI8> {
    let mut out = ActsI8::empty();
    quantize_i8_into(x, cols, tokens, exec, &mut out)?;
    Ok(out)
}

/// [`quantize_i8`] into `out`, reusing its buffers (no allocation once they are large
/// enough). On error `out` holds no valid activations.
pub fn quantize_i8_into(
    x: &[f32],
    cols: usize,
    tokens: usize,
    exec: &Exec,
    out: &mut ActsI8,
) -> Result<()> {
    let k = check_i8(x, cols, tokens, exec)?;
    out.reset(cols, tokens);
    for (t, xr) in x.chunks_exact(cols).enumerate() {
        out.push_row(k, t, xr, (k.absmax_bits)(xr))?;
    }
    Ok(())
}

/// RMSNorm of one row, as ggml: squares in f32 summed in f64 in order, `mean` rounded to
/// f32, `scale = 1 / sqrt(mean + eps)` in f32, `out = (x · scale) · w`.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let scale = rms_scale(x, eps);
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = (v * scale) * g;
    }
}

/// [`rms_norm`] of every `w.len()`-wide row of `x` into `out`.
pub fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let n = w.len();
    if n == 0 {
        return;
    }
    with_rms_scales(x, out, n, eps, |_, xr, or, scale| {
        for ((o, &v), &g) in or.iter_mut().zip(xr).zip(w) {
            *o = (v * scale) * g;
        }
    });
}

/// Calls `f(i, x_row, out_row, scale)` for every `n`-wide row `i` of `x` (and of `out`) with
/// that row's RMSNorm scale.
fn with_rms_scales(
    x: &[f32],
    out: &mut [f32],
    n: usize,
    eps: f32,
    mut f: impl FnMut(usize, &[f32], &mut [f32], f32),
) {
    let rows = x.chunks_exact(n).zip(out.chunks_exact_mut(n));
    for (i, (xr, or)) in rows.enumerate() {
        f(i, xr, or, rms_scale(xr, eps));
    }
}

/// RMSNorm's `1 / sqrt(mean(x²) + eps)` (see [`rms_norm`]).
fn rms_scale(x: &[f32], eps: f32) -> f32 {
    1.0f32 / (rms_mean(x) + eps).sqrt()
}

/// ggml's RMSNorm mean, `(f32)(S / n)` where `S` is the f64 sum of the f32 squares `x_i · x_i`
/// added in element order, with those bits, but without waiting on `n` dependent adds.
///
/// The squares are first summed in 16 independent lanes (`Ŝ`, any order). Every
/// term is non-negative, so any order of the `n − 1` adds is within `γ = (n − 1)·u / (1 −
/// (n − 1)·u)` of the exact sum, relatively (`u = 2⁻⁵³`): the in-order `S` and `Ŝ` differ by
/// at most `2γ/(1 − γ)·Ŝ`, and each division by `n` adds a rounding of `u`. So `S / n` as
/// rounded lies within `ε = (4n + 16)·u` (twice that, for the roundings of the bracket
/// itself) of `D = Ŝ / n`. Rounding to f32 is monotone: when `D·(1 − ε)` and `D·(1 + ε)`
/// round to the same f32, so does the in-order mean, and that f32 is returned. Otherwise
/// (`D` within `ε` of a midpoint between two f32s, in about `n·2⁻²⁶` of rows: one in 26 000
/// for `n` = 2560; or a non-finite sum) the sum is taken again in element order.
pub fn rms_mean(x: &[f32]) -> f32 {
    let n = x.len();
    let in_order = || {
        let mut sum = 0f64;
        for &v in x {
            sum += f64::from(v * v);
        }
        (sum / n as f64) as f32
    };
    if n == 0 || n as u64 > 1 << 32 {
        return in_order();
    }
    let mut lanes = [0f64; SUM_LANES];
    let mut chunks = x.chunks_exact(SUM_LANES);
    for c in &mut chunks {
        for (s, &v) in lanes.iter_mut().zip(c) {
            *s += f64::from(v * v);
        }
    }
    for (s, &v) in lanes.iter_mut().zip(chunks.remainder()) {
        *s += f64::from(v * v);
    }
    let d = lanes.iter().sum::<f64>() / n as f64;
    if d == 0.0 {
        // Every square is +0, so the in-order sum is +0 too.
        return 0.0;
    }
    // 4n + 16 is even, so 1 ± ε are exact in f64.
    let eps = (4 * n + 16) as f64 * f64::EPSILON / 2.0;
    let (lo, hi) = (d * (1.0 - eps), d * (1.0 + eps));
    if d.is_finite() && (lo as f32).to_bits() == (hi as f32).to_bits() {
        d as f32
    } else {
        in_order()
    }
}

/// Lanes of [`rms_mean`]'s first sum: four 256-bit vectors of f64, enough independent adds
/// to cover their latency.
const SUM_LANES: usize = 16;

/// [`rms_norm`] of every `w.len()`-wide row of `x` into `normed`, fused with the int8
/// quantization of those rows into `out` (the norm's output pass also takes the absolute
/// max): exactly `rms_norm` then [`quantize_i8_into`], in one pass less, with `out`'s
/// buffers reused. For the projections that read a normed input.
pub fn rms_norm_quantize_i8(
    x: &[f32],
    w: &[f32],
    eps: f32,
    exec: &Exec,
    normed: &mut [f32],
    out: &mut ActsI8,
) -> Result<()> {
    let cols = w.len();
    let tokens = x.len().checked_div(cols).unwrap_or(0);
    let k = check_i8(x, cols, tokens, exec)?;
    check_len("normed [tokens, cols]", normed.len(), x.len())?;
    out.reset(cols, tokens);
    // Two passes over the tokens, each split across the threads for a long prompt (every
    // token computed the same way, so the same bits for any split): the norm with each
    // row's `max|normed|` bits (kept in `sum` meanwhile), then the scales (in token order,
    // so the first non-finite token is the one named), then the quantized rows and sums.
    let work = NORM_QUANT_WEIGHT * x.len();
    out.sum.resize(tokens, 0);
    exec.for_token_rows(normed, cols, &mut out.sum, 1, work, |t0, ng, amax| {
        let xg = &x[t0 * cols..t0 * cols + ng.len()];
        with_rms_scales(xg, ng, cols, eps, |i, xr, nr, scale| {
            amax[i] = (k.norm_absmax)(xr, w, scale, nr) as i32;
        });
    });
    for (t, &bits) in out.sum.iter().enumerate() {
        out.scale.push(int8_scale(t, bits as u32)?);
    }
    let (q, stride, scale) = (&mut out.q, out.stride, &out.scale);
    exec.for_token_rows(q, stride, &mut out.sum, 1, work, |t0, qg, sums| {
        for (i, (qr, s)) in qg.chunks_exact_mut(stride).zip(sums).enumerate() {
            let t = t0 + i;
            *s = (k.quant_i8)(&normed[t * cols..(t + 1) * cols], scale[t], &mut qr[..cols]);
        }
    });
    Ok(())
}

/// Products' worth of one element of [`rms_norm_quantize_i8`] (two float passes and the
/// quantizer's), against the threads' split threshold.
const NORM_QUANT_WEIGHT: usize = 16;

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
