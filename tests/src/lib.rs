//! The lab: golden-vector readers and helpers shared by the property tests.
//!
//! The golden vectors under `data/vectors/` were written by the real producers
//! (bitnet.cpp for I2_S, gguf-py for TQ1_0/TQ2_0), never by this project.

pub mod vectors;
