//! GGUF v3 container reader (to be written).
