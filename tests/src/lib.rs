//! The lab: golden-vector readers, derived error bounds and helpers shared by the
//! property tests in `tests/`.
//!
//! The golden vectors under `data/vectors/` were written by the real producers
//! (bitnet.cpp for I2_S, gguf-py for TQ1_0/TQ2_0), never by this project.

pub mod fuzz_targets;
pub mod vectors;

pub use bitnet_reference::bounds;

use bitnet_kernels::{Exec, Isa};

/// Every (ISA available on this CPU) × (1, 2, 3 threads; 1 under Miri, which interprets
/// every thread in turn: the team's own tests cover its threads there).
pub fn all_execs() -> Vec<Exec> {
    let mut v = Vec::new();
    for isa in Isa::available() {
        for threads in 1..=if cfg!(miri) { 1 } else { 3 } {
            v.push(Exec::new(isa, threads).expect("available ISA"));
        }
    }
    v
}

/// Bit patterns, for exact comparisons that treat NaNs and signed zeros precisely.
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}
