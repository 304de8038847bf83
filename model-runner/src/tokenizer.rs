//! Byte-level BPE tokenizer from GGUF metadata (to be written).
