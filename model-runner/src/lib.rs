//! BitNet model runner: GGUF reader over a memory map, tokenizer, graph and sampler.
//!
//! Format knowledge (how ternary bytes decode) lives in `bitnet-kernels`; this crate hands
//! the kernels borrowed slices of the memory-mapped file.

pub mod gguf;
pub mod selftest;
pub mod tokenizer;
