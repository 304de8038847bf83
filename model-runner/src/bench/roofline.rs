//! The roofline probe: what this machine can do, measured in the same run as the kernels.
//!
//! - Read bandwidth at three levels, 1 and N threads: DRAM (a buffer far larger than L3,
//!   1 GiB by default), L3-resident (8 MiB in all) and L2-resident (512 KiB per thread).
//!   Each thread sums its part with wide SIMD loads (pulp's safe API, best ISA of the CPU)
//!   in two patterns, one stream and four interleaved streams; the best pass of either
//!   pattern is the figure (STREAM-like: the limit, not the average).
//! - int8 peak: the best `gemm_quantized` rate of the kernels' own public API over every
//!   int8-activation format, on a cache-resident matrix, one thread (weights × tokens per
//!   second). No intrinsics are written outside the kernels crate.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use bitnet_kernels::{Exec, Format, Isa};
use pulp::{Simd, WithSimd};
use serde::{Deserialize, Serialize};

use super::kernels::{Op, Pool};
use super::{Budget, measure};

/// A level of the memory hierarchy a figure is bound by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Main memory.
    Dram,
    /// Last-level cache.
    L3,
    /// Per-core L2.
    L2,
}

impl Level {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Level::Dram => "dram",
            Level::L3 => "l3",
            Level::L2 => "l2",
        }
    }
}

/// One bandwidth figure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bandwidth {
    /// Threads reading at once.
    pub threads: usize,
    /// Read bandwidth, GB/s (10^9 bytes per second).
    pub gbps: f64,
}

/// The limits measured by the probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Roofline {
    /// Per-core L2 size used to pick a hot figure's level, bytes.
    pub l2_cache_bytes: u64,
    /// L3 size used to pick a hot figure's level, bytes.
    pub l3_cache_bytes: u64,
    /// Size of the DRAM probe buffer, bytes (all threads together).
    pub dram_buffer_bytes: u64,
    /// Size of the L3 probe buffer, bytes (all threads together).
    pub l3_buffer_bytes: u64,
    /// Size of the L2 probe buffer, bytes per thread.
    pub l2_buffer_bytes_per_thread: u64,
    /// SIMD used by the probe's loads (pulp dispatch).
    pub probe_simd: String,
    /// DRAM read bandwidth by thread count.
    pub dram_read_gbps: Vec<Bandwidth>,
    /// L3-resident read bandwidth by thread count.
    pub l3_read_gbps: Vec<Bandwidth>,
    /// L2-resident read bandwidth by thread count.
    pub l2_read_gbps: Vec<Bandwidth>,
    /// Best int8-activation product rate of the kernels on a cache-resident matrix, one
    /// thread, in 10^9 weight·token products per second (= G weights/s for a GEMV).
    pub int8_peak_gops: f64,
    /// Which kernel reached it (`format.op.isa`), and with how many tokens.
    pub int8_peak_kernel: String,
    /// Tokens of the peak measurement.
    pub int8_peak_tokens: usize,
    /// The CPU's own int8 multiply-add peak, one thread: its widest int8 multiply-accumulate
    /// on registers only (AVX-512 VNNI `vpdpbusd`; on AVX2 `vpmaddubsw` with the `vpaddw`
    /// that accumulates it), 10^9 products per second; 0 where there is none (and in
    /// receipts written before it was measured).
    #[serde(default)]
    pub int8_hw_peak_gops: f64,
    /// The instructions [`int8_hw_peak_gops`](Self::int8_hw_peak_gops) timed (empty in
    /// receipts written before it was recorded).
    #[serde(default)]
    pub int8_hw_peak_instructions: String,
}

impl Roofline {
    /// Bandwidth of `level` for `threads`: the figure measured with that many threads, else
    /// the one with the most threads below it, else none.
    pub fn bandwidth(&self, level: Level, threads: usize) -> Option<f64> {
        let list = match level {
            Level::Dram => &self.dram_read_gbps,
            Level::L3 => &self.l3_read_gbps,
            Level::L2 => &self.l2_read_gbps,
        };
        list.iter()
            .filter(|b| b.threads <= threads && b.gbps.is_finite() && b.gbps > 0.0)
            .max_by_key(|b| b.threads)
            .map(|b| b.gbps)
    }

    /// Keeps, level by level and thread count by thread count, the higher bandwidth of
    /// `self` and `other` (two probes of the same run), and the higher int8 peaks. A shared
    /// machine's bandwidth moves by tens of percent within minutes; the best any probe of the
    /// run saw is what the kernels' fastest calls compare against.
    pub fn keep_best(&mut self, other: &Roofline) {
        for (mine, theirs) in [
            (&mut self.dram_read_gbps, &other.dram_read_gbps),
            (&mut self.l3_read_gbps, &other.l3_read_gbps),
            (&mut self.l2_read_gbps, &other.l2_read_gbps),
        ] {
            for b in theirs {
                match mine.iter_mut().find(|m| m.threads == b.threads) {
                    Some(m) => m.gbps = m.gbps.max(b.gbps),
                    None => mine.push(*b),
                }
            }
            mine.sort_by_key(|b| b.threads);
        }
        if other.int8_peak_gops > self.int8_peak_gops {
            self.int8_peak_gops = other.int8_peak_gops;
            self.int8_peak_kernel = other.int8_peak_kernel.clone();
            self.int8_peak_tokens = other.int8_peak_tokens;
        }
        if other.int8_hw_peak_gops > self.int8_hw_peak_gops {
            self.int8_hw_peak_gops = other.int8_hw_peak_gops;
            self.int8_hw_peak_instructions = other.int8_hw_peak_instructions.clone();
        }
    }

    /// The level a cache-hot working set of `bytes` lives in when `threads` threads share
    /// it: L2 if each thread's share fits in half an L2, L3 if it all fits in half the L3.
    pub fn hot_level(&self, bytes: u64, threads: usize) -> Level {
        let t = threads.max(1) as u64;
        if bytes.div_ceil(t) <= self.l2_cache_bytes / 2 {
            Level::L2
        } else if bytes <= self.l3_cache_bytes / 2 {
            Level::L3
        } else {
            Level::Dram
        }
    }
}

/// Probe settings.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// Thread counts to measure (1 is always measured).
    pub threads: Vec<usize>,
    /// DRAM buffer size, bytes.
    pub dram_bytes: usize,
    /// Rounds over the DRAM buffer per access pattern (the cache probes scale with it).
    pub passes: usize,
    /// Budget of the int8 peak measurement.
    pub budget: Budget,
}

impl ProbeConfig {
    /// A full probe (1 GiB DRAM buffer).
    pub fn full(threads: Vec<usize>) -> ProbeConfig {
        ProbeConfig {
            threads,
            dram_bytes: 1 << 30,
            passes: 6,
            budget: Budget::FULL,
        }
    }
    /// `--quick`: 256 MiB (still 8x the L3), fewer passes.
    pub fn quick(threads: Vec<usize>) -> ProbeConfig {
        ProbeConfig {
            threads,
            dram_bytes: 256 << 20,
            passes: 2,
            budget: Budget::QUICK,
        }
    }
}

/// Cache sizes from sysfs (`index2` = L2, `index3` = L3 of cpu0); 1 MiB and 32 MiB if absent.
pub fn cache_sizes() -> (u64, u64) {
    let read = |i: u32| -> Option<u64> {
        let s =
            std::fs::read_to_string(format!("/sys/devices/system/cpu/cpu0/cache/index{i}/size"))
                .ok()?;
        let s = s.trim();
        let (num, mult) = match s.as_bytes().last()? {
            b'K' => (&s[..s.len() - 1], 1024),
            b'M' => (&s[..s.len() - 1], 1024 * 1024),
            b'G' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
            _ => (s, 1),
        };
        num.parse::<u64>().ok().map(|n| n * mult)
    };
    (read(2).unwrap_or(1 << 20), read(3).unwrap_or(32 << 20))
}

/// Runs the whole probe. `on_step` is told what is being measured (for a progress bar).
pub fn probe(cfg: &ProbeConfig, mut on_step: impl FnMut(&str)) -> Roofline {
    let (l2_cache, l3_cache) = cache_sizes();
    let mut threads: Vec<usize> = cfg.threads.iter().copied().filter(|&t| t > 0).collect();
    threads.push(1);
    threads.sort_unstable();
    threads.dedup();

    let l2_per_thread = 512 << 10;
    let l3_total = 8 << 20;
    let mut dram = Vec::new();
    let mut l3 = Vec::new();
    let mut l2 = Vec::new();

    on_step("roofline: DRAM buffer");
    let big = filled_buffer(cfg.dram_bytes / 8);
    for &t in &threads {
        on_step(&format!("roofline: DRAM read, {t} thread(s)"));
        dram.push(Bandwidth {
            threads: t,
            // More rounds with more threads: every thread must be on a core at once for a
            // window to count, which a busy machine grants only now and then.
            gbps: read_bandwidth(&big, t, 2 << 20, 1, cfg.passes * t),
        });
    }
    drop(big);
    for &t in &threads {
        on_step(&format!("roofline: L3 read, {t} thread(s)"));
        let buf = filled_buffer(l3_total / 8);
        // Windows of 4 reads of 8 MiB (~0.3 ms), like a hot 2B-4T GEMV.
        l3.push(Bandwidth {
            threads: t,
            gbps: read_bandwidth(&buf, t, buf.len(), 4, cfg.passes * 8 * t),
        });
        on_step(&format!("roofline: L2 read, {t} thread(s)"));
        let buf = filled_buffer(l2_per_thread * t / 8);
        l2.push(Bandwidth {
            threads: t,
            gbps: read_bandwidth(&buf, t, buf.len(), 32, cfg.passes * 8 * t),
        });
    }
    on_step("roofline: int8 peak via the kernels");
    let (peak, kernel, tokens) = int8_peak(cfg.budget);
    let (hw_peak, hw_instructions) = int8_hw_peak();
    Roofline {
        l2_cache_bytes: l2_cache,
        l3_cache_bytes: l3_cache,
        dram_buffer_bytes: cfg.dram_bytes as u64,
        l3_buffer_bytes: l3_total as u64,
        l2_buffer_bytes_per_thread: l2_per_thread as u64,
        probe_simd: probe_simd_name().to_string(),
        dram_read_gbps: dram,
        l3_read_gbps: l3,
        l2_read_gbps: l2,
        int8_peak_gops: peak,
        int8_peak_kernel: kernel,
        int8_peak_tokens: tokens,
        int8_hw_peak_gops: hw_peak,
        int8_hw_peak_instructions: hw_instructions.to_string(),
    }
}

/// Best of five ~20 ms runs of [`bitnet_kernels::isa::int8_mac_peak_loop`], G products/s,
/// and the instructions it timed; 0 without such instructions.
fn int8_hw_peak() -> (f64, &'static str) {
    use bitnet_kernels::isa::int8_mac_peak_loop;
    let rounds = 1 << 20;
    let mut best = (0f64, "");
    for _ in 0..5 {
        let t = Instant::now();
        let Some(run) = int8_mac_peak_loop(black_box(rounds)) else {
            return (0.0, "");
        };
        black_box(run.checksum);
        let s = t.elapsed().as_secs_f64();
        if s > 0.0 {
            let gops = (rounds * run.macs_per_round) as f64 / s / 1e9;
            if gops > best.0 {
                best = (gops, run.instructions);
            }
        }
    }
    best
}

/// A buffer of `n` non-zero words (so every page is really backed, not the zero page).
fn filled_buffer(n: usize) -> Vec<u64> {
    let mut v = vec![0u64; n.max(64)];
    for (i, w) in v.iter_mut().enumerate() {
        *w = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    }
    v
}

/// Best bandwidth (GB/s) over many timed windows. `buf` is cut into chunks of `chunk`
/// words; window `k` has every one of `threads` threads read its equal share of chunk
/// `k % chunks`, `repeat` times, and lasts from the first thread's start to the last one's
/// end. Windows visit the chunks in order, `rounds` times, with one stream and then four
/// interleaved streams per thread; the very first window is a warm-up. Short windows, like
/// the kernels' calls, so that the probe and the kernels see the same quiet moments of a
/// shared machine.
fn read_bandwidth(buf: &[u64], threads: usize, chunk: usize, repeat: usize, rounds: usize) -> f64 {
    let threads = threads.max(1);
    let chunk = chunk.clamp(threads * 64, buf.len().max(threads * 64));
    let chunks = (buf.len() / chunk).max(1);
    let share = chunk / threads;
    let windows = chunks * rounds.max(1);
    let barrier = Barrier::new(threads);
    let worker = |i: usize| -> Vec<(Instant, Instant)> {
        let mut spans = Vec::with_capacity(windows * 2);
        for streams in [1usize, 4] {
            for k in 0..windows {
                let at = (k % chunks) * chunk + i * share;
                let slice = &buf[at..(at + share).min(buf.len())];
                if threads > 1 {
                    barrier.wait();
                }
                let t0 = Instant::now();
                for _ in 0..repeat {
                    black_box(sum_streams(black_box(slice), streams));
                }
                spans.push((t0, Instant::now()));
            }
        }
        spans
    };
    let per_thread: Vec<Vec<(Instant, Instant)>> = if threads == 1 {
        vec![worker(0)]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|i| s.spawn(move || worker(i))).collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        })
    };
    if per_thread.len() != threads {
        return 0.0;
    }
    let bytes = (share * threads * 8 * repeat) as f64;
    let mut best = 0f64;
    for w in 1..per_thread[0].len() {
        let first = per_thread.iter().map(|s| s[w].0).min();
        let last = per_thread.iter().map(|s| s[w].1).max();
        if let (Some(first), Some(last)) = (first, last) {
            let secs = last.duration_since(first).as_secs_f64();
            if secs > 0.0 {
                best = best.max(bytes / secs / 1e9);
            }
        }
    }
    best
}

/// Read bandwidth (GB/s) of one pass over `bytes` (e.g. a model's mapped weights) by
/// `threads` threads, each summing its contiguous share with wide loads, from the first
/// thread's start to the last one's end: what any memory-bound pass over exactly those
/// bytes, through the same pages, can reach at that moment. One average, unlike the best of
/// many short windows that the DRAM probe reports. 0 if `bytes` is not 8-byte aligned.
pub fn stream_read_gbps(bytes: &[u8], threads: usize) -> f64 {
    let threads = threads.max(1);
    let n = bytes.len() / 64 * 64;
    let Ok(words) = pulp::bytemuck::try_cast_slice::<u8, u64>(&bytes[..n]) else {
        return 0.0;
    };
    let share = (words.len() / threads) / 8 * 8;
    if share == 0 {
        return 0.0;
    }
    let barrier = Barrier::new(threads);
    let part = |i: usize| {
        barrier.wait();
        let t0 = Instant::now();
        black_box(sum_streams(
            black_box(&words[i * share..(i + 1) * share]),
            1,
        ));
        (t0, Instant::now())
    };
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|i| s.spawn(move || part(i))).collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let first = spans.iter().map(|s| s.0).min();
    let last = spans.iter().map(|s| s.1).max();
    match (first, last) {
        (Some(a), Some(b)) if spans.len() == threads && b > a => {
            (share * threads * 8) as f64 / b.duration_since(a).as_secs_f64() / 1e9
        }
        _ => 0.0,
    }
}

/// Which SIMD width pulp dispatches to on this CPU.
fn probe_simd_name() -> &'static str {
    struct Name;
    impl WithSimd for Name {
        type Output = &'static str;
        #[inline(always)]
        fn with_simd<S: Simd>(self, _: S) -> &'static str {
            match core::mem::size_of::<S::u64s>() {
                64 => "512-bit",
                32 => "256-bit",
                16 => "128-bit",
                _ => "scalar",
            }
        }
    }
    pulp::Arch::new().dispatch(Name)
}

/// Wrapping sum of `x` read as `streams` interleaved sequential streams.
fn sum_streams(x: &[u64], streams: usize) -> u64 {
    pulp::Arch::new().dispatch(SumStreams { x, streams })
}

struct SumStreams<'a> {
    x: &'a [u64],
    streams: usize,
}

impl WithSimd for SumStreams<'_> {
    type Output = u64;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> u64 {
        let (v, tail) = S::as_simd_u64s(self.x);
        let z = simd.splat_u64s(0);
        let mut acc = [z; 8];
        if self.streams <= 1 {
            let mut chunks = v.chunks_exact(8);
            for c in &mut chunks {
                for k in 0..8 {
                    acc[k] = simd.add_u64s(acc[k], c[k]);
                }
            }
            for &r in chunks.remainder() {
                acc[0] = simd.add_u64s(acc[0], r);
            }
        } else {
            let q = v.len() / 4;
            let (a, rest) = v.split_at(q);
            let (b, rest) = rest.split_at(q);
            let (c, d) = rest.split_at(q);
            let n = q / 2 * 2;
            let mut i = 0;
            while i < n {
                acc[0] = simd.add_u64s(acc[0], a[i]);
                acc[1] = simd.add_u64s(acc[1], b[i]);
                acc[2] = simd.add_u64s(acc[2], c[i]);
                acc[3] = simd.add_u64s(acc[3], d[i]);
                acc[4] = simd.add_u64s(acc[4], a[i + 1]);
                acc[5] = simd.add_u64s(acc[5], b[i + 1]);
                acc[6] = simd.add_u64s(acc[6], c[i + 1]);
                acc[7] = simd.add_u64s(acc[7], d[i + 1]);
                i += 2;
            }
            for s in [&a[n..], &b[n..], &c[n..], &d[n..]] {
                for &r in s {
                    acc[0] = simd.add_u64s(acc[0], r);
                }
            }
        }
        let mut total = z;
        for a in acc {
            total = simd.add_u64s(total, a);
        }
        let mut out = 0u64;
        let words: &[u64] = bytes_of_lanes::<S>(&total);
        for &w in words {
            out = out.wrapping_add(w);
        }
        for &t in tail {
            out = out.wrapping_add(t);
        }
        out
    }
}

/// The u64 lanes of one SIMD register value.
#[inline(always)]
fn bytes_of_lanes<S: Simd>(v: &S::u64s) -> &[u64] {
    pulp::bytemuck::cast_slice(core::slice::from_ref(v))
}

/// The best int8 product rate of the kernels on a 1024 × 2560 matrix (L2-resident for every
/// format), one thread, best ISA, 1 and 16 tokens: (G products/s, kernel name, tokens).
fn int8_peak(budget: Budget) -> (f64, String, usize) {
    let isa = Isa::best();
    let Ok(exec) = Exec::new(isa, 1) else {
        return (0.0, "none".into(), 0);
    };
    let (rows, cols) = (1024, 2560);
    let mut best = (0f64, String::from("none"), 0usize);
    for format in Format::ALL {
        let Ok(pool) = Pool::build(format, rows, cols, 1, 0xbe4c) else {
            continue;
        };
        let m = pool.matrix(0);
        for (op, tokens) in [(Op::GemvI8, 1usize), (Op::GemmI8, 16)] {
            let mut rng = super::Rng::new(7);
            let x: Vec<f32> = (0..tokens * cols).map(|_| rng.f32_signed()).collect();
            let Ok(acts) = m.quantize_activations(&x, tokens, &exec) else {
                continue;
            };
            let mut y = vec![0f32; tokens * rows];
            let b = Budget {
                time: budget.time.max(Duration::from_millis(20)),
                ..budget
            };
            let t = measure(b, |_| {
                let _ = black_box(m.gemm_quantized(&acts, &mut y, &exec));
            });
            let gops = (rows * cols * tokens) as f64 / t.min_s / 1e9;
            if gops > best.0 {
                best = (
                    gops,
                    format!("{}.{}.{}", format.name(), op.name(), isa.name()),
                    tokens,
                );
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pass over an aligned buffer gives a positive figure for any thread count; a buffer
    /// too small to share, or misaligned, gives 0 rather than a bogus rate.
    #[test]
    fn stream_read_covers_its_cases() {
        let words = filled_buffer(1 << 16);
        let bytes: &[u8] = pulp::bytemuck::cast_slice(&words);
        for threads in 1..=3 {
            assert!(stream_read_gbps(bytes, threads) > 0.0, "{threads} threads");
        }
        assert_eq!(stream_read_gbps(&bytes[..32], 2), 0.0);
        assert_eq!(stream_read_gbps(&bytes[1..], 1), 0.0);
    }

    #[test]
    fn stream_sums_agree_with_a_plain_sum() {
        for n in [0usize, 1, 7, 64, 1000, 4097] {
            let v: Vec<u64> = (0..n as u64).map(|i| i * 3 + 1).collect();
            let want = v.iter().fold(0u64, |a, &b| a.wrapping_add(b));
            assert_eq!(sum_streams(&v, 1), want, "n={n} one stream");
            assert_eq!(sum_streams(&v, 4), want, "n={n} four streams");
        }
    }

    #[test]
    fn bandwidth_lookup_falls_back_to_fewer_threads() {
        let r = Roofline {
            l2_cache_bytes: 1 << 20,
            l3_cache_bytes: 32 << 20,
            dram_buffer_bytes: 0,
            l3_buffer_bytes: 0,
            l2_buffer_bytes_per_thread: 0,
            probe_simd: "x".into(),
            dram_read_gbps: vec![
                Bandwidth {
                    threads: 1,
                    gbps: 10.0,
                },
                Bandwidth {
                    threads: 2,
                    gbps: 15.0,
                },
            ],
            l3_read_gbps: vec![],
            l2_read_gbps: vec![],
            int8_peak_gops: 1.0,
            int8_peak_kernel: "x".into(),
            int8_peak_tokens: 1,
            int8_hw_peak_gops: 0.0,
            int8_hw_peak_instructions: String::new(),
        };
        assert_eq!(r.bandwidth(Level::Dram, 1), Some(10.0));
        assert_eq!(r.bandwidth(Level::Dram, 4), Some(15.0));
        assert_eq!(r.bandwidth(Level::L3, 1), None);
        assert_eq!(r.hot_level(400 << 10, 1), Level::L2);
        assert_eq!(r.hot_level(800 << 10, 2), Level::L2);
        assert_eq!(r.hot_level(4 << 20, 1), Level::L3);
        assert_eq!(r.hot_level(64 << 20, 1), Level::Dram);

        // A second probe of the run: each level and thread count keeps its better figure,
        // thread counts only one probe measured are added, and the int8 peak follows its best.
        let bw = |threads, gbps| Bandwidth { threads, gbps };
        let mut first = r.clone();
        let mut second = r.clone();
        second.dram_read_gbps = vec![bw(2, 12.0), bw(1, 11.0)];
        second.l3_read_gbps = vec![bw(1, 80.0)];
        second.int8_peak_gops = 2.0;
        second.int8_peak_kernel = "y".into();
        second.int8_hw_peak_gops = 3.0;
        second.int8_hw_peak_instructions = "z".into();
        first.keep_best(&second);
        assert_eq!(first.dram_read_gbps, vec![bw(1, 11.0), bw(2, 15.0)]);
        assert_eq!(first.l3_read_gbps, vec![bw(1, 80.0)]);
        assert!(first.l2_read_gbps.is_empty());
        assert_eq!(
            (first.int8_peak_gops, first.int8_peak_kernel.as_str()),
            (2.0, "y")
        );
        assert_eq!(
            (
                first.int8_hw_peak_gops,
                first.int8_hw_peak_instructions.as_str()
            ),
            (3.0, "z")
        );
    }
}
