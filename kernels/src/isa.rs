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

/// What one run of [`int8_mac_peak_loop`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Int8PeakRun {
    /// A checksum of the results, so that the work cannot be dropped.
    pub checksum: i32,
    /// Multiply-adds (weight · activation products) per round.
    pub macs_per_round: usize,
    /// The instructions timed, for reports.
    pub instructions: &'static str,
}

/// Runs `rounds` rounds of the CPU's widest int8 multiply-accumulate on registers only, for
/// a roofline's compute peak: time it and divide `macs_per_round × rounds` by the seconds.
/// AVX-512 VNNI: 12 independent `vpdpbusd` (64 products each, accumulated in i32). AVX2,
/// which has no int8 multiply-accumulate: 12 independent `vpmaddubsw` (32 products summed
/// in pairs to i16) each followed by the `vpaddw` that accumulates it, the least any
/// kernel must issue per 32 products. `None` where this build has neither on this CPU.
pub fn int8_mac_peak_loop(rounds: usize) -> Option<Int8PeakRun> {
    #[cfg(target_arch = "x86_64")]
    {
        if Isa::Avx512Vnni.require().is_ok() {
            return Some(Int8PeakRun {
                checksum: crate::simd::x86::vnni_peak_loop(rounds),
                macs_per_round: 12 * 64,
                instructions: "vpdpbusd",
            });
        }
        if Isa::Avx2.require().is_ok() {
            return Some(Int8PeakRun {
                checksum: crate::simd::x86::avx2_peak_loop(rounds),
                macs_per_round: 12 * 32,
                instructions: "vpmaddubsw + vpaddw",
            });
        }
    }
    let _ = rounds;
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The peak loop does the work it reports: on an AVX2-only CPU its checksum is that of
    /// a scalar model of the 12 chains (`vpmaddubsw`'s saturating pair sums of `3 · b`,
    /// then a wrapping `vpaddw`), for 0–9 rounds; on a VNNI CPU it reports `vpdpbusd`.
    #[test]
    fn int8_peak_loop_does_its_rounds() {
        let Some(run) = int8_mac_peak_loop(1) else {
            assert!(Isa::Avx2.require().is_err());
            return;
        };
        if Isa::Avx512Vnni.require().is_ok() {
            assert_eq!((run.macs_per_round, run.instructions), (768, "vpdpbusd"));
            return;
        }
        assert_eq!(
            (run.macs_per_round, run.instructions),
            (384, "vpmaddubsw + vpaddw")
        );
        for rounds in 0..10 {
            // Every lane of chain i holds the same i16; its bytes are its signed operand.
            let mut acc: Vec<i16> = (1..=12).map(|b: i16| b * 257).collect();
            for _ in 0..rounds {
                for x in acc.iter_mut() {
                    let [lo, hi] = x.to_le_bytes().map(|b| b as i8 as i32);
                    let pair = (3 * lo + 3 * hi).clamp(i16::MIN as i32, i16::MAX as i32);
                    *x = x.wrapping_add(pair as i16);
                }
            }
            let s = acc.iter().fold(0i16, |s, &x| s.wrapping_add(x));
            let want = 2 * (s as u16 as i32);
            assert_eq!(
                int8_mac_peak_loop(rounds).unwrap().checksum,
                want,
                "{rounds}"
            );
        }
    }
}
