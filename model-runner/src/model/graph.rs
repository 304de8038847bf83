//! The BitNet forward pass: embeddings, blocks (RMSNorm, ternary projections, NEOX RoPE,
//! causal GQA attention over the KV cache, ReLU² or SiLU FFN with sub-norms), output head.
//!
//! Numerics follow the tiny model's reference forward (`models/README.md`) exactly:
//! RMSNorm sums squares in f64; RoPE angles are computed in f64 and rounded to f32;
//! attention, softmax and the element-wise ops are plain sequential f32 loops (the
//! scalar reference block in `bitnet-reference` uses the same order, so the two agree
//! bit for bit wherever the projections do).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bitnet_kernels::act::{ActsI8, quantize_i8_into, rms_norm_quantize_i8};
use bitnet_kernels::dense_i8::DenseI8;
use bitnet_kernels::exec::{DOT_COLS_MAX, ExpF32};
use bitnet_kernels::{Activations, ActsQ8K, BlockQ8K, Exec, Format};

use super::config::{Config, FfnActivation};
use super::error::{ModelError, Result};
use super::kv_cache::{Elements, KV_TILE, KvCache, KvLayer, KvType};
use super::weights::{Projection, Weights};

/// How activations enter the ternary projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Numerics {
    /// bitnet.cpp: per-token int8 absmax activations (quantized once per shared input:
    /// q/k/v share one, gate/up share one), exact integer dot products. The default.
    #[default]
    Bitnet,
    /// Exact f32 activations (`y = Σ w·x`), for checks.
    F32,
}

impl Numerics {
    /// Parses `bitnet` (alias `bitnet.cpp`, `int8`) or `f32`.
    pub fn parse(name: &str) -> Option<Numerics> {
        match name.to_ascii_lowercase().as_str() {
            "bitnet" | "bitnet.cpp" | "int8" | "i8" => Some(Numerics::Bitnet),
            "f32" | "fp32" => Some(Numerics::F32),
            _ => None,
        }
    }

    /// Command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Numerics::Bitnet => "bitnet",
            Numerics::F32 => "f32",
        }
    }
}

/// How the output head computes the logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeadMode {
    /// The stored head (F16 for bitnet.cpp files), converted on the fly: exact, the default.
    #[default]
    Stored,
    /// Opt-in int8 copy with per-row scales ([`DenseI8`]), repacked once when selected:
    /// half the bytes of F16 per token, at the cost of int8 rounding of the logits (and
    /// `rows × cols` bytes of anonymous memory).
    Int8,
}

impl HeadMode {
    /// Parses `f16` (alias `stored`, `exact`) or `int8` (alias `i8`).
    pub fn parse(name: &str) -> Option<HeadMode> {
        match name.to_ascii_lowercase().as_str() {
            "f16" | "stored" | "exact" => Some(HeadMode::Stored),
            "int8" | "i8" => Some(HeadMode::Int8),
            _ => None,
        }
    }

    /// Command-line name.
    pub fn name(self) -> &'static str {
        match self {
            HeadMode::Stored => "f16",
            HeadMode::Int8 => "int8",
        }
    }
}

/// Tokens processed together in one batched pass (prompts longer than this run in chunks).
pub const DEFAULT_UBATCH: usize = 128;

/// Per-sequence state: position, KV cache and every scratch buffer (allocated once).
#[derive(Debug, Clone)]
pub struct State {
    pos: usize,
    ubatch: usize,
    kv: KvCache,
    s: Scratch,
    /// Stage wall times, summed while timing is on ([`State::time_stages`]).
    stages: Option<StageTimes>,
}

/// Wall time of the stages of forward passes, summed over the passes since timing was
/// turned on ([`State::time_stages`]): where a decode step or a prompt goes. Each stage is
/// timed around its calls on the calling thread (which leads the pool), so the times are
/// the pass's own, threads included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimes {
    /// Whole forward passes.
    pub forward: Duration,
    /// The ternary projections (Q/K/V, attention output, gate/up, down), with their
    /// activations' layout for the kernels.
    pub projections: Duration,
    /// Attention over the KV cache (scores, softmax, value sums).
    pub attention: Duration,
    /// The RMSNorms and sub-norms, each fused with the int8 quantization of its output.
    pub norms: Duration,
    /// The final norm and the output head.
    pub head: Duration,
}

impl StageTimes {
    /// What the stages above leave of the passes: embedding, RoPE, storing keys and
    /// values, residual adds, the FFN activation, and the pool's hand-offs between them.
    pub fn rest(&self) -> Duration {
        self.forward
            .saturating_sub(self.projections + self.attention + self.norms + self.head)
    }
}

/// `$e`, its wall time added to field `$field` of `$stages` (an `Option<StageTimes>`) when
/// stage timing is on. A macro rather than a closure, so that `$e` borrows freely.
macro_rules! timed {
    ($stages:expr, $field:ident, $e:expr) => {{
        let t0 = $stages.is_some().then(Instant::now);
        let r = $e;
        if let (Some(t), Some(t0)) = ($stages.as_mut(), t0) {
            t.$field += t0.elapsed();
        }
        r
    }};
}

#[derive(Debug, Clone)]
struct Scratch {
    /// Residual stream `[ubatch, hidden]`.
    x: Vec<f32>,
    /// Normalized input of a projection group `[ubatch, max(hidden, q_dim)]`.
    h: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// Attention output `[ubatch, q_dim]`.
    att: Vec<f32>,
    /// Projection output added to the residual `[ubatch, hidden]`.
    proj: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    /// RoPE tables `[ubatch, head_dim / 2]`.
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// What `cos`/`sin` hold: `(pos0, tokens, head_dim, θ bits)`; every layer of a forward
    /// pass uses the same tables, so they are computed once, not once per layer.
    rope_for: Option<(usize, usize, usize, u32)>,
    /// Attention scratch per thread `[threads][attention_scratch(..)]`: the scores of a
    /// group of query heads.
    scores: Vec<f32>,
    /// Final-normed last position `[hidden]`.
    last: Vec<f32>,
    /// Quantized input of the current projection group (buffers reused across calls).
    acts: ActsI8,
    /// The same values as Q8_K blocks, for TQ1_0/TQ2_0 projections.
    acts_q8k: ActsQ8K,
}

impl State {
    /// Tokens processed so far (the next token's position).
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Most positions this state holds.
    pub fn capacity(&self) -> usize {
        self.kv.capacity()
    }

    /// Forgets everything (the cache is overwritten as tokens come in).
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    /// Turns stage timing on (from zero) or off; see [`StageTimes`]. Off by default: it
    /// reads the clock twice per timed stage, about 550 times per decoded token of the
    /// 2B-4T shape (~10 µs through the vDSO).
    pub fn time_stages(&mut self, on: bool) {
        self.stages = on.then(StageTimes::default);
    }

    /// The stage times summed since [`State::time_stages`] turned timing on.
    pub fn stage_times(&self) -> Option<StageTimes> {
        self.stages
    }

    /// Keeps only the first `pos` positions (e.g. a shared chat prefix).
    pub fn truncate(&mut self, pos: usize) {
        self.pos = self.pos.min(pos);
    }

    /// The KV cache.
    pub fn kv_cache(&self) -> &KvCache {
        &self.kv
    }

    /// Bytes held by the cache and scratch buffers.
    pub fn bytes(&self) -> usize {
        let s = &self.s;
        let n = [
            &s.x, &s.h, &s.q, &s.k, &s.v, &s.att, &s.proj, &s.gate, &s.up, &s.cos, &s.sin,
            &s.scores, &s.last,
        ]
        .iter()
        .map(|b| b.len())
        .sum::<usize>();
        self.kv.bytes() + n * 4
    }
}

/// Every intermediate of one block, `[tokens, width]` row-major (filled by
/// [`Model::forward_block_probed`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlockProbe {
    /// Block input.
    pub x: Vec<f32>,
    /// `rmsnorm(x) * attn_norm`.
    pub h_attn: Vec<f32>,
    /// Queries after RoPE.
    pub q: Vec<f32>,
    /// Keys after RoPE.
    pub k: Vec<f32>,
    /// Values.
    pub v: Vec<f32>,
    /// Attention output (before the sub-norm).
    pub attn: Vec<f32>,
    /// Input of `attn_output` (after the sub-norm, if any).
    pub attn_in: Vec<f32>,
    /// `attn_output` result.
    pub attn_out: Vec<f32>,
    /// Residual after attention.
    pub x_mid: Vec<f32>,
    /// `rmsnorm(x_mid) * ffn_norm`.
    pub h_ffn: Vec<f32>,
    /// `ffn_gate` result.
    pub gate: Vec<f32>,
    /// `ffn_up` result.
    pub up: Vec<f32>,
    /// `act(gate) * up`.
    pub m: Vec<f32>,
    /// Input of `ffn_down` (after the sub-norm, if any).
    pub down_in: Vec<f32>,
    /// `ffn_down` result.
    pub down: Vec<f32>,
    /// Block output.
    pub out: Vec<f32>,
}

/// A loaded model: validated hyper-parameters, borrowed weights, execution settings.
#[derive(Debug, Clone)]
pub struct Model<'a> {
    /// Hyper-parameters.
    pub config: Config,
    /// The tensors, borrowed from the file.
    pub weights: Weights<'a>,
    exec: Exec,
    numerics: Numerics,
    /// The int8 head when [`HeadMode::Int8`] is selected (shared by clones).
    head_i8: Option<Arc<DenseI8>>,
    /// Element type of the KV cache of new states.
    kv_type: KvType,
}

impl<'a> Model<'a> {
    /// Builds a model from a parsed header and the bytes it was parsed from.
    pub fn from_gguf(gguf: &'a crate::gguf::Gguf, bytes: &'a [u8]) -> Result<Model<'a>> {
        let config = Config::from_gguf(gguf)?;
        let weights = Weights::from_gguf(gguf, bytes, &config)?;
        Ok(Model {
            config,
            weights,
            exec: Exec::auto(),
            numerics: Numerics::default(),
            head_i8: None,
            kv_type: KvType::default(),
        })
    }

    /// Builds a model over a memory-mapped file.
    pub fn load(file: &'a crate::gguf::GgufFile) -> Result<Model<'a>> {
        Self::from_gguf(file.gguf(), file.bytes())
    }

    /// Execution settings (ISA, threads) of every kernel call.
    pub fn exec(&self) -> Exec {
        self.exec
    }

    /// Sets the ISA and thread count.
    pub fn set_exec(&mut self, exec: Exec) {
        self.exec = exec;
    }

    /// The activation numerics of the ternary projections.
    pub fn numerics(&self) -> Numerics {
        self.numerics
    }

    /// Sets the activation numerics.
    pub fn set_numerics(&mut self, numerics: Numerics) {
        self.numerics = numerics;
    }

    /// Element type of the KV cache that [`new_state`](Self::new_state) allocates.
    pub fn kv_type(&self) -> KvType {
        self.kv_type
    }

    /// Sets the KV cache type of states created from now on.
    pub fn set_kv_type(&mut self, ty: KvType) {
        self.kv_type = ty;
    }

    /// The output head in use.
    pub fn head_mode(&self) -> HeadMode {
        if self.head_i8.is_some() {
            HeadMode::Int8
        } else {
            HeadMode::Stored
        }
    }

    /// Selects the output head; [`HeadMode::Int8`] repacks the stored head now (once; about
    /// a second for a 128k × 2560 F16 head) unless it already is in use.
    pub fn set_head_mode(&mut self, mode: HeadMode) -> Result<()> {
        match mode {
            HeadMode::Stored => self.head_i8 = None,
            HeadMode::Int8 if self.head_i8.is_some() => {}
            HeadMode::Int8 => {
                let h = DenseI8::from_dense(self.weights.head(), &self.exec).map_err(|source| {
                    ModelError::Compute {
                        layer: self.config.n_layer,
                        op: "int8 head repack",
                        source,
                    }
                })?;
                self.head_i8 = Some(Arc::new(h));
            }
        }
        Ok(())
    }

    /// Bytes the output head reads per token.
    pub fn head_bytes(&self) -> usize {
        match &self.head_i8 {
            Some(h) => h.bytes(),
            None => {
                let h = self.weights.head();
                h.rows() * h.cols() * h.dtype().size()
            }
        }
    }

    /// A state for up to `capacity` positions (at most the context length), with every
    /// buffer allocated now.
    pub fn new_state(&self, capacity: usize) -> Result<State> {
        let c = &self.config;
        if capacity == 0 || capacity > c.context_length {
            return Err(ModelError::ContextOverflow {
                what: "a state",
                tokens: capacity,
                pos: 0,
                capacity: c.context_length,
                context_length: c.context_length,
            });
        }
        let ub = DEFAULT_UBATCH.min(capacity);
        let (q, kv) = (c.q_dim(), c.kv_dim());
        let half = c.head_dim / 2;
        Ok(State {
            pos: 0,
            stages: None,
            ubatch: ub,
            kv: KvCache::new(c.n_layer, capacity, kv, c.head_dim, self.kv_type),
            s: Scratch {
                x: vec![0.0; ub * c.hidden],
                h: vec![0.0; ub * c.hidden.max(q)],
                q: vec![0.0; ub * q],
                k: vec![0.0; ub * kv],
                v: vec![0.0; ub * kv],
                att: vec![0.0; ub * q],
                proj: vec![0.0; ub * c.hidden],
                gate: vec![0.0; ub * c.ffn],
                up: vec![0.0; ub * c.ffn],
                cos: vec![0.0; ub * half],
                sin: vec![0.0; ub * half],
                rope_for: None,
                // One attention scratch per thread.
                scores: vec![
                    0.0;
                    attention_scratch(capacity)
                        * bitnet_kernels::exec::default_threads().max(self.exec.threads())
                ],
                last: vec![0.0; c.hidden],
                acts: ActsI8::empty(),
                acts_q8k: empty_q8k(),
            },
        })
    }

    /// Runs `tokens` at positions `state.pos()..`, appending to the KV cache, and writes the
    /// logits of the last token into `logits` (`vocab_size` long) when given. Prompts are
    /// processed as batched GEMMs in chunks of up to [`DEFAULT_UBATCH`] tokens.
    pub fn forward(
        &self,
        state: &mut State,
        tokens: &[u32],
        logits: Option<&mut [f32]>,
    ) -> Result<()> {
        let c = &self.config;
        if tokens.is_empty() {
            return Err(ModelError::NoTokens);
        }
        if state.pos + tokens.len() > state.capacity() {
            return Err(ModelError::ContextOverflow {
                what: "input",
                tokens: tokens.len(),
                pos: state.pos,
                capacity: state.capacity(),
                context_length: c.context_length,
            });
        }
        if let Some(&id) = tokens.iter().find(|&&id| id as usize >= c.vocab_size) {
            return Err(ModelError::TokenOutOfRange {
                id,
                vocab_size: c.vocab_size,
            });
        }
        if let Some(l) = &logits
            && l.len() != c.vocab_size
        {
            return Err(ModelError::Compute {
                layer: c.n_layer,
                op: "logits buffer",
                source: bitnet_kernels::KernelError::SliceLength {
                    what: "logits",
                    got: l.len(),
                    expected: c.vocab_size,
                },
            });
        }
        let started = state.stages.is_some().then(Instant::now);
        let mut x = std::mem::take(&mut state.s.x);
        let result = (|| -> Result<()> {
            for chunk in tokens.chunks(state.ubatch) {
                let xs = &mut x[..chunk.len() * c.hidden];
                self.embed(chunk, xs)?;
                for layer in 0..c.n_layer {
                    self.forward_block(layer, state, xs, state.pos)?;
                }
                state.pos += chunk.len();
            }
            Ok(())
        })();
        state.s.x = x;
        result?;
        if let Some(logits) = logits {
            // Tokens in the last chunk; its last row is the last token's hidden state.
            let n = (tokens.len() - 1) % state.ubatch + 1;
            let h = c.hidden;
            let (xs, last) = (&state.s.x, &mut state.s.last);
            timed!(state.stages, head, {
                rms_norm(
                    &xs[(n - 1) * h..n * h],
                    &self.weights.output_norm,
                    c.rms_eps,
                    last,
                );
                match &self.head_i8 {
                    Some(h) => h.gemv(last, logits, &self.exec),
                    None => self.weights.head().gemm(last, 1, logits, &self.exec),
                }
            })
            .map_err(|source| ModelError::Compute {
                layer: c.n_layer,
                op: "output head",
                source,
            })?;
        }
        if let (Some(t), Some(started)) = (state.stages.as_mut(), started) {
            t.forward += started.elapsed();
        }
        Ok(())
    }

    /// Embedding rows of `tokens` into `out` (`[tokens, hidden]`).
    pub fn embed(&self, tokens: &[u32], out: &mut [f32]) -> Result<()> {
        let h = self.config.hidden;
        for (&id, row) in tokens.iter().zip(out.chunks_exact_mut(h)) {
            self.weights
                .token_embd
                .row_to_f32(id as usize, row)
                .map_err(|_| ModelError::TokenOutOfRange {
                    id,
                    vocab_size: self.config.vocab_size,
                })?;
        }
        Ok(())
    }

    /// One transformer block over `x` (`[tokens, hidden]`, updated in place) at positions
    /// `pos0..pos0 + tokens`: writes those positions' keys and values into layer `layer` of
    /// the state's cache and attends causally over positions `0..=pos`. Does not move
    /// `state.pos()`; `tokens` must be at most the state's batch size.
    pub fn forward_block(
        &self,
        layer: usize,
        state: &mut State,
        x: &mut [f32],
        pos0: usize,
    ) -> Result<()> {
        self.block(layer, state, x, pos0, None)
    }

    /// [`Self::forward_block`], recording every intermediate into `probe` (for checks
    /// against a reference, stage by stage).
    pub fn forward_block_probed(
        &self,
        layer: usize,
        state: &mut State,
        x: &mut [f32],
        pos0: usize,
        probe: &mut BlockProbe,
    ) -> Result<()> {
        self.block(layer, state, x, pos0, Some(probe))
    }

    fn block(
        &self,
        layer: usize,
        state: &mut State,
        x: &mut [f32],
        pos0: usize,
        mut probe: Option<&mut BlockProbe>,
    ) -> Result<()> {
        let mut rec = |field: fn(&mut BlockProbe) -> &mut Vec<f32>, v: &[f32]| {
            if let Some(p) = probe.as_deref_mut() {
                let f = field(p);
                f.clear();
                f.extend_from_slice(v);
            }
        };
        let c = &self.config;
        let hd = c.hidden;
        let tokens = x.len() / hd;
        let bad = |what: &'static str, got: usize, expected: usize| ModelError::Compute {
            layer,
            op: "forward_block arguments",
            source: bitnet_kernels::KernelError::SliceLength {
                what,
                got,
                expected,
            },
        };
        if layer >= c.n_layer {
            return Err(bad("layer", layer, c.n_layer));
        }
        if tokens == 0 || x.len() != tokens * hd || tokens > state.ubatch {
            return Err(bad(
                "x [tokens <= ubatch, hidden]",
                x.len(),
                state.ubatch * hd,
            ));
        }
        if pos0 + tokens > state.capacity() {
            return Err(ModelError::ContextOverflow {
                what: "block input",
                tokens,
                pos: pos0,
                capacity: state.capacity(),
                context_length: c.context_length,
            });
        }
        let w = &self.weights.layers[layer];
        let (q_dim, kv_dim, ffn) = (c.q_dim(), c.kv_dim(), c.ffn);
        let State { kv, s, stages, .. } = state;
        let h = &mut s.h[..tokens * hd];
        let q = &mut s.q[..tokens * q_dim];
        let k = &mut s.k[..tokens * kv_dim];
        let v = &mut s.v[..tokens * kv_dim];

        // Attention.
        rec(|p| &mut p.x, x);
        let op = "attn_q/k/v";
        let h = self
            .prepare(x, tokens, Some(&w.attn_norm), h, &mut s.acts, stages)
            .map_err(|source| ModelError::Compute { layer, op, source })?;
        rec(|p| &mut p.h_attn, h);
        self.project(
            layer,
            op,
            h,
            (&mut s.acts, &mut s.acts_q8k),
            &mut [(&w.wq, &mut *q), (&w.wk, &mut *k), (&w.wv, &mut *v)],
            stages,
        )?;
        let half = c.head_dim / 2;
        let rope_for = Some((pos0, tokens, c.head_dim, c.rope_theta.to_bits()));
        if s.rope_for != rope_for {
            rope_tables(
                pos0,
                tokens,
                c.head_dim,
                c.rope_theta,
                &mut s.cos[..tokens * half],
                &mut s.sin[..tokens * half],
            );
            s.rope_for = rope_for;
        }
        let (cos, sin) = (&s.cos[..tokens * half], &s.sin[..tokens * half]);
        let ex = &self.exec;
        ex.for_paired_items(q, q_dim, k, kv_dim, elementwise(q.len()), |t0, q, k| {
            let (cos, sin) = (&cos[t0 * half..], &sin[t0 * half..]);
            rope_neox(q, c.n_head, c.head_dim, cos, sin);
            rope_neox(k, c.n_head_kv, c.head_dim, cos, sin);
        });
        rec(|p| &mut p.q, q);
        rec(|p| &mut p.k, k);
        rec(|p| &mut p.v, v);
        let mut cache = kv.layer_mut(layer);
        cache.store(pos0, k, v);
        let att = &mut s.att[..tokens * q_dim];
        timed!(
            stages,
            attention,
            attention(
                c,
                q,
                &cache,
                pos0,
                tokens,
                &mut s.scores,
                att,
                &self.exec,
                w.wo.w.bytes()
            )
        )
        .map_err(|source| ModelError::Compute {
            layer,
            op: "attention",
            source,
        })?;
        rec(|p| &mut p.attn, att);
        let op = "attn_output";
        let hs = &mut s.h[..tokens * q_dim];
        let a_in = self
            .prepare(
                att,
                tokens,
                w.attn_sub_norm.as_deref(),
                hs,
                &mut s.acts,
                stages,
            )
            .map_err(|source| ModelError::Compute { layer, op, source })?;
        rec(|p| &mut p.attn_in, a_in);
        let proj = &mut s.proj[..tokens * hd];
        self.project(
            layer,
            op,
            a_in,
            (&mut s.acts, &mut s.acts_q8k),
            &mut [(&w.wo, &mut *proj)],
            stages,
        )?;
        rec(|p| &mut p.attn_out, proj);
        add(x, proj, hd, &self.exec);
        rec(|p| &mut p.x_mid, x);

        // Feed-forward.
        let op = "ffn_gate/up";
        let h = &mut s.h[..tokens * hd];
        let h = self
            .prepare(x, tokens, Some(&w.ffn_norm), h, &mut s.acts, stages)
            .map_err(|source| ModelError::Compute { layer, op, source })?;
        rec(|p| &mut p.h_ffn, h);
        let gate = &mut s.gate[..tokens * ffn];
        let up = &mut s.up[..tokens * ffn];
        self.project(
            layer,
            op,
            h,
            (&mut s.acts, &mut s.acts_q8k),
            &mut [(&w.wgate, &mut *gate), (&w.wup, &mut *up)],
            stages,
        )?;
        rec(|p| &mut p.gate, gate);
        rec(|p| &mut p.up, up);
        let act = c.arch.ffn_activation();
        let work = elementwise(gate.len());
        self.exec
            .for_paired_items(gate, ffn, up, ffn, work, |_, g, u| {
                ffn_activation(act, g, u)
            });
        rec(|p| &mut p.m, gate);
        let op = "ffn_down";
        let m = self
            .prepare(
                gate,
                tokens,
                w.ffn_sub_norm.as_deref(),
                up,
                &mut s.acts,
                stages,
            )
            .map_err(|source| ModelError::Compute { layer, op, source })?;
        rec(|p| &mut p.down_in, m);
        self.project(
            layer,
            op,
            m,
            (&mut s.acts, &mut s.acts_q8k),
            &mut [(&w.wdown, &mut *proj)],
            stages,
        )?;
        rec(|p| &mut p.down, proj);
        add(x, proj, hd, &self.exec);
        rec(|p| &mut p.out, x);
        Ok(())
    }

    /// The input of a projection group: `x` (`[tokens, cols]`), RMS-normed with `norm` into
    /// `normed` when given. Under [`Numerics::Bitnet`] it is also quantized once into
    /// `acts` for every projection of the group, fused with the norm's output pass.
    fn prepare<'b>(
        &self,
        x: &'b [f32],
        tokens: usize,
        norm: Option<&[f32]>,
        normed: &'b mut [f32],
        acts: &mut ActsI8,
        stages: &mut Option<StageTimes>,
    ) -> bitnet_kernels::Result<&'b [f32]> {
        // Timed as one stage; an error returns untimed.
        timed!(stages, norms, {
            let eps = self.config.rms_eps;
            let normed = &mut normed[..x.len()];
            match (norm, self.numerics) {
                (Some(w), Numerics::Bitnet) => {
                    rms_norm_quantize_i8(x, w, eps, &self.exec, normed, acts)?;
                    Ok(&*normed)
                }
                (Some(w), Numerics::F32) => {
                    rms_norm_rows(x, w, eps, normed);
                    Ok(&*normed)
                }
                (None, Numerics::Bitnet) => {
                    let cols = x.len() / tokens.max(1);
                    quantize_i8_into(x, cols, tokens, &self.exec, acts)?;
                    Ok(x)
                }
                (None, Numerics::F32) => Ok(x),
            }
        })
    }

    /// Runs each projection on the group's input: `x` (`[tokens, cols]`) under
    /// [`Numerics::F32`]; under [`Numerics::Bitnet`] its int8 quantization `acts.0` (made by
    /// [`Self::prepare`]), carried in Q8_K blocks (`acts.1`) for the TQ formats.
    fn project(
        &self,
        layer: usize,
        op: &'static str,
        x: &[f32],
        acts: (&mut ActsI8, &mut ActsQ8K),
        outs: &mut [(&Projection<'_>, &mut [f32])],
        stages: &mut Option<StageTimes>,
    ) -> Result<()> {
        // Timed as one stage; an error returns untimed.
        timed!(stages, projections, {
            let err = |source| ModelError::Compute { layer, op, source };
            match self.numerics {
                Numerics::F32 => {
                    let tokens = x.len() / outs.first().map_or(1, |(p, _)| p.cols()).max(1);
                    for (p, y) in outs.iter_mut() {
                        p.w.matrix()
                            .gemm_f32(x, tokens, y, &self.exec)
                            .map_err(err)?;
                    }
                }
                Numerics::Bitnet => {
                    // Lend the reused buffers to the kernels' `Activations` for the group.
                    let (a8, aq) = acts;
                    let int8 = Activations::I8(std::mem::replace(a8, ActsI8::empty()));
                    let mut q8k: Option<Activations> = None;
                    let mut result = Ok(());
                    for (p, y) in outs.iter_mut() {
                        let a = match (ActFamily::of(p.w.format()), &int8) {
                            (ActFamily::Q8K, Activations::I8(i8)) => {
                                &*q8k.get_or_insert_with(|| {
                                    let mut b = std::mem::replace(aq, empty_q8k());
                                    int8_as_q8k(i8, &mut b);
                                    Activations::Q8K(b)
                                })
                            }
                            _ => &int8,
                        };
                        result = p.w.matrix().gemm_quantized(a, y, &self.exec);
                        if result.is_err() {
                            break;
                        }
                    }
                    if let Activations::I8(a) = int8 {
                        *a8 = a;
                    }
                    if let Some(Activations::Q8K(b)) = q8k {
                        *aq = b;
                    }
                    result.map_err(err)?;
                }
            }
            for (p, y) in outs.iter_mut() {
                if let Some(s) = p.out_scale {
                    y.iter_mut().for_each(|v| *v *= s);
                }
            }
            Ok(())
        })
    }

    /// Greedy generation of `n` tokens after `prompt` (argmax, lowest id on ties; EOS is
    /// not a stop token). `recompute`: run the whole sequence from scratch at every step
    /// instead of extending the KV cache.
    pub fn generate_greedy(&self, prompt: &[u32], n: usize, recompute: bool) -> Result<Vec<u32>> {
        let mut logits = vec![0f32; self.config.vocab_size];
        let mut state = self.new_state(prompt.len() + n.max(1))?;
        let mut seq = prompt.to_vec();
        self.forward(&mut state, prompt, Some(&mut logits))?;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let next = argmax(&logits);
            out.push(next);
            seq.push(next);
            if i + 1 == n {
                break;
            }
            if recompute {
                state.reset();
                self.forward(&mut state, &seq, Some(&mut logits))?;
            } else {
                self.forward(&mut state, &[next], Some(&mut logits))?;
            }
        }
        Ok(out)
    }
}

/// Index of the largest logit; the lowest index on ties; NaNs never win.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_v {
            best = i;
            best_v = v;
        }
    }
    best as u32
}

/// Activation layouts the kernels consume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ActFamily {
    /// bitnet.cpp per-token int8 (I2_S, QK256).
    I8,
    /// Q8_K blocks (TQ2_0, TQ1_0).
    Q8K,
}

impl ActFamily {
    fn of(f: Format) -> ActFamily {
        match f {
            Format::I2s | Format::Qk256 => ActFamily::I8,
            Format::Tq2_0 | Format::Tq1_0 => ActFamily::Q8K,
        }
    }
}

/// No Q8_K blocks yet (buffers grow on first use).
fn empty_q8k() -> ActsQ8K {
    ActsQ8K {
        cols: 0,
        tokens: 0,
        blocks: Vec::new(),
    }
}

/// bitnet.cpp's per-token int8 values carried in Q8_K blocks, for the TQ formats: each
/// block's scale is the token's `1 / s`, so those kernels compute
/// `Σ_blocks sumi_b · (d_x · d_w)` over exactly the same integers (llama.cpp's own Q8_K
/// rounding is not used). Reuses `out`'s buffer.
fn int8_as_q8k(a: &ActsI8, out: &mut ActsQ8K) {
    let nb = a.cols / 256;
    out.cols = a.cols;
    out.tokens = a.tokens;
    out.blocks.clear();
    for t in 0..a.tokens {
        let d = 1.0 / a.scale[t];
        let row = &a.q[t * a.stride..t * a.stride + nb * 256];
        for qb in row.chunks_exact(256) {
            let mut b = BlockQ8K {
                d,
                qs: [0; 256],
                bsums: [0; 16],
            };
            b.qs.copy_from_slice(qb);
            for (s, c) in b.bsums.iter_mut().zip(qb.chunks_exact(16)) {
                *s = c.iter().map(|&q| i16::from(q)).sum();
            }
            out.blocks.push(b);
        }
    }
}

pub use bitnet_kernels::act::{rms_norm, rms_norm_rows};

/// NEOX RoPE tables for positions `pos0..pos0 + tokens`: for `i < head_dim / 2`,
/// `angle = pos · θ^(-2i / head_dim)` in f64, cos and sin rounded to f32.
pub fn rope_tables(
    pos0: usize,
    tokens: usize,
    head_dim: usize,
    theta: f32,
    cos: &mut [f32],
    sin: &mut [f32],
) {
    let half = head_dim / 2;
    for t in 0..tokens {
        let pos = (pos0 + t) as f64;
        for i in 0..half {
            let freq = f64::from(theta).powf(-2.0 * i as f64 / head_dim as f64);
            let angle = pos * freq;
            cos[t * half + i] = angle.cos() as f32;
            sin[t * half + i] = angle.sin() as f32;
        }
    }
}

/// Rotates pairs `(i, i + head_dim/2)` of every head of every token:
/// `(a, b) -> (a cos − b sin, b cos + a sin)`.
fn rope_neox(x: &mut [f32], n_heads: usize, head_dim: usize, cos: &[f32], sin: &[f32]) {
    let half = head_dim / 2;
    for (t, row) in x.chunks_exact_mut(n_heads * head_dim).enumerate() {
        let (c, s) = (
            &cos[t * half..(t + 1) * half],
            &sin[t * half..(t + 1) * half],
        );
        for head in row.chunks_exact_mut(head_dim) {
            let (lo, hi) = head.split_at_mut(half);
            for i in 0..half {
                let (a, b) = (lo[i], hi[i]);
                lo[i] = a * c[i] - b * s[i];
                hi[i] = b * c[i] + a * s[i];
            }
        }
    }
}

/// One f32 multiply-add of attention (separate multiply and add, plus the softmax and value
/// sum around it) costs about as much as this many int8 products of the VNNI kernels, for
/// which the pool's split threshold was measured. Decode attention over a 160-token context
/// (0.8M multiply-adds per layer) is then split across threads.
const F32_MAC_WEIGHT: usize = 8;

/// Causal GQA attention of `tokens` queries at positions `pos0..` over the cached keys and
/// values (`cache` already holds positions up to `pos0 + tokens`): `softmax(q·k /
/// sqrt(head_dim))` with max subtraction, then the weighted sum of values. Query head `h`
/// uses KV head `h / (n_head / n_head_kv)`.
///
/// Each score is `0 + q[0]·k[0] + q[1]·k[1] + …` summed over `d` in order (unfused, as the
/// reference); the loop runs `d` outermost over the transposed keys, so the positions form
/// contiguous vector lanes without changing any score's summation order.
///
/// `then`: bytes the caller reads next (the output projection's weights). In a decode step
/// (one token) each participant prefetches the share of them that matches its share of the
/// heads, a run of heads' part before the run: the same contiguous split the projection's
/// rows get, so each thread's rows are in its caches when the projection starts, fetched
/// while attention computes instead of after it. Only cache traffic depends on it.
#[allow(clippy::too_many_arguments)]
fn attention(
    c: &Config,
    q: &[f32],
    cache: &KvLayer<'_>,
    pos0: usize,
    tokens: usize,
    scores: &mut [f32],
    out: &mut [f32],
    exec: &Exec,
    then: &[u8],
) -> bitnet_kernels::Result<()> {
    // The sums run through the ISA's unfused `dot_cols`, which gives the reference's bits:
    // one call per run of a token's query heads that share a key/value head, reading that
    // head's keys (and then its values) once for all of them, in place in the cache's type
    // (an f16 cache's halves widened as they are read, exactly).
    let (cols_f32, cols_f16) = (exec.dot_cols_f32()?, exec.dot_cols_f16()?);
    let exp = exec.exp_f32()?;
    let dot_cols =
        |xs: &[&[f32]], (m, stride): (Elements<'_>, usize), outs: &mut [&mut [f32]]| match m {
            Elements::F32(m) => cols_f32(xs, m, stride, outs),
            Elements::F16(m) => cols_f16(xs, m, stride, outs),
        };
    let (hd, q_dim, group) = (c.head_dim, c.q_dim(), c.gqa_group());
    let cap = cache.capacity();
    let scale = (1.0 / (hd as f64).sqrt()) as f32;
    // Items are (token, head) output slices; threads take contiguous runs of them.
    let scratch = attention_scratch(cap);
    // A causal token's work grows with its position: over a whole prompt the second half
    // of the items would carry about three times the first. Blocks of ATTENTION_TOKENS
    // tokens, each split across the threads, keep the halves within a few percent (every
    // item is computed the same way whatever the blocks).
    let blocks = q[..tokens * q_dim]
        .chunks(ATTENTION_TOKENS * q_dim)
        .zip(out[..tokens * q_dim].chunks_mut(ATTENTION_TOKENS * q_dim));
    for (b, (q, out)) in blocks.enumerate() {
        let (pos0, tokens) = (pos0 + b * ATTENTION_TOKENS, out.len() / q_dim);
        // Multiply-adds: every query head scores and sums over its causal prefix; weighted
        // as `F32_MAC_WEIGHT` int8 products each, the unit of the pool's split threshold.
        let work = F32_MAC_WEIGHT * 2 * hd * c.n_head * (tokens * pos0 + tokens * (tokens + 1) / 2);
        exec.for_item_groups(out, hd, scores, scratch, work, |first, outs, buf| {
            let sc_rows = buf;
            let items = outs.len() / hd;
            let mut i = 0;
            while i < items {
                // A run of up to DOT_COLS_MAX heads of one token that share a key/value head.
                let (t, head) = ((first + i) / c.n_head, (first + i) % c.n_head);
                let kv_head = head / group;
                let k = (1..DOT_COLS_MAX.min(items - i))
                    .take_while(|&j| {
                        let h = head + j;
                        h < c.n_head && h / group == kv_head
                    })
                    .count()
                    + 1;
                let n_ctx = pos0 + t + 1;
                if tokens == 1 {
                    let (n, a, b) = (then.len(), first + i, first + i + k);
                    bitnet_kernels::prefetch_l2(&then[n * a / c.n_head..n * b / c.n_head]);
                }
                let qs = &q[t * q_dim + head * hd..][..k * hd];
                let os = &mut outs[i * hd..(i + k) * hd];
                let mut scs = up_to_group(sc_rows.chunks_exact_mut(cap).map(|s| &mut s[..n_ctx]));
                let scs = &mut scs[..k];
                // Scores, one key tile (KV_TILE positions) at a time.
                let qhs = up_to_group(qs.chunks_exact(hd));
                for tile in 0..n_ctx.div_ceil(KV_TILE) {
                    let cols = tile * KV_TILE..(tile * KV_TILE + KV_TILE).min(n_ctx);
                    let mut o = up_to_group(scs.iter_mut().map(|s| &mut s[cols.clone()]));
                    dot_cols(&qhs[..k], cache.key_tile(kv_head, tile), &mut o[..k]);
                }
                for sc in scs.iter_mut() {
                    softmax_scaled(sc, scale, exp);
                }
                // Weighted sums, one value slab (KV_TILE dimensions) at a time.
                let ps = up_to_group(scs.iter().map(|s| &s[..]));
                for slab in 0..hd.div_ceil(KV_TILE) {
                    let dims = slab * KV_TILE..(slab * KV_TILE + KV_TILE).min(hd);
                    let v = cache.value_slab(kv_head, slab, n_ctx);
                    let mut o = up_to_group(os.chunks_exact_mut(hd).map(|o| &mut o[dims.clone()]));
                    dot_cols(&ps[..k], v, &mut o[..k]);
                }
                i += k;
            }
        });
    }
    Ok(())
}

/// The first `DOT_COLS_MAX` items of `it` (empty slices after its end), as the array of
/// per-head slices a `dot_cols` call takes a prefix of.
fn up_to_group<T: Default>(mut it: impl Iterator<Item = T>) -> [T; DOT_COLS_MAX] {
    std::array::from_fn(|_| it.next().unwrap_or_default())
}

/// [`attention`]'s scratch per thread, in f32: the scores of `DOT_COLS_MAX` heads
/// (`capacity` each).
fn attention_scratch(capacity: usize) -> usize {
    DOT_COLS_MAX * capacity
}

/// `s <- softmax(s · scale)` with the reference's bits: scale and max, then `exp(s - max)`
/// (through the ISA's `exp`, which has `f32::exp`'s bits), its sum in index order, then the
/// division.
///
/// The max runs in [`SOFTMAX_LANES`] lanes (vectorizable; a max ignores NaN and is the same
/// value in any order, up to the sign of a zero, which `s - max` then absorbs: `exp(±0)` is
/// 1 either way), and the exponentials are taken before the sum, so that they do not hold the
/// sum's dependency chain.
fn softmax_scaled(s: &mut [f32], scale: f32, exp: ExpF32) {
    let mut lanes = [f32::NEG_INFINITY; SOFTMAX_LANES];
    let mut chunks = s.chunks_exact_mut(SOFTMAX_LANES);
    for c in &mut chunks {
        for (m, v) in lanes.iter_mut().zip(c) {
            *v *= scale;
            *m = m.max(*v);
        }
    }
    for (m, v) in lanes.iter_mut().zip(chunks.into_remainder()) {
        *v *= scale;
        *m = m.max(*v);
    }
    let max = lanes.into_iter().fold(f32::NEG_INFINITY, f32::max);
    for v in s.iter_mut() {
        *v -= max;
    }
    exp(s);
    let sum = s.iter().fold(0f32, |acc, &v| acc + v);
    for v in s.iter_mut() {
        *v /= sum;
    }
}

/// Lanes of [`softmax_scaled`]'s max.
const SOFTMAX_LANES: usize = 16;

/// Tokens per block of [`attention`]'s split across threads.
const ATTENTION_TOKENS: usize = 16;

/// `gate <- act(gate) * up`.
fn ffn_activation(act: FfnActivation, gate: &mut [f32], up: &[f32]) {
    match act {
        FfnActivation::ReluSquared => {
            for (g, &u) in gate.iter_mut().zip(up) {
                let r = g.max(0.0);
                *g = r * r * u;
            }
        }
        FfnActivation::Silu => {
            for (g, &u) in gate.iter_mut().zip(up) {
                *g = *g / (1.0 + (-*g).exp()) * u;
            }
        }
    }
}

/// `x += y` over token rows of `width`, split across threads for a prompt.
fn add(x: &mut [f32], y: &mut [f32], width: usize, exec: &Exec) {
    exec.for_paired_items(x, width, y, width, elementwise(x.len()), |_, x, y| {
        for (a, &b) in x.iter_mut().zip(&*y) {
            *a += b;
        }
    });
}

/// The thread pool's work measure (int8 products) of an elementwise pass over `n` floats:
/// such a pass costs about as much per element as this many products of the VNNI kernels,
/// so a decode step's passes (one token) stay on one thread and a prompt's are split.
fn elementwise(n: usize) -> usize {
    n * 16
}
