//! Hyper-parameters from GGUF metadata (`<arch>.*` keys), validated for the graph.

use super::error::{ModelError, Result};
use crate::gguf::Gguf;

/// Which graph a file needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// `bitnet-b1.58` (alias `bitnet-25`, bitnet.cpp's 2B-4T): ReLU² FFN, attn/ffn sub-norms.
    BitnetB158,
    /// `bitnet` (1bitLLM-style): SiLU-gated FFN, sub-norms where present.
    Bitnet,
}

impl Arch {
    /// Maps `general.architecture` to a graph; `None` for anything else.
    pub fn from_name(name: &str) -> Option<Arch> {
        match name {
            "bitnet-b1.58" | "bitnet-25" => Some(Arch::BitnetB158),
            "bitnet" => Some(Arch::Bitnet),
            _ => None,
        }
    }

    /// The FFN non-linearity of this architecture.
    pub fn ffn_activation(self) -> FfnActivation {
        match self {
            Arch::BitnetB158 => FfnActivation::ReluSquared,
            Arch::Bitnet => FfnActivation::Silu,
        }
    }

    /// Whether `attn_sub_norm` / `ffn_sub_norm` are required (else optional).
    pub fn requires_sub_norms(self) -> bool {
        matches!(self, Arch::BitnetB158)
    }
}

/// The gate non-linearity: `m = act(gate) * up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FfnActivation {
    /// `relu(g)^2`.
    ReluSquared,
    /// `g / (1 + exp(-g))`.
    Silu,
}

/// Validated hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Graph family.
    pub arch: Arch,
    /// `general.architecture` as stored (the metadata key prefix).
    pub arch_name: String,
    /// Vocabulary size (`<arch>.vocab_size`, else the tokenizer's token count, else
    /// `token_embd.weight`'s second dimension).
    pub vocab_size: usize,
    /// Trained context length (`<arch>.context_length`): the most positions a state holds.
    pub context_length: usize,
    /// Model width (`<arch>.embedding_length`).
    pub hidden: usize,
    /// Number of blocks (`<arch>.block_count`).
    pub n_layer: usize,
    /// FFN width (`<arch>.feed_forward_length`).
    pub ffn: usize,
    /// Query heads (`<arch>.attention.head_count`).
    pub n_head: usize,
    /// Key/value heads (`<arch>.attention.head_count_kv`, default `n_head`).
    pub n_head_kv: usize,
    /// `hidden / n_head`; `<arch>.rope.dimension_count` must equal it when present.
    pub head_dim: usize,
    /// RMSNorm epsilon (`<arch>.attention.layer_norm_rms_epsilon`).
    pub rms_eps: f32,
    /// RoPE base θ (`<arch>.rope.freq_base`, default 10000).
    pub rope_theta: f32,
}

/// Caps that keep a hostile file from asking for absurd buffers.
const MAX_DIM: u64 = 1 << 20;
const MAX_LAYERS: u64 = 1 << 12;
const MAX_CONTEXT: u64 = 1 << 24;
const MAX_VOCAB: u64 = 1 << 24;

impl Config {
    /// Reads and validates the hyper-parameters of `gguf`.
    pub fn from_gguf(gguf: &Gguf) -> Result<Config> {
        let md = &gguf.metadata;
        let arch_name = md.get_str("general.architecture")?.to_owned();
        let arch = Arch::from_name(&arch_name).ok_or_else(|| ModelError::UnsupportedArch {
            arch: arch_name.clone(),
        })?;
        let key = |k: &str| format!("{arch_name}.{k}");
        let bad = |k: &str, reason: String| ModelError::BadHyperParameter {
            key: key(k),
            reason,
        };
        let dim = |k: &str, max: u64| -> Result<usize> {
            let v = md.get_u64(&key(k))?;
            if v == 0 || v > max {
                return Err(bad(k, format!("value {v} is not in 1..={max}")));
            }
            Ok(v as usize)
        };
        let opt_dim = |k: &str, max: u64| -> Result<Option<usize>> {
            if md.contains_key(&key(k)) {
                dim(k, max).map(Some)
            } else {
                Ok(None)
            }
        };

        let hidden = dim("embedding_length", MAX_DIM)?;
        let n_layer = dim("block_count", MAX_LAYERS)?;
        let ffn = dim("feed_forward_length", MAX_DIM)?;
        let context_length = dim("context_length", MAX_CONTEXT)?;
        let n_head = dim("attention.head_count", MAX_DIM)?;
        let n_head_kv = opt_dim("attention.head_count_kv", MAX_DIM)?.unwrap_or(n_head);
        let rms_eps = md.get_f32(&key("attention.layer_norm_rms_epsilon"))?;
        if !(rms_eps.is_finite() && rms_eps > 0.0) {
            return Err(bad(
                "attention.layer_norm_rms_epsilon",
                format!("{rms_eps} is not a positive finite number"),
            ));
        }
        let rope_theta = md.opt_f32(&key("rope.freq_base"))?.unwrap_or(10000.0);
        if !(rope_theta.is_finite() && rope_theta > 0.0) {
            return Err(bad(
                "rope.freq_base",
                format!("{rope_theta} is not a positive finite number"),
            ));
        }
        if !hidden.is_multiple_of(n_head) {
            return Err(bad(
                "attention.head_count",
                format!("{n_head} heads do not divide embedding_length {hidden}"),
            ));
        }
        if !n_head.is_multiple_of(n_head_kv) {
            return Err(bad(
                "attention.head_count_kv",
                format!("{n_head_kv} KV heads do not divide head_count {n_head}"),
            ));
        }
        let head_dim = hidden / n_head;
        if !head_dim.is_multiple_of(2) {
            return Err(bad(
                "attention.head_count",
                format!(
                    "head dimension {head_dim} (= {hidden} / {n_head}) is odd; RoPE needs pairs"
                ),
            ));
        }
        if let Some(rd) = opt_dim("rope.dimension_count", MAX_DIM)?
            && rd != head_dim
        {
            return Err(bad(
                "rope.dimension_count",
                format!(
                    "{rd} differs from the head dimension {head_dim}; only full-width RoPE is supported"
                ),
            ));
        }

        let vocab_size = match opt_dim("vocab_size", MAX_VOCAB)? {
            Some(v) => v,
            None => match md.opt_str_array("tokenizer.ggml.tokens")? {
                Some(t) if !t.is_empty() => t.len(),
                _ => match gguf.tensor("token_embd.weight") {
                    Some(t) if t.dims.len() == 2 && t.dims[1] > 0 && t.dims[1] <= MAX_VOCAB => {
                        t.dims[1] as usize
                    }
                    _ => {
                        return Err(bad(
                            "vocab_size",
                            "missing, and neither tokenizer.ggml.tokens nor token_embd.weight gives it"
                                .into(),
                        ));
                    }
                },
            },
        };
        if let Some(tokens) = md.opt_str_array("tokenizer.ggml.tokens")?
            && tokens.len() != vocab_size
        {
            return Err(ModelError::BadHyperParameter {
                key: "tokenizer.ggml.tokens".into(),
                reason: format!(
                    "{} tokens, but the model's vocabulary is {vocab_size}",
                    tokens.len()
                ),
            });
        }

        Ok(Config {
            arch,
            arch_name,
            vocab_size,
            context_length,
            hidden,
            n_layer,
            ffn,
            n_head,
            n_head_kv,
            head_dim,
            rms_eps,
            rope_theta,
        })
    }

    /// Width of all query heads together (`n_head * head_dim` = `hidden`).
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Width of all key (or value) heads together.
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// Query heads per KV head.
    pub fn gqa_group(&self) -> usize {
        self.n_head / self.n_head_kv
    }
}
