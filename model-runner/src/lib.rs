//! BitNet model runner: GGUF reader over a memory map, tokenizer, graph and sampler.
//!
//! Format knowledge (how ternary bytes decode) lives in `bitnet-kernels`; this crate hands
//! the kernels borrowed slices of the memory-mapped file.

pub mod bench;
pub mod chat;
pub mod gguf;
pub mod model;
pub mod sampler;
pub mod selftest;
pub mod synth;
pub mod tokenizer;
