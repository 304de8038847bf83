//! Everything that can go wrong loading or running a model. Every message names the
//! metadata key or tensor involved.

use bitnet_kernels::KernelError;

use crate::gguf::GgufError;
use crate::tokenizer::TokenizerError;

/// A model load or run failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The container or a metadata lookup failed (names the key or tensor).
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// `general.architecture` names an architecture this runner has no graph for.
    #[error(
        "unsupported architecture '{arch}' (general.architecture); supported: \
         bitnet-b1.58, bitnet-25, bitnet"
    )]
    UnsupportedArch { arch: String },
    /// A hyper-parameter is present but unusable, or inconsistent with another.
    #[error("metadata key '{key}': {reason}")]
    BadHyperParameter { key: String, reason: String },
    /// A tensor the graph needs is not in the file.
    #[error("tensor '{tensor}' is missing")]
    MissingTensor { tensor: String },
    /// A tensor has the wrong shape for the hyper-parameters.
    #[error("tensor '{tensor}': shape (ne) {got:?}, expected {expected:?} {why}")]
    TensorShape {
        tensor: String,
        got: Vec<u64>,
        expected: Vec<u64>,
        why: String,
    },
    /// A tensor has a type the graph cannot use there.
    #[error("tensor '{tensor}': type {got} is not supported here (expected {expected})")]
    TensorType {
        tensor: String,
        got: String,
        expected: &'static str,
    },
    /// The kernels rejected a tensor's bytes (e.g. a non-finite I2_S scale).
    #[error("tensor '{tensor}': {source}")]
    TensorData {
        tensor: String,
        #[source]
        source: KernelError,
    },
    /// The tokenizer metadata is unusable.
    #[error("tokenizer (tokenizer.ggml.*): {0}")]
    Tokenizer(#[from] TokenizerError),
    /// More tokens than the state (or the model's context) can hold.
    #[error(
        "{what} of {tokens} tokens at position {pos} does not fit: the context holds {capacity} \
         tokens (model context_length {context_length})"
    )]
    ContextOverflow {
        what: &'static str,
        tokens: usize,
        pos: usize,
        capacity: usize,
        context_length: usize,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} is out of range (vocabulary of {vocab_size})")]
    TokenOutOfRange { id: u32, vocab_size: usize },
    /// An empty token list where at least one token is needed.
    #[error("no tokens to process")]
    NoTokens,
    /// A kernel failed at run time (e.g. a non-finite activation).
    #[error("layer {layer}, {op}: {source}")]
    Compute {
        layer: usize,
        op: &'static str,
        #[source]
        source: KernelError,
    },
}

/// Result alias of the model module.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
