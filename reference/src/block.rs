//! Scalar FP32 reference forward of ONE BitNet b1.58 transformer block, written from
//! `docs/formats.md` ("BitNet b1.58 models as stored in GGUF", "Activations") and the
//! tiny model's README: plain loops, dense weights given as ternary values and one
//! per-tensor scale, no code shared with `bitnet-kernels` or the runner.
//!
//! Per token row of `x` (`[tokens, hidden]`, positions `0..tokens`):
//!
//! ```text
//! h = rmsnorm(x) * attn_norm;  q, k, v = Wq h, Wk h, Wv h
//! q, k = rope_neox(q), rope_neox(k)                 (θ from the config)
//! a = softmax(q k^T / sqrt(head_dim) + causal) v    (GQA: head h uses KV head h / group)
//! x = x + Wo (rmsnorm(a) * attn_sub_norm)           (sub-norm skipped when absent)
//! h = rmsnorm(x) * ffn_norm;  m = act(Wgate h) * (Wup h)
//! x = x + Wdown (rmsnorm(m) * ffn_sub_norm)
//! ```
//!
//! Numerics: RMSNorm sums the f32 squares in f64 (as ggml), rounds the mean to f32,
//! `scale = 1/sqrt(mean+eps)` in f32, `y = (x·scale)·w`. RoPE angles `pos · θ^(−2i/d)` in f64, cos/sin rounded to f32.
//! Projections either in f32 (`y = Σ (t·s)·x`, sequential) or with bitnet.cpp int8
//! activations: `a = (f32)(127 / max(max|x|, 1e-5))`, `q = clamp(round_half_even(x·a),
//! −128, 127)`, `y = ((f32) Σ q·t / a) · s`. Attention, softmax and `p·v` accumulate
//! sequentially in f32.

// Indexed loops spell out the formulas (`y[r] = Σ_c w[r·cols + c]·x[c]`) on purpose.
#![allow(clippy::needless_range_loop)]

/// The FFN gate non-linearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockActivation {
    /// `relu(g)^2` (`bitnet-b1.58`).
    ReluSquared,
    /// `g / (1 + exp(-g))` (`bitnet`).
    Silu,
}

/// How the projections treat their input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectionNumerics {
    /// Exact f32 activations.
    F32,
    /// Per-token int8 absmax activations (bitnet.cpp), epilogue `((f32) dot / a) · s`.
    Int8,
    /// The same int8 activations, summed in llama.cpp's TQ float order (formats.md,
    /// "Activations"): per 256-element block `sumf += (f32) sumi_b · (d_x · s)` with
    /// `d_x = 1 / a` (the int8 values carried in Q8_K blocks, as the runner feeds TQ kernels).
    Int8Blocked,
}

/// Hyper-parameters of one block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockConfig {
    pub hidden: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub ffn: usize,
    pub eps: f32,
    pub rope_theta: f32,
    pub activation: BlockActivation,
}

/// A ternary weight: `values[r * cols + c] ∈ {−1, 0, 1}`, effective weight `value · scale`.
#[derive(Debug, Clone, PartialEq)]
pub struct TernaryWeight {
    pub rows: usize,
    pub cols: usize,
    pub values: Vec<i8>,
    pub scale: f32,
}

/// The tensors of one block.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockWeights {
    pub attn_norm: Vec<f32>,
    pub attn_sub_norm: Option<Vec<f32>>,
    pub ffn_norm: Vec<f32>,
    pub ffn_sub_norm: Option<Vec<f32>>,
    pub wq: TernaryWeight,
    pub wk: TernaryWeight,
    pub wv: TernaryWeight,
    pub wo: TernaryWeight,
    pub wgate: TernaryWeight,
    pub wup: TernaryWeight,
    pub wdown: TernaryWeight,
}

/// Every intermediate of a block forward, each `[tokens, width]` row-major (for error
/// analysis); `out` is the block's output.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BlockTrace {
    /// `rmsnorm(x) * attn_norm`.
    pub h_attn: Vec<f32>,
    /// Queries after RoPE.
    pub q: Vec<f32>,
    /// Keys after RoPE.
    pub k: Vec<f32>,
    /// Values.
    pub v: Vec<f32>,
    /// Attention probabilities `[tokens][n_head][tokens]` (zero above the diagonal).
    pub probs: Vec<f32>,
    /// Attention output (before the sub-norm).
    pub attn: Vec<f32>,
    /// Input of `Wo` (after the sub-norm if any).
    pub attn_in: Vec<f32>,
    /// `Wo` output.
    pub attn_out: Vec<f32>,
    /// Residual after attention.
    pub x_mid: Vec<f32>,
    /// `rmsnorm(x_mid) * ffn_norm`.
    pub h_ffn: Vec<f32>,
    /// `Wgate h`.
    pub gate: Vec<f32>,
    /// `Wup h`.
    pub up: Vec<f32>,
    /// `act(gate) * up`.
    pub m: Vec<f32>,
    /// Input of `Wdown` (after the sub-norm if any).
    pub down_in: Vec<f32>,
    /// `Wdown` output.
    pub down: Vec<f32>,
    /// Block output.
    pub out: Vec<f32>,
}

/// RMSNorm of one row (see the module docs for the exact numerics).
///
/// # Panics
/// If `x` and `w` differ in length.
pub fn rms_norm_ref(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    assert_eq!(x.len(), w.len(), "rms_norm_ref: x and w lengths differ");
    let mut sum = 0f64;
    for &v in x {
        sum += (v * v) as f64;
    }
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0f32 / (mean + eps).sqrt();
    let mut y = vec![0f32; x.len()];
    for i in 0..x.len() {
        y[i] = (x[i] * scale) * w[i];
    }
    y
}

/// bitnet.cpp per-token int8 quantization of one row: `(q, a)` with value `q / a`.
pub fn quantize_row_int8(x: &[f32]) -> (Vec<i32>, f32) {
    let mut amax = 0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
        }
    }
    let a = (127.0f64 / (amax as f64).max(1e-5)) as f32;
    let mut q = vec![0i32; x.len()];
    for i in 0..x.len() {
        let r = (x[i] * a).round_ties_even();
        q[i] = r.clamp(-128.0, 127.0) as i32;
    }
    (q, a)
}

/// `y = W x` for one token row.
///
/// # Panics
/// If `x.len() != w.cols`.
pub fn linear_ref(w: &TernaryWeight, x: &[f32], numerics: ProjectionNumerics) -> Vec<f32> {
    assert_eq!(x.len(), w.cols, "linear_ref: x length != cols");
    let mut y = vec![0f32; w.rows];
    match numerics {
        ProjectionNumerics::F32 => {
            for r in 0..w.rows {
                let mut acc = 0f32;
                for c in 0..w.cols {
                    let wv = w.values[r * w.cols + c] as f32 * w.scale;
                    acc += wv * x[c];
                }
                y[r] = acc;
            }
        }
        ProjectionNumerics::Int8 => {
            let (q, a) = quantize_row_int8(x);
            for r in 0..w.rows {
                let mut dot = 0i64;
                for c in 0..w.cols {
                    dot += w.values[r * w.cols + c] as i64 * q[c] as i64;
                }
                y[r] = (dot as f32 / a) * w.scale;
            }
        }
        ProjectionNumerics::Int8Blocked => {
            assert!(
                w.cols.is_multiple_of(256),
                "Int8Blocked needs cols % 256 == 0"
            );
            let (q, a) = quantize_row_int8(x);
            let d = (1.0f32 / a) * w.scale;
            for r in 0..w.rows {
                let mut sumf = 0f32;
                for b in 0..w.cols / 256 {
                    let mut sumi = 0i32;
                    for c in b * 256..(b + 1) * 256 {
                        sumi += w.values[r * w.cols + c] as i32 * q[c];
                    }
                    sumf += sumi as f32 * d;
                }
                y[r] = sumf;
            }
        }
    }
    y
}

/// Applies [`linear_ref`] to each `cols`-wide row of `x`.
pub fn linear_rows(w: &TernaryWeight, x: &[f32], numerics: ProjectionNumerics) -> Vec<f32> {
    let mut y = Vec::with_capacity(x.len() / w.cols * w.rows);
    for row in x.chunks(w.cols) {
        y.extend(linear_ref(w, row, numerics));
    }
    y
}

/// Applies [`rms_norm_ref`] to each `w.len()`-wide row of `x`.
pub fn norm_rows(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let mut y = Vec::with_capacity(x.len());
    for row in x.chunks(w.len()) {
        y.extend(rms_norm_ref(row, w, eps));
    }
    y
}

/// NEOX RoPE of one head vector at position `pos`, in place.
pub fn rope_neox_ref(head: &mut [f32], pos: usize, theta: f32) {
    let d = head.len();
    let half = d / 2;
    for i in 0..half {
        let angle = pos as f64 * (theta as f64).powf(-2.0 * i as f64 / d as f64);
        let (c, s) = (angle.cos() as f32, angle.sin() as f32);
        let (a, b) = (head[i], head[i + half]);
        head[i] = a * c - b * s;
        head[i + half] = b * c + a * s;
    }
}

/// NEOX RoPE of every head of every token row of `x` (`[tokens, n_heads * head_dim]`),
/// token `t` at position `t`.
pub fn rope_rows(x: &mut [f32], n_heads: usize, head_dim: usize, theta: f32) {
    for (pos, row) in x.chunks_mut(n_heads * head_dim).enumerate() {
        for head in row.chunks_mut(head_dim) {
            rope_neox_ref(head, pos, theta);
        }
    }
}

/// Causal GQA attention of queries `q` (`[tokens, n_head * head_dim]`, token `t` at position
/// `t`) over keys and values `[tokens, n_head_kv * head_dim]`: scores `(q·k) · (1/sqrt(d))`,
/// softmax with max subtraction, weighted sum of values, all sequential f32. Returns the
/// probabilities `[tokens][n_head][tokens]` and the output `[tokens, n_head * head_dim]`.
pub fn attention_ref(cfg: &BlockConfig, q: &[f32], k: &[f32], v: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (nh, nkv, d) = (cfg.n_head, cfg.n_head_kv, cfg.head_dim);
    let (q_dim, kv_dim) = (nh * d, nkv * d);
    let tokens = q.len() / q_dim;
    let scale = (1.0 / (d as f64).sqrt()) as f32;
    let group = nh / nkv;
    let mut probs = vec![0f32; tokens * nh * tokens];
    let mut out = vec![0f32; tokens * q_dim];
    for i in 0..tokens {
        for h in 0..nh {
            let kh = h / group;
            let mut s = vec![0f32; i + 1];
            let mut max = f32::NEG_INFINITY;
            for j in 0..=i {
                let mut dot = 0f32;
                for e in 0..d {
                    dot += q[i * q_dim + h * d + e] * k[j * kv_dim + kh * d + e];
                }
                s[j] = dot * scale;
                if s[j] > max {
                    max = s[j];
                }
            }
            let mut sum = 0f32;
            for sj in s.iter_mut() {
                *sj = (*sj - max).exp();
                sum += *sj;
            }
            for j in 0..=i {
                let p = s[j] / sum;
                probs[(i * nh + h) * tokens + j] = p;
                for e in 0..d {
                    out[i * q_dim + h * d + e] += p * v[j * kv_dim + kh * d + e];
                }
            }
        }
    }
    (probs, out)
}

/// `act(gate) * up` elementwise.
pub fn ffn_activation_ref(act: BlockActivation, gate: &[f32], up: &[f32]) -> Vec<f32> {
    gate.iter()
        .zip(up)
        .map(|(&g, &u)| match act {
            BlockActivation::ReluSquared => {
                let r = if g > 0.0 { g } else { 0.0 };
                r * r * u
            }
            BlockActivation::Silu => g / (1.0 + (-g).exp()) * u,
        })
        .collect()
}

/// One block over `x` (`[tokens, hidden]`) at positions `0..tokens`, returning every
/// intermediate.
///
/// # Panics
/// If `x.len()` is not a multiple of `hidden` or the weight shapes do not match `cfg`.
pub fn block_forward_ref(
    cfg: &BlockConfig,
    w: &BlockWeights,
    x: &[f32],
    numerics: ProjectionNumerics,
) -> BlockTrace {
    let (hd, nh, nkv, d) = (cfg.hidden, cfg.n_head, cfg.n_head_kv, cfg.head_dim);
    assert!(x.len().is_multiple_of(hd), "x is not [tokens, hidden]");
    let (q_dim, kv_dim) = (nh * d, nkv * d);
    for (m, rows, cols) in [
        (&w.wq, q_dim, hd),
        (&w.wk, kv_dim, hd),
        (&w.wv, kv_dim, hd),
        (&w.wo, hd, q_dim),
        (&w.wgate, cfg.ffn, hd),
        (&w.wup, cfg.ffn, hd),
        (&w.wdown, hd, cfg.ffn),
    ] {
        assert!(m.rows == rows && m.cols == cols && m.values.len() == rows * cols);
    }
    let mut t = BlockTrace {
        h_attn: norm_rows(x, &w.attn_norm, cfg.eps),
        ..Default::default()
    };
    // With int8 numerics q, k, v share one quantization of h: quantizing the same row again
    // gives the same integers, so per-projection calls are equivalent.
    t.q = linear_rows(&w.wq, &t.h_attn, numerics);
    t.k = linear_rows(&w.wk, &t.h_attn, numerics);
    t.v = linear_rows(&w.wv, &t.h_attn, numerics);
    rope_rows(&mut t.q, nh, d, cfg.rope_theta);
    rope_rows(&mut t.k, nkv, d, cfg.rope_theta);

    (t.probs, t.attn) = attention_ref(cfg, &t.q, &t.k, &t.v);
    t.attn_in = match &w.attn_sub_norm {
        Some(g) => norm_rows(&t.attn, g, cfg.eps),
        None => t.attn.clone(),
    };
    t.attn_out = linear_rows(&w.wo, &t.attn_in, numerics);
    t.x_mid = x.iter().zip(&t.attn_out).map(|(a, b)| a + b).collect();

    t.h_ffn = norm_rows(&t.x_mid, &w.ffn_norm, cfg.eps);
    t.gate = linear_rows(&w.wgate, &t.h_ffn, numerics);
    t.up = linear_rows(&w.wup, &t.h_ffn, numerics);
    t.m = ffn_activation_ref(cfg.activation, &t.gate, &t.up);
    t.down_in = match &w.ffn_sub_norm {
        Some(g) => norm_rows(&t.m, g, cfg.eps),
        None => t.m.clone(),
    };
    t.down = linear_rows(&w.wdown, &t.down_in, numerics);
    t.out = t.x_mid.iter().zip(&t.down).map(|(a, b)| a + b).collect();
    t
}
