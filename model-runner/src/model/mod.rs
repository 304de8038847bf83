//! BitNet b1.58 models from GGUF: hyper-parameters ([`Config`]), borrowed weights
//! ([`Weights`]), the forward pass ([`Model`], [`State`], one block at a time with
//! [`Model::forward_block`] / [`Model::forward_block_probed`]) and tokenizer loading.
//!
//! ```no_run
//! use bitnet_runner::gguf::GgufFile;
//! use bitnet_runner::model::{Model, load_tokenizer};
//! let file = GgufFile::open("model.gguf")?;
//! let model = Model::load(&file)?;
//! let tok = load_tokenizer(file.gguf())?;
//! let ids = tok.encode("Hello", true)?;
//! let mut state = model.new_state(ids.len() + 16)?;
//! let mut logits = vec![0.0; model.config.vocab_size];
//! model.forward(&mut state, &ids, Some(&mut logits))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod config;
pub mod error;
pub mod graph;
pub mod kv_cache;
pub mod weights;

pub use config::{Arch, Config, FfnActivation};
pub use error::{ModelError, Result};
pub use graph::{
    BlockProbe, DEFAULT_UBATCH, HeadMode, Model, Numerics, StageTimes, State, argmax, rms_norm,
    rope_tables,
};
pub use kv_cache::{Elements, KvCache, KvLayer, KvType};
pub use weights::{LayerWeights, Projection, Ternary, Weights};

use crate::gguf::Gguf;
use crate::tokenizer::{Tokenizer, TokenizerSpec};

/// `pre` values of llama.cpp's llama3 family, whose `add_bos` default is true.
const LLAMA3_PRE: &[&str] = &["llama3", "llama-v3", "llama-bpe", "falcon3"];

/// Reads `tokenizer.ggml.*` into a [`TokenizerSpec`], applying llama.cpp's defaults:
/// `add_bos_token` absent → true for the llama3 `pre` family (and for a file without
/// `pre` that has a BOS id, as llama.cpp's gpt2 default does not add one: false).
pub fn tokenizer_spec(gguf: &Gguf) -> Result<TokenizerSpec> {
    let md = &gguf.metadata;
    let model = md.get_str("tokenizer.ggml.model")?.to_owned();
    let pre = md.opt_str("tokenizer.ggml.pre")?.map(str::to_owned);
    let tokens = md.get_str_array("tokenizer.ggml.tokens")?.to_vec();
    let merges = md
        .opt_str_array("tokenizer.ggml.merges")?
        .map(<[String]>::to_vec)
        .unwrap_or_default();
    let token_types = md
        .opt_i32_array("tokenizer.ggml.token_type")?
        .map(|c| c.into_owned());
    let bos = md.opt_u32("tokenizer.ggml.bos_token_id")?;
    let eos = md.opt_u32("tokenizer.ggml.eos_token_id")?;
    let eot = md.opt_u32("tokenizer.ggml.eot_token_id")?;
    let llama3 = pre.as_deref().is_some_and(|p| LLAMA3_PRE.contains(&p));
    let add_bos = match md.opt_bool("tokenizer.ggml.add_bos_token")? {
        Some(b) => b,
        None => llama3 && bos.is_some(),
    };
    let add_eos = md
        .opt_bool("tokenizer.ggml.add_eos_token")?
        .unwrap_or(false);
    Ok(TokenizerSpec {
        model,
        pre,
        tokens,
        merges,
        token_types,
        bos,
        eos,
        eot,
        add_bos,
        add_eos,
    })
}

/// The tokenizer described by the file's metadata.
pub fn load_tokenizer(gguf: &Gguf) -> Result<Tokenizer> {
    Ok(Tokenizer::from_spec(tokenizer_spec(gguf)?)?)
}
