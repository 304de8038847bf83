//! How a call runs: which ISA, how many threads. Row-parallel over a persistent team (`team::Team`);
//! every output row is computed by one thread with the same code whatever the split, so
//! results are bit-identical for any thread count.

use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{KernelError, Result};
use crate::isa::Isa;
use crate::simd::{self, KernelTable};
use crate::team::Team;

/// Rows handed to one task at a time (a multiple of the 4-row kernel tile).
const ROW_CHUNK: usize = 32;
/// Tokens per block of the `[rows, tokens]` → `[tokens, rows]` output transpose (16 f32 = one
/// 64-byte line of each row's results).
const TRANSPOSE_TOKENS: usize = 16;
/// Below this many weight·token products per call, threads cost more than they save: waking a
/// parked worker costs microseconds, about what a 1M-product GEMV takes on one core.
const PARALLEL_MIN_WEIGHTS: usize = 1 << 20;
/// Most tokens per group of [`Exec::for_token_groups`]: each group streams the whole matrix
/// (from DRAM or L3), so groups must be long enough for that to hide behind their arithmetic
/// (32 tokens × a 2560 × 6912 matrix: ~2.5 ms of the VNNI tile for 4.4 MB), and few enough
/// per thread that a thread slowed down by the machine can leave one to the other. 2B-4T
/// prefill of 128 tokens on 2 threads, before the tile prefetched its next chunk: 16 →
/// 106–114 tok/s, 32 → 116–125, 64 → 116–126. With that prefetch (warm, alternated medians):
/// 8 → 156.1, 16 → 163.1–164.3, 32 → 158.0–159.7; on 1 thread 16 and 32 are alike (84.0 vs
/// 83.7) and 8 loses 2%.
const TOKEN_CHUNK: usize = 16;
/// Most runs a call is split into up front; participants beyond take work from the others.
const MAX_RUNS: usize = 16;

/// `y_i = y_i + a · x_i` over `min(len)` elements (see [`Exec::axpy_f32`]).
pub type AxpyF32 = fn(a: f32, x: &[f32], y: &mut [f32]);

/// Most vectors one [`DotColsF32`] call takes: a group of attention's query heads that share
/// one key/value head (4 in BitNet b1.58 2B-4T).
pub const DOT_COLS_MAX: usize = 4;

/// `outs[h][j] = Σ_i xs[h][i] · m[i·stride + j]` (see [`Exec::dot_cols_f32`]).
pub type DotColsF32 = fn(xs: &[&[f32]], m: &[f32], stride: usize, outs: &mut [&mut [f32]]);

/// `outs[h][j] = Σ_i xs[h][i] · f32(m[i·stride + j])` over halves (see
/// [`Exec::dot_cols_f16`]).
pub type DotColsF16 = fn(xs: &[&[f32]], m: &[half::f16], stride: usize, outs: &mut [&mut [f32]]);

/// `x_i ← exp(x_i)` in place (see [`Exec::exp_f32`]).
pub type ExpF32 = fn(x: &mut [f32]);

/// Execution settings of one compute call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exec {
    isa: Isa,
    threads: usize,
}

impl Exec {
    /// `isa` (must be available on this CPU) on `threads` threads (≥ 1).
    pub fn new(isa: Isa, threads: usize) -> Result<Exec> {
        isa.require()?;
        if threads == 0 {
            return Err(KernelError::Threads(
                "thread count must be at least 1".into(),
            ));
        }
        Ok(Exec { isa, threads })
    }

    /// The best ISA, single-threaded.
    pub fn best() -> Exec {
        Exec {
            isa: Isa::best(),
            threads: 1,
        }
    }

    /// The best ISA on all available cores.
    pub fn auto() -> Exec {
        Exec {
            isa: Isa::best(),
            threads: default_threads(),
        }
    }

    /// Like [`Exec::auto`], but `BITNET_ISA` and `BITNET_THREADS` (read here, once) override
    /// the choice; meant for benches and experiments.
    pub fn from_env() -> Result<Exec> {
        let isa = match std::env::var("BITNET_ISA") {
            Ok(name) => Isa::parse(&name)?,
            Err(_) => Isa::best(),
        };
        let threads = match std::env::var("BITNET_THREADS") {
            Ok(t) => t
                .parse()
                .map_err(|_| KernelError::Threads(format!("BITNET_THREADS={t} is not a number")))?,
            Err(_) => default_threads(),
        };
        Exec::new(isa, threads)
    }

    /// The instruction set.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The thread count.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Same settings with another thread count.
    pub fn with_threads(self, threads: usize) -> Result<Exec> {
        Exec::new(self.isa, threads)
    }

    /// This ISA's `y_i = y_i + a · x_i` over `min(len)` elements, each product and sum
    /// rounded to f32 (never fused): the bits of the plain loop on every ISA. For callers'
    /// own f32 loops that must match a sequential reference (attention itself now goes
    /// through [`Exec::dot_cols_f32`], which keeps its sums in registers).
    pub fn axpy_f32(&self) -> Result<AxpyF32> {
        Ok(self.kernels()?.axpy_f32)
    }

    /// This ISA's `outs[h][j] = Σ_i xs[h][i] · m[i·stride + j]` (`j < outs[h].len()`) for 1 to
    /// [`DOT_COLS_MAX`] vectors `xs[h]` of one length over one matrix, read once
    /// for all of them. Each sum runs from `+0.0` in `i` order with products and sums rounded
    /// separately: the bits of the plain loop. E.g. the attention scores of the query heads
    /// that share one key head (over its transposed keys), or their weighted sums of value
    /// rows. Panics on more vectors, unequal lengths, or a matrix too short.
    pub fn dot_cols_f32(&self) -> Result<DotColsF32> {
        Ok(self.kernels()?.dot_cols_f32)
    }

    /// [`Exec::dot_cols_f32`] over a matrix of halves (e.g. an f16 key/value cache), each
    /// widened to f32 as it is read: the bits of widening the matrix first (the widening
    /// is exact) and running the plain loop, with half the bytes read and no widened copy.
    pub fn dot_cols_f16(&self) -> Result<DotColsF16> {
        Ok(self.kernels()?.dot_cols_f16)
    }

    /// This ISA's `x_i ← exp(x_i)` with the bits of `f32::exp` for every input (the
    /// platform's `expf`, assumed within 0.504 ulp as glibc's and musl's are; the lab checks
    /// every input of the fast range against it): e.g. a softmax's exponentials.
    pub fn exp_f32(&self) -> Result<ExpF32> {
        Ok(self.kernels()?.exp_f32)
    }

    pub(crate) fn kernels(&self) -> Result<&'static KernelTable> {
        simd::table(self.isa)
    }

    /// Runs `f(first_row, out)` over chunks of rows, where `out` is the chunk's slice of the
    /// row-major `[rows, tokens]` result; then lays the result out as `y = [tokens, rows]`.
    pub(crate) fn for_row_chunks<F>(
        &self,
        rows: usize,
        tokens: usize,
        work: usize,
        y: &mut [f32],
        f: F,
    ) where
        F: Fn(usize, &mut [f32]) + Sync,
    {
        if tokens == 1 {
            self.run_chunks(rows, 1, work, y, &f);
            return;
        }
        let mut yt = vec![0f32; rows * tokens];
        self.run_chunks(rows, tokens, work, &mut yt, &f);
        // Transpose in blocks of TRANSPOSE_TOKENS tokens: each block reads `yt` a cache line
        // per row and writes that many sequential streams of `y`; runs of blocks in parallel.
        let transpose = |t0: usize, yb: &mut [f32]| {
            let n = yb.len() / rows;
            for (r, src) in yt.chunks_exact(tokens).enumerate() {
                for (j, &v) in src[t0..t0 + n].iter().enumerate() {
                    yb[j * rows + r] = v;
                }
            }
        };
        self.for_token_groups(y, rows, TRANSPOSE_TOKENS, work, |t0, ys| {
            for (b, yb) in ys.chunks_mut(TRANSPOSE_TOKENS * rows).enumerate() {
                transpose(t0 + b * TRANSPOSE_TOKENS, yb);
            }
        });
    }

    /// Runs `f(first_item, items, scratch)` over contiguous groups of the `item_len`-long
    /// items of `out`, one group per part, each part with its own `scratch_len` slice of
    /// `scratch`. Parts: this Exec's threads, at most `scratch.len() / scratch_len`, and 1
    /// when `work` (multiply-adds of the whole call) is too small to pay for a wake-up.
    /// Every item is computed by one call of `f` whatever the split, so callers that treat
    /// items independently get identical bits for any thread count.
    ///
    /// # Panics
    /// If `item_len` or `scratch_len` is 0, `out` is not whole items, or `scratch` is shorter
    /// than `scratch_len` (caller bugs, not data errors).
    pub fn for_item_groups<T, S, F>(
        &self,
        out: &mut [T],
        item_len: usize,
        scratch: &mut [S],
        scratch_len: usize,
        work: usize,
        f: F,
    ) where
        T: Send,
        S: Send,
        F: Fn(usize, &mut [T], &mut [S]) + Sync,
    {
        assert!(
            scratch_len > 0 && scratch.len() >= scratch_len,
            "scratch per part"
        );
        let max_parts = scratch.len() / scratch_len;
        self.run_groups(
            out,
            item_len,
            scratch,
            |_| scratch_len,
            max_parts,
            work,
            1,
            f,
        );
    }

    /// Runs `f(first_item, a_items, b_items)` over contiguous groups of items that own
    /// `a_len` elements of `a` and `b_len` of `b` each (e.g. a matrix's rows and their
    /// scales), one group per thread when `work` is large enough (see
    /// [`for_item_groups`](Self::for_item_groups)).
    ///
    /// # Panics
    /// If `a_len` or `b_len` is 0, or `a` and `b` do not hold the same number of items.
    pub fn for_paired_items<A, B, F>(
        &self,
        a: &mut [A],
        a_len: usize,
        b: &mut [B],
        b_len: usize,
        work: usize,
        f: F,
    ) where
        A: Send,
        B: Send,
        F: Fn(usize, &mut [A], &mut [B]) + Sync,
    {
        assert!(
            b_len > 0 && a_len > 0 && b.len() * a_len == a.len() * b_len,
            "item counts"
        );
        self.run_groups(a, a_len, b, |per| per * b_len, usize::MAX, work, 1, f);
    }

    /// Runs `f(first_token, y_tokens)` over groups of whole token rows of `y = [tokens,
    /// rows]`: groups of at most `TOKEN_CHUNK` (16) tokens, each a multiple of `align` tokens
    /// (but the last), dealt to the threads in contiguous runs with tail stealing when `work`
    /// is large enough (a descheduled thread's last groups go to the others). For prefill
    /// kernels that compute every row for their own tokens and so write `y` in place.
    ///
    /// # Panics
    /// If `rows` or `align` is 0 or `y` is not whole token rows.
    pub fn for_token_groups<F>(&self, y: &mut [f32], rows: usize, align: usize, work: usize, f: F)
    where
        F: Fn(usize, &mut [f32]) + Sync,
    {
        assert!(
            rows > 0 && align > 0 && y.len().is_multiple_of(rows),
            "whole token rows"
        );
        let tokens = y.len() / rows;
        let parts = if work < PARALLEL_MIN_WEIGHTS {
            1
        } else {
            self.threads.min(MAX_RUNS).min(tokens.div_ceil(align))
        };
        let team = if parts > 1 { team(self.threads) } else { None };
        let Some(team) = team else {
            f(0, y);
            return;
        };
        let chunk = tokens
            .div_ceil(parts)
            .min(TOKEN_CHUNK)
            .next_multiple_of(align);
        spread(
            &team,
            y,
            chunk * rows,
            &mut [0u8; 0],
            0,
            parts,
            &|c, ys, _| f(c * chunk, ys),
        );
    }

    /// Runs `f(first_token, a_rows, b_rows)` over contiguous groups of tokens, in parallel
    /// when `work` (in int8 products' worth) pays for it: `a` holds `a_len` elements per
    /// token and `b` `b_len`, and each call gets the same tokens' rows of both. Every token
    /// is handled by one call whatever the split.
    ///
    /// # Panics
    /// If `a_len` or `b_len` is 0, or `a` and `b` do not hold the same whole number of
    /// tokens (caller bugs).
    pub(crate) fn for_token_rows<A, B, F>(
        &self,
        a: &mut [A],
        a_len: usize,
        b: &mut [B],
        b_len: usize,
        work: usize,
        f: F,
    ) where
        A: Send,
        B: Send,
        F: Fn(usize, &mut [A], &mut [B]) + Sync,
    {
        assert!(
            a_len > 0 && b_len > 0 && a.len() / a_len * b_len == b.len(),
            "the same whole tokens"
        );
        let parts = self.threads;
        self.run_groups(a, a_len, b, |per| per * b_len, parts, work, 1, f);
    }

    /// Splits the items of `a` (`a_len` each) into at most `max_parts` contiguous groups (1
    /// below [`PARALLEL_MIN_WEIGHTS`] of `work`) of a multiple of `align` items (but the
    /// last), hands group `i` the `b_chunk(per)`-long chunk `i` of `b`, and runs them on the
    /// pool.
    #[allow(clippy::too_many_arguments)]
    fn run_groups<A, B, F>(
        &self,
        a: &mut [A],
        a_len: usize,
        b: &mut [B],
        b_chunk: impl Fn(usize) -> usize,
        max_parts: usize,
        work: usize,
        align: usize,
        f: F,
    ) where
        A: Send,
        B: Send,
        F: Fn(usize, &mut [A], &mut [B]) + Sync,
    {
        assert!(
            a_len > 0 && align > 0 && a.len().is_multiple_of(a_len),
            "whole items"
        );
        let items = a.len() / a_len;
        let parts = if work < PARALLEL_MIN_WEIGHTS {
            1
        } else {
            self.threads.min(max_parts).min(items).min(MAX_RUNS)
        };
        let team = if parts > 1 { team(self.threads) } else { None };
        let Some(team) = team else {
            let n = b_chunk(items.max(1)).min(b.len());
            f(0, a, &mut b[..n]);
            return;
        };
        let per = items.div_ceil(parts).next_multiple_of(align);
        let b_len = b_chunk(per);
        spread(&team, a, per * a_len, b, b_len, parts, &|c, x, y| {
            f(c * per, x, y)
        });
    }

    fn run_chunks<F>(&self, rows: usize, tokens: usize, work: usize, out: &mut [f32], f: &F)
    where
        F: Fn(usize, &mut [f32]) + Sync,
    {
        let team = if self.threads == 1 || work < PARALLEL_MIN_WEIGHTS || rows <= ROW_CHUNK {
            None
        } else {
            team(self.threads)
        };
        let Some(team) = team else {
            for (i, chunk) in out.chunks_mut(ROW_CHUNK * tokens).enumerate() {
                f(i * ROW_CHUNK, chunk);
            }
            return;
        };
        let parts = self.threads.min(MAX_RUNS);
        spread(
            &team,
            out,
            ROW_CHUNK * tokens,
            &mut [0u8; 0],
            0,
            parts,
            &|c, o, _| f(c * ROW_CHUNK, o),
        );
    }
}

/// `f(chunk, a_chunk, b_chunk)` of [`spread`].
type ChunkFn<'f, A, B> = dyn Fn(usize, &mut [A], &mut [B]) + Sync + 'f;

/// One run of consecutive chunks of a call's work: chunk `first` onwards.
struct Run<'a, A, B> {
    first: usize,
    a: &'a mut [A],
    b: &'a mut [B],
}

/// Runs `f(chunk, a_chunk, b_chunk)` over the `a_len`-element chunks of `a` (the last may be
/// shorter) and their `b_len`-element chunks of `b` (clamped to `b`), on `team`. The chunks
/// are dealt as `parts` contiguous runs; participant `i` works through run `i` from the
/// front, then takes chunks from the back of the other runs, so a participant slowed down
/// by the machine leaves its tail to the others. Every chunk is processed exactly once, in
/// one call of `f`, wherever it runs.
fn spread<A: Send, B: Send>(
    team: &Team,
    a: &mut [A],
    a_len: usize,
    b: &mut [B],
    b_len: usize,
    parts: usize,
    f: &ChunkFn<'_, A, B>,
) {
    let chunks = a.len().div_ceil(a_len);
    let per_run = chunks.div_ceil(parts.clamp(1, MAX_RUNS));
    let runs: [Mutex<Run<A, B>>; MAX_RUNS] = std::array::from_fn(|_| {
        Mutex::new(Run {
            first: 0,
            a: Default::default(),
            b: Default::default(),
        })
    });
    let (mut a, mut b) = (a, b);
    let mut n = 0;
    while !a.is_empty() {
        let (ra, rest_a) = a.split_at_mut((per_run * a_len).min(a.len()));
        let (rb, rest_b) = b.split_at_mut((per_run * b_len).min(b.len()));
        *lock(&runs[n]) = Run {
            first: n * per_run,
            a: ra,
            b: rb,
        };
        (a, b) = (rest_a, rest_b);
        n += 1;
    }
    // Front of a run: the next chunk in order.
    let front = |r: usize| {
        let mut run = lock(&runs[r]);
        if run.a.is_empty() {
            return None;
        }
        let (na, nb) = (a_len.min(run.a.len()), b_len.min(run.b.len()));
        let (xa, rest_a) = std::mem::take(&mut run.a).split_at_mut(na);
        let (xb, rest_b) = std::mem::take(&mut run.b).split_at_mut(nb);
        let c = run.first;
        (run.first, run.a, run.b) = (c + 1, rest_a, rest_b);
        Some((c, xa, xb))
    };
    // Back of a run: its last chunk (chunk boundaries stay where the front would put them).
    let back = |r: usize| {
        let mut run = lock(&runs[r]);
        if run.a.is_empty() {
            return None;
        }
        let last = run.a.len().div_ceil(a_len) - 1;
        let cut_b = (last * b_len).min(run.b.len());
        let (rest_a, xa) = std::mem::take(&mut run.a).split_at_mut(last * a_len);
        let (rest_b, xb) = std::mem::take(&mut run.b).split_at_mut(cut_b);
        (run.a, run.b) = (rest_a, rest_b);
        Some((run.first + last, xa, xb))
    };
    team.run(&|i| {
        if i < n {
            while let Some((c, x, y)) = front(i) {
                f(c, x, y);
            }
        }
        for k in 1..=n {
            let r = (i + k) % n;
            while let Some((c, x, y)) = back(r) {
                f(c, x, y);
            }
        }
    });
}

/// Locks a run; a panic elsewhere never leaves a run half-updated, so poison is ignored.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Cores available to this process.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The persistent team for a thread count (built once, kept for the process; its idle
/// workers park, so an idle team costs no CPU on a shared machine). `None` if the threads
/// could not be spawned (the caller then runs serially).
fn team(threads: usize) -> Option<Arc<Team>> {
    type Teams = Mutex<Vec<(usize, Arc<Team>)>>;
    static TEAMS: OnceLock<Teams> = OnceLock::new();
    let teams = TEAMS.get_or_init(|| Mutex::new(Vec::new()));
    let mut teams = lock(teams);
    if let Some((_, t)) = teams.iter().find(|(t, _)| *t == threads) {
        return Some(t.clone());
    }
    let t = Arc::new(Team::new(threads, "bitnet").ok()?);
    debug_assert_eq!(t.size(), threads);
    teams.push((threads, t.clone()));
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every item is visited exactly once with its own index, and each part gets its own
    /// scratch, for small (serial) and large (parallel) work and any thread count.
    #[test]
    fn item_groups_cover_every_item_once() {
        for threads in 1..=4 {
            let exec = Exec::new(Isa::Scalar, threads).unwrap();
            for items in [1usize, 2, 3, 7, 64] {
                for work in [0, PARALLEL_MIN_WEIGHTS] {
                    let mut out = vec![0u32; items * 3];
                    let mut scratch = vec![0u8; 5 * 4];
                    exec.for_item_groups(&mut out, 3, &mut scratch, 5, work, |first, o, sc| {
                        assert_eq!(sc.len(), 5);
                        sc.fill(1);
                        for (i, it) in o.chunks_exact_mut(3).enumerate() {
                            it.iter_mut().for_each(|x| *x += (first + i) as u32 + 1);
                        }
                    });
                    let want: Vec<u32> = (0..items).flat_map(|i| [i as u32 + 1; 3]).collect();
                    assert_eq!(out, want, "threads {threads} items {items} work {work}");
                    let used = scratch.iter().filter(|&&b| b == 1).count();
                    let parts = if work == 0 {
                        1
                    } else {
                        threads.min(4).min(items)
                    };
                    assert_eq!(
                        used,
                        5 * parts,
                        "threads {threads} items {items} work {work}"
                    );
                }
            }
        }
    }

    /// Each item's `a` and `b` elements arrive together, once, for any split.
    #[test]
    fn paired_items_stay_paired() {
        for threads in 1..=3 {
            let exec = Exec::new(Isa::Scalar, threads).unwrap();
            for items in [1usize, 2, 5, 33] {
                for work in [0, PARALLEL_MIN_WEIGHTS] {
                    let mut a = vec![0u32; items * 4];
                    let mut b = vec![0u32; items * 2];
                    exec.for_paired_items(&mut a, 4, &mut b, 2, work, |first, x, y| {
                        assert_eq!(x.len() / 4, y.len() / 2);
                        for (i, (xa, yb)) in
                            x.chunks_exact_mut(4).zip(y.chunks_exact_mut(2)).enumerate()
                        {
                            xa.iter_mut().for_each(|v| *v += (first + i) as u32);
                            yb.iter_mut().for_each(|v| *v += (first + i) as u32);
                        }
                    });
                    let want_a: Vec<u32> = (0..items as u32).flat_map(|i| [i; 4]).collect();
                    let want_b: Vec<u32> = (0..items as u32).flat_map(|i| [i; 2]).collect();
                    assert_eq!((a, b), (want_a, want_b), "threads {threads} items {items}");
                }
            }
        }
    }

    /// The ISA's axpy rounds like the plain loop: equal bits on every ISA, every length
    /// around the vector widths (products and sums rounded separately, never fused).
    #[test]
    fn axpy_f32_has_the_plain_loops_bits_on_every_isa() {
        let mut rng = crate::testing::lcg(0x9e37_79b9_7f4a_7c15u64);
        let mut next = || ((rng() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 7.0;
        for isa in Isa::available() {
            let axpy = Exec::new(isa, 1).unwrap().axpy_f32().unwrap();
            for n in (0..=70).chain([127, 128, 129, 1000]) {
                let x: Vec<f32> = (0..n).map(|_| next()).collect();
                let y0: Vec<f32> = (0..n).map(|_| next()).collect();
                let a = next();
                let want: Vec<u32> = y0
                    .iter()
                    .zip(&x)
                    .map(|(&y, &x)| (y + a * x).to_bits())
                    .collect();
                let mut y = y0.clone();
                axpy(a, &x, &mut y);
                let got: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
                assert_eq!(got, want, "{isa} n {n}");
            }
        }
    }

    /// Token runs start at multiples of the alignment, cover every token row once, and hand
    /// each run its own rows of `y`.
    #[test]
    fn token_groups_are_aligned_and_cover_every_token() {
        for threads in 1..=3 {
            let exec = Exec::new(Isa::Scalar, threads).unwrap();
            for tokens in [1usize, 4, 5, 16, 37, 128] {
                let rows = 3;
                let mut y = vec![0f32; tokens * rows];
                exec.for_token_groups(&mut y, rows, 4, PARALLEL_MIN_WEIGHTS, |t0, ys| {
                    assert!(t0.is_multiple_of(4), "run starts at {t0}");
                    for (i, v) in ys.iter_mut().enumerate() {
                        *v += (t0 * rows + i) as f32 + 1.0;
                    }
                });
                let want: Vec<f32> = (0..tokens * rows).map(|i| i as f32 + 1.0).collect();
                assert_eq!(y, want, "threads {threads} tokens {tokens}");
            }
        }
    }

    /// `dot_cols_f32`, and `dot_cols_f16` over the same matrix in halves, have the plain
    /// loop's bits (over the widened halves) on every ISA, for each of 1 to `DOT_COLS_MAX`
    /// vectors over one matrix: column counts around the vector widths and block sizes,
    /// strides wider than the columns, one and many rows.
    #[test]
    fn dot_cols_have_the_plain_loops_bits_on_every_isa() {
        let mut rng = crate::testing::lcg(0x2545_f491_4f6c_dd1du64);
        let mut next = || ((rng() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 5.0;
        for isa in Isa::available() {
            let k = Exec::new(isa, 1).unwrap().dot_cols_f32().unwrap();
            let k16 = Exec::new(isa, 1).unwrap().dot_cols_f16().unwrap();
            // Under Miri (every lane interpreted) 9 rows stand for 128.
            let tall = if cfg!(miri) { 9 } else { 128 };
            for (rows, n, vectors) in (1..=DOT_COLS_MAX).flat_map(|v| {
                [1usize, 2, 7, tall].into_iter().flat_map(move |rows| {
                    [0usize, 1, 7, 15, 16, 17, 33, 47, 64, 65, 80, 128, 200]
                        .into_iter()
                        .map(move |n| (rows, n, v))
                })
            }) {
                // Strides wider than the rows, and a matrix that ends at the last column.
                let (stride, pad) = if n % 2 == 0 { (n + 5, 5) } else { (n, 0) };
                let len = (rows * stride).saturating_sub(pad);
                let m: Vec<f32> = (0..len).map(|_| next()).collect();
                let xs: Vec<Vec<f32>> = (0..vectors)
                    .map(|_| (0..rows).map(|_| next()).collect())
                    .collect();
                let plain = |m: &[f32]| -> Vec<Vec<f32>> {
                    xs.iter()
                        .map(|x| {
                            let mut want = vec![0f32; n];
                            for (i, &xi) in x.iter().enumerate() {
                                for (j, w) in want.iter_mut().enumerate() {
                                    *w += xi * m[i * stride + j];
                                }
                            }
                            want
                        })
                        .collect()
                };
                let x_refs: Vec<&[f32]> = xs.iter().map(Vec::as_slice).collect();
                let bits = |v: &[Vec<f32>]| {
                    v.iter()
                        .map(|r| r.iter().map(|f| f.to_bits()).collect::<Vec<_>>())
                        .collect::<Vec<_>>()
                };
                let mut got = vec![vec![f32::NAN; n]; vectors];
                let mut out_refs: Vec<&mut [f32]> = got.iter_mut().map(Vec::as_mut_slice).collect();
                k(&x_refs, &m, stride, &mut out_refs);
                let case = format!("{isa} rows {rows} n {n} vectors {vectors}");
                assert_eq!(bits(&got), bits(&plain(&m)), "f32 {case}");
                // Halves of the same values; the stride's padding holds infinities, which
                // must not reach a kept column.
                let m16: Vec<half::f16> = (0..len)
                    .map(|i| match i % stride.max(1) < n {
                        true => half::f16::from_f32_const(m[i]), // no `vcvtps2ph` in Miri
                        false => half::f16::INFINITY,
                    })
                    .collect();
                let widened: Vec<f32> = m16.iter().map(|h| h.to_f32()).collect();
                let mut got = vec![vec![f32::NAN; n]; vectors];
                let mut out_refs: Vec<&mut [f32]> = got.iter_mut().map(Vec::as_mut_slice).collect();
                k16(&x_refs, &m16, stride, &mut out_refs);
                assert_eq!(bits(&got), bits(&plain(&widened)), "f16 {case}");
            }
        }
    }

    /// `dot_cols_f32` and `dot_cols_f16` refuse shapes they cannot compute (never a silent
    /// partial result).
    #[test]
    fn dot_cols_panic_on_bad_shapes() {
        let m = vec![1f32; 64];
        let (x, y): (&[f32], &[f32]) = (&[1.0; 4], &[1.0; 3]);
        for isa in Isa::available() {
            let k = Exec::new(isa, 1).unwrap().dot_cols_f32().unwrap();
            let run = |xs: &[&[f32]], n: &[usize], stride: usize| {
                let mut outs: Vec<Vec<f32>> = n.iter().map(|&n| vec![0f32; n]).collect();
                let mut refs: Vec<&mut [f32]> = outs.iter_mut().map(Vec::as_mut_slice).collect();
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    k(xs, &m, stride, &mut refs)
                }))
                .is_err()
            };
            assert!(!run(&[x, x], &[8, 8], 16), "{isa}: a good shape");
            assert!(run(&[], &[], 16), "{isa}: no vectors");
            assert!(run(&[x; 5], &[8; 5], 16), "{isa}: too many vectors");
            assert!(run(&[x, x], &[8], 16), "{isa}: fewer outputs");
            assert!(run(&[x, y], &[8, 8], 16), "{isa}: vectors of two lengths");
            assert!(run(&[x, x], &[8, 9], 16), "{isa}: outputs of two lengths");
            assert!(run(&[x], &[8], 20), "{isa}: matrix too short");
            // The halves' kernel shares the checks; its own matrix too short, and fine.
            let k16 = Exec::new(isa, 1).unwrap().dot_cols_f16().unwrap();
            let m16 = vec![half::f16::ONE; 64];
            let run16 = |stride: usize| {
                let mut out = [0f32; 8];
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    k16(&[x], &m16, stride, &mut [&mut out[..]])
                }))
                .is_err()
            };
            assert!(!run16(16), "{isa}: f16, a good shape");
            assert!(run16(20), "{isa}: f16, matrix too short");
        }
    }
}
