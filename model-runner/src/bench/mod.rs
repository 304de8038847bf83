//! Measurement library behind `bitnet bench` and `bitnet receipt`, shared with the criterion
//! benches in `bitnet-benches`.
//!
//! Every figure is reported against a limit measured in the same run (the roofline probe), so
//! that a number taken on a busy, shared machine still means something. Nothing here is used
//! by the test suite to judge speed: the receipt tests check structure and arithmetic only.
//!
//! - [`roofline`]: DRAM / L3 / L2 read bandwidth (1 and N threads), int8 peak via the kernels.
//! - [`kernels`]: the format × op × ISA × threads × shape × regime matrix.
//! - [`receipt`]: the JSON record of a run and its verifier.
//! - [`plot`]: an SVG of achieved bandwidth against the roofline.
//! - [`model`]: whole-model figures (prompt/decode tok/s, time to first token, peak RSS).

pub mod kernels;
pub mod model;
pub mod plot;
pub mod progress;
pub mod receipt;
pub mod roofline;

use std::time::{Duration, Instant};

/// Timing of one repeated measurement, in seconds per call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Fastest call.
    pub min_s: f64,
    /// Median call.
    pub median_s: f64,
    /// Calls timed (the warm-up call excluded).
    pub reps: u32,
}

/// How long to measure one case.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Keep calling until this much time has been spent ...
    pub time: Duration,
    /// ... and at least this many calls were timed.
    pub min_reps: u32,
    /// Never more calls than this.
    pub max_reps: u32,
}

impl Budget {
    /// The default budget of a full run.
    pub const FULL: Budget = Budget {
        time: Duration::from_millis(250),
        min_reps: 5,
        max_reps: 20_000,
    };
    /// `--quick`.
    pub const QUICK: Budget = Budget {
        time: Duration::from_millis(40),
        min_reps: 3,
        max_reps: 5_000,
    };
}

/// Calls `f(i)` (i = 0, 1, 2, ... so callers can rotate inputs) once to warm up, then
/// repeatedly within `budget`, timing each call; see [`measure_after`].
pub fn measure<F: FnMut(usize)>(budget: Budget, mut f: F) -> Timing {
    let t = Instant::now();
    f(0);
    measure_after(budget, t.elapsed(), f)
}

/// Like [`measure`] when the caller already made the warm-up call `f(0)`, which took
/// `warm`: calls `f(1)`, `f(2)`, ... until `budget` is spent and `budget.min_reps` calls
/// were timed. A warm-up slower than the whole budget means one timed call only.
pub fn measure_after<F: FnMut(usize)>(budget: Budget, warm: Duration, mut f: F) -> Timing {
    let min_reps = if warm >= budget.time {
        1
    } else {
        budget.min_reps.max(1)
    };
    let mut times = Vec::with_capacity(64);
    let start = Instant::now();
    let mut i = 1;
    while (times.len() as u32) < budget.max_reps.max(1)
        && ((times.len() as u32) < min_reps || start.elapsed() < budget.time)
    {
        let t = Instant::now();
        f(i);
        times.push(t.elapsed().as_secs_f64());
        i += 1;
    }
    summarize(&mut times)
}

/// Min and median of per-call times.
pub fn summarize(times: &mut [f64]) -> Timing {
    times.sort_by(f64::total_cmp);
    let reps = times.len() as u32;
    if times.is_empty() {
        return Timing {
            min_s: f64::NAN,
            median_s: f64::NAN,
            reps,
        };
    }
    Timing {
        min_s: times[0],
        median_s: times[times.len() / 2],
        reps,
    }
}

/// The load average (1, 5, 15 minutes) from `/proc/loadavg`, if readable.
pub fn load_average() -> Option<[f64; 3]> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = s.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// A small deterministic generator (xorshift64*) for benchmark inputs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (a zero seed is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [-1, 1).
    pub fn f32_signed(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarize_orders_and_counts() {
        let mut t = vec![3.0, 1.0, 2.0];
        let s = summarize(&mut t);
        assert_eq!((s.min_s, s.median_s, s.reps), (1.0, 2.0, 3));
    }

    #[test]
    fn measure_stops_at_max_reps_after_a_warmup() {
        let mut calls = Vec::new();
        let b = Budget {
            time: Duration::from_secs(3600),
            min_reps: 1,
            max_reps: 4,
        };
        let t = measure(b, |i| calls.push(i));
        assert_eq!(t.reps, 4);
        assert_eq!(calls, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_call_slower_than_the_budget_is_timed_once() {
        let mut calls = 0;
        let b = Budget {
            time: Duration::ZERO,
            min_reps: 50,
            max_reps: 100,
        };
        assert_eq!(measure(b, |_| calls += 1).reps, 1);
        assert_eq!(calls, 2);
    }
}
