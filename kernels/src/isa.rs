//! Instruction sets the kernels can run on, detected once at run time.

use std::fmt;
use std::sync::OnceLock;

use crate::error::{KernelError, Result};

/// One kernel family. Every ISA listed by [`Isa::available`] computes the same integers as
/// [`Isa::Scalar`]; f32 paths differ only within the documented summation bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Portable Rust, no intrinsics; compiles everywhere.
    Scalar,
    /// x86-64 AVX2 + FMA (`maddubs`/`madd` int8 dot products).
    Avx2,
    /// x86-64 AVX-512 F/BW/VL with VNNI (`vpdpbusd`).
    Avx512Vnni,
}

impl Isa {
    /// All ISAs this build knows, best last.
    pub const ALL: [Isa; 3] = [Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni];

    /// Short name used on the command line (`scalar`, `avx2`, `avx512`).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512Vnni => "avx512",
        }
    }

    /// Parses a command-line name; `auto` gives the best available ISA.
    pub fn parse(name: &str) -> Result<Isa> {
        match name.to_ascii_lowercase().as_str() {
            "auto" => Ok(Isa::best()),
            "scalar" => Ok(Isa::Scalar),
            "avx2" => Ok(Isa::Avx2),
            "avx512" | "avx512vnni" | "avx512-vnni" => Ok(Isa::Avx512Vnni),
            _ => Err(KernelError::UnknownName {
                what: "ISA",
                name: name.to_string(),
                known: "auto, scalar, avx2, avx512",
            }),
        }
    }

    /// Whether this CPU can run the ISA (detected once, then cached).
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Avx2 => detected().avx2,
            Isa::Avx512Vnni => detected().avx512vnni,
        }
    }

    /// The ISAs this CPU can run, scalar first.
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_available()).collect()
    }

    /// The fastest available ISA.
    pub fn best() -> Isa {
        *Isa::available().last().unwrap_or(&Isa::Scalar)
    }

    /// `Ok(self)` if available, else an error listing what is.
    pub fn require(self) -> Result<Isa> {
        if self.is_available() {
            Ok(self)
        } else {
            Err(KernelError::IsaUnavailable {
                requested: self,
                available: Isa::available()
                    .iter()
                    .map(|i| i.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy)]
struct Detected {
    avx2: bool,
    avx512vnni: bool,
}

fn detected() -> Detected {
    static CELL: OnceLock<Detected> = OnceLock::new();
    *CELL.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Detected {
    let avx2 = std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c");
    let avx512vnni = avx2
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && std::arch::is_x86_feature_detected!("avx512cd")
        && std::arch::is_x86_feature_detected!("avx512vnni");
    Detected { avx2, avx512vnni }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Detected {
    Detected {
        avx2: false,
        avx512vnni: false,
    }
}

/// Runs `rounds` rounds of the CPU's widest int8 multiply-add instruction on registers only
/// (AVX-512 VNNI: 12 independent `vpdpbusd`, 768 multiply-adds a round), for a roofline's
/// compute peak: time it and divide [`INT8_MACS_PER_ROUND`] × `rounds` by the seconds.
/// Returns a checksum, or `None` where this build has no such instruction on this CPU.
pub fn int8_mac_peak_loop(rounds: usize) -> Option<i32> {
    #[cfg(target_arch = "x86_64")]
    if Isa::Avx512Vnni.require().is_ok() {
        return Some(crate::simd::x86::vnni_peak_loop(rounds));
    }
    let _ = rounds;
    None
}

/// Multiply-adds per round of [`int8_mac_peak_loop`].
pub const INT8_MACS_PER_ROUND: usize = 12 * 64;
