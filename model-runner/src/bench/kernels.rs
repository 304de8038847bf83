//! The kernel matrix: format × op × ISA × threads × 2B-4T shape × regime.
//!
//! - **hot**: one matrix, called over and over (it stays in whichever cache holds it);
//! - **cold**: a pool of identical copies of the matrix at distinct addresses, at least
//!   `cold_bytes` (128 MiB by default, 4x the L3) in all, called in rotation, so every call
//!   reads its weights from DRAM.
//!
//! Figures are the fastest call of many (the limit a quiet machine gives), with the median
//! beside it, and each is set against the roofline measured in the same run.

use std::hint::black_box;
use std::time::Instant;

use bitnet_kernels::{
    Activations, Exec, Format, I2SQk256NoScale, I2s, Isa, KernelError, TernaryMatrix, Tq1_0, Tq2_0,
};

use super::progress::Progress;
use super::receipt::{KernelFigure, complete_figure};
use super::roofline::{Level, Roofline};
use super::{Budget, Rng, measure_after};

/// An operation of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// Whole matrix to i8 ternary values (`unpack_i8`; no ISA or thread choice in the API).
    Unpack,
    /// f32-activation GEMV (`gemm_f32`, 1 token).
    GemvF32,
    /// int8-activation GEMV, decode (`gemm_quantized`, 1 token, activations quantized
    /// beforehand).
    GemvI8,
    /// int8-activation GEMM, prefill (`gemm_quantized`, 128 tokens by default).
    GemmI8,
    /// Activation quantization of the prefill batch (`quantize_activations`).
    ActQuant,
}

impl Op {
    /// Every op.
    pub const ALL: [Op; 5] = [
        Op::Unpack,
        Op::GemvF32,
        Op::GemvI8,
        Op::GemmI8,
        Op::ActQuant,
    ];

    /// Name used on the command line and in kernel names.
    pub fn name(self) -> &'static str {
        match self {
            Op::Unpack => "unpack",
            Op::GemvF32 => "gemv_f32",
            Op::GemvI8 => "gemv_i8",
            Op::GemmI8 => "gemm_i8",
            Op::ActQuant => "act_quant",
        }
    }

    /// Parses [`Op::name`].
    pub fn parse(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.name() == s)
    }

    /// Whether the op multiplies int8 activations (bound by the int8 peak too).
    pub fn is_int8_product(self) -> bool {
        matches!(self, Op::GemvI8 | Op::GemmI8)
    }
}

/// `format.op.isa`, the name a receipt lists for an executed kernel.
pub fn kernel_name(format: Format, op: Op, isa: Isa) -> String {
    format!("{}.{}.{}", format.name(), op.name(), isa.name())
}

/// Splits a kernel name into its parts, if every part is known.
pub fn parse_kernel_name(name: &str) -> Option<(Format, Op, Isa)> {
    let mut it = name.split('.');
    let (f, o, i) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || i == "auto" {
        return None;
    }
    Some((Format::parse(f).ok()?, Op::parse(o)?, Isa::parse(i).ok()?))
}

/// A matrix shape: `rows` outputs by `cols` inputs (GEMV `cols → rows`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    /// Output dimension.
    pub rows: usize,
    /// Input dimension.
    pub cols: usize,
}

impl Shape {
    /// The four projection shapes of BitNet b1.58 2B-4T (hidden 2560, FFN 6912, KV 640).
    pub const B2_4T: [Shape; 4] = [
        Shape {
            rows: 2560,
            cols: 2560,
        },
        Shape {
            rows: 640,
            cols: 2560,
        },
        Shape {
            rows: 6912,
            cols: 2560,
        },
        Shape {
            rows: 2560,
            cols: 6912,
        },
    ];

    /// `ROWSxCOLS`.
    pub fn name(self) -> String {
        format!("{}x{}", self.rows, self.cols)
    }

    /// Parses `ROWSxCOLS`.
    pub fn parse(s: &str) -> Option<Shape> {
        let (r, c) = s.split_once(['x', 'X', '*'])?;
        let shape = Shape {
            rows: r.trim().parse().ok()?,
            cols: c.trim().parse().ok()?,
        };
        (shape.rows > 0 && shape.cols > 0).then_some(shape)
    }
}

/// Where the weights come from on each call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Regime {
    /// One matrix, repeated.
    Hot,
    /// A rotation through more distinct matrices than the caches hold.
    Cold,
}

impl Regime {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Regime::Hot => "hot",
            Regime::Cold => "cold",
        }
    }
    /// Parses [`Regime::name`].
    pub fn parse(s: &str) -> Option<Regime> {
        match s {
            "hot" => Some(Regime::Hot),
            "cold" => Some(Regime::Cold),
            _ => None,
        }
    }
}

/// Copies of one random matrix at distinct 64-byte-aligned addresses in one buffer.
#[derive(Debug)]
pub struct Pool {
    format: Format,
    rows: usize,
    cols: usize,
    matrix_len: usize,
    slot: usize,
    offset: usize,
    n: usize,
    buf: Vec<u8>,
}

impl Pool {
    /// `n` copies of a random `rows × cols` matrix of `format` (codes 0..=2, seeded).
    pub fn build(
        format: Format,
        rows: usize,
        cols: usize,
        n: usize,
        seed: u64,
    ) -> Result<Pool, KernelError> {
        let n = n.max(1);
        let bytes = random_matrix_bytes(format, rows, cols, seed)?;
        let matrix_len = bytes.len();
        let slot = matrix_len.div_ceil(64) * 64;
        let mut buf = vec![0u8; slot * n + 64];
        let offset = (64 - buf.as_ptr() as usize % 64) % 64;
        for i in 0..n {
            let at = offset + i * slot;
            buf[at..at + matrix_len].copy_from_slice(&bytes);
        }
        Ok(Pool {
            format,
            rows,
            cols,
            matrix_len,
            slot,
            offset,
            n,
            buf,
        })
    }

    /// Copies needed so that the pool is at least `bytes` large (at least 2).
    pub fn copies_for(format: Format, shape: Shape, bytes: usize) -> Result<usize, KernelError> {
        let len = format.packed_len(shape.rows, shape.cols)?;
        Ok(bytes.div_ceil(len.max(1)).max(2))
    }

    /// Number of copies.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Always false (a pool has at least one copy).
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Packed bytes of one matrix.
    pub fn weight_bytes(&self) -> usize {
        self.matrix_len
    }

    /// Copy `i % len()` as a borrowed matrix.
    pub fn matrix(&self, i: usize) -> Box<dyn TernaryMatrix + '_> {
        let at = self.offset + (i % self.n) * self.slot;
        let b = &self.buf[at..at + self.matrix_len];
        let (r, c) = (self.rows, self.cols);
        // The bytes were produced by the format's own packer and validated by its
        // constructor in `build`, so the same constructor accepts them again.
        let m: Result<Box<dyn TernaryMatrix + '_>, KernelError> = match self.format {
            Format::I2s => I2s::new(r, c, b).map(|m| Box::new(m) as _),
            Format::Qk256 => {
                I2SQk256NoScale::new(r, c, b).map(|m| Box::new(m.with_scale(0.5)) as _)
            }
            Format::Tq2_0 => Tq2_0::new(r, c, b).map(|m| Box::new(m) as _),
            Format::Tq1_0 => Tq1_0::new(r, c, b).map(|m| Box::new(m) as _),
        };
        m.unwrap_or_else(|e| unreachable!("pool bytes were validated at build: {e}"))
    }
}

/// Packed bytes of a random matrix (codes uniform in 0..=2, block scales in [0.5, 1)).
pub fn random_matrix_bytes(
    format: Format,
    rows: usize,
    cols: usize,
    seed: u64,
) -> Result<Vec<u8>, KernelError> {
    format.packed_len(rows, cols)?;
    let mut rng = Rng::new(seed ^ 0x5eed_0000);
    let codes: Vec<u8> = (0..rows * cols)
        .map(|_| ((rng.next_u64() >> 32) % 3) as u8)
        .collect();
    let scales: Vec<f32> = (0..rows * cols / 256)
        .map(|_| 0.75 + 0.25 * rng.f32_signed())
        .collect();
    Ok(match format {
        Format::I2s => I2s::from_codes(&codes, rows, cols, 0.5)?.bytes().to_vec(),
        Format::Qk256 => I2SQk256NoScale::from_codes(&codes, rows, cols)?
            .qs()
            .to_vec(),
        Format::Tq2_0 => Tq2_0::from_codes(&codes, &scales, rows, cols)?
            .bytes()
            .to_vec(),
        Format::Tq1_0 => Tq1_0::from_codes(&codes, &scales, rows, cols)?
            .bytes()
            .to_vec(),
    })
}

/// One cell of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// Packed format.
    pub format: Format,
    /// Operation.
    pub op: Op,
    /// Instruction set.
    pub isa: Isa,
    /// Threads.
    pub threads: usize,
    /// Matrix shape.
    pub shape: Shape,
    /// Tokens (activation rows); 0 for unpack.
    pub tokens: usize,
    /// Hot or cold.
    pub regime: Regime,
}

impl Case {
    /// `format.op.isa`.
    pub fn kernel(&self) -> String {
        kernel_name(self.format, self.op, self.isa)
    }

    /// A one-line label.
    pub fn label(&self) -> String {
        format!(
            "{} {}→{} n={} t{} {}",
            self.kernel(),
            self.shape.cols,
            self.shape.rows,
            self.tokens,
            self.threads,
            self.regime.name()
        )
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Formats.
    pub formats: Vec<Format>,
    /// Operations.
    pub ops: Vec<Op>,
    /// ISAs (each must be available).
    pub isas: Vec<Isa>,
    /// Thread counts.
    pub threads: Vec<usize>,
    /// Shapes.
    pub shapes: Vec<Shape>,
    /// Regimes.
    pub regimes: Vec<Regime>,
    /// Time per case.
    pub budget: Budget,
    /// Total size of a cold pool, bytes.
    pub cold_bytes: usize,
    /// Tokens of the prefill GEMM and of the activation quantizer.
    pub prefill_tokens: usize,
}

impl Config {
    /// Everything: all formats, ops, available ISAs, threads {1, cores}, 2B-4T shapes, both
    /// regimes, 128 MiB cold pools, 128-token prefill.
    pub fn full() -> Config {
        let cores = bitnet_kernels::exec::default_threads();
        let mut threads = vec![1, cores];
        threads.dedup();
        Config {
            formats: Format::ALL.to_vec(),
            ops: Op::ALL.to_vec(),
            isas: Isa::available(),
            threads,
            shapes: Shape::B2_4T.to_vec(),
            regimes: vec![Regime::Hot, Regime::Cold],
            budget: Budget::FULL,
            cold_bytes: 128 << 20,
            prefill_tokens: 128,
        }
    }

    /// The cases, in run order (grouped by shape, then format, so each pool is built once).
    ///
    /// `unpack` takes no ISA or thread count in the API, so it runs once per format, shape
    /// and regime, recorded as scalar on one thread. `act_quant` reads no weights: it runs
    /// hot only, on one thread, once per distinct input width.
    pub fn cases(&self) -> Vec<Case> {
        let mut out = Vec::new();
        let mut seen_cols = Vec::new();
        for &shape in &self.shapes {
            let first_of_cols = !seen_cols.contains(&(shape.cols));
            seen_cols.push(shape.cols);
            for &format in &self.formats {
                if format.packed_len(shape.rows, shape.cols).is_err() {
                    continue;
                }
                for &op in &self.ops {
                    let tokens = match op {
                        Op::Unpack => 0,
                        Op::GemvF32 | Op::GemvI8 => 1,
                        Op::GemmI8 | Op::ActQuant => self.prefill_tokens,
                    };
                    let (isas, threads, regimes): (Vec<Isa>, Vec<usize>, Vec<Regime>) = match op {
                        Op::Unpack => (vec![Isa::Scalar], vec![1], self.regimes.clone()),
                        Op::ActQuant if first_of_cols => {
                            (self.isas.clone(), vec![1], vec![Regime::Hot])
                        }
                        Op::ActQuant => continue,
                        _ => (
                            self.isas.clone(),
                            self.threads.clone(),
                            self.regimes.clone(),
                        ),
                    };
                    for &isa in &isas {
                        for &t in &threads {
                            for &regime in &regimes {
                                out.push(Case {
                                    format,
                                    op,
                                    isa,
                                    threads: t,
                                    shape,
                                    tokens,
                                    regime,
                                });
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// Runs every case of `cfg` against `roof`, with a progress bar on stderr if `progress`.
pub fn run(
    cfg: &Config,
    roof: &Roofline,
    progress: &mut Progress,
) -> Result<Vec<KernelFigure>, String> {
    for &isa in &cfg.isas {
        isa.require().map_err(|e| e.to_string())?;
    }
    let cases = cfg.cases();
    let mut figures = Vec::with_capacity(cases.len());
    let mut i = 0;
    while i < cases.len() {
        // One group: same shape and format.
        let (shape, format) = (cases[i].shape, cases[i].format);
        let mut j = i;
        while j < cases.len() && cases[j].shape == shape && cases[j].format == format {
            j += 1;
        }
        let group = &cases[i..j];
        let cold = group.iter().any(|c| c.regime == Regime::Cold);
        let n = if cold {
            Pool::copies_for(format, shape, cfg.cold_bytes).map_err(|e| e.to_string())?
        } else {
            1
        };
        progress.step(&format!(
            "building {} × {} {}",
            n,
            shape.name(),
            format.name()
        ));
        let pool = Pool::build(format, shape.rows, shape.cols, n, seed_of(format, shape))
            .map_err(|e| format!("{} {}: {e}", format.name(), shape.name()))?;
        let inputs = Inputs::new(shape.cols, cfg.prefill_tokens);
        for case in group {
            progress.step(&case.label());
            let fig = run_case(case, &pool, &inputs, cfg.budget, roof)
                .map_err(|e| format!("{}: {e}", case.label()))?;
            figures.push(fig);
            progress.inc();
        }
        i = j;
    }
    Ok(figures)
}

fn seed_of(format: Format, shape: Shape) -> u64 {
    (shape.rows as u64) << 32 ^ (shape.cols as u64) << 8 ^ format as u64
}

/// Random activations for one input width.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// One token.
    pub x1: Vec<f32>,
    /// The prefill batch.
    pub xn: Vec<f32>,
    /// Tokens in `xn`.
    pub tokens: usize,
}

impl Inputs {
    /// Activations for `cols`-wide inputs, `tokens` in the batch.
    pub fn new(cols: usize, tokens: usize) -> Inputs {
        let mut rng = Rng::new(cols as u64 * 31 + tokens as u64);
        let tokens = tokens.max(1);
        Inputs {
            x1: (0..cols).map(|_| rng.f32_signed()).collect(),
            xn: (0..cols * tokens).map(|_| rng.f32_signed()).collect(),
            tokens,
        }
    }
}

/// Everything one call of a case needs, prepared outside the timed region.
pub struct Prepared<'a> {
    case: Case,
    exec: Exec,
    mats: Vec<Box<dyn TernaryMatrix + 'a>>,
    acts: Option<Activations>,
    inputs: &'a Inputs,
    y: Vec<f32>,
    unpacked: Vec<i8>,
}

impl<'a> Prepared<'a> {
    /// Prepares `case` over `pool` (its matrices, quantized activations, outputs).
    pub fn new(
        case: &Case,
        pool: &'a Pool,
        inputs: &'a Inputs,
    ) -> Result<Prepared<'a>, KernelError> {
        let exec = Exec::new(case.isa, case.threads)?;
        let n = match case.regime {
            Regime::Hot => 1,
            Regime::Cold => pool.len(),
        };
        let mats: Vec<_> = (0..n).map(|i| pool.matrix(i)).collect();
        let (rows, cols) = (case.shape.rows, case.shape.cols);
        let acts = match case.op {
            Op::GemvI8 => Some(mats[0].quantize_activations(&inputs.x1, 1, &exec)?),
            Op::GemmI8 => Some(mats[0].quantize_activations(&inputs.xn, inputs.tokens, &exec)?),
            _ => None,
        };
        let y = vec![0f32; rows * case.tokens.max(1)];
        let unpacked = if case.op == Op::Unpack {
            vec![0i8; rows * cols]
        } else {
            Vec::new()
        };
        Ok(Prepared {
            case: *case,
            exec,
            mats,
            acts,
            inputs,
            y,
            unpacked,
        })
    }

    /// One call on matrix `i` (rotating through the pool when cold).
    pub fn call(&mut self, i: usize) -> Result<(), KernelError> {
        let m = &self.mats[i % self.mats.len()];
        match self.case.op {
            Op::Unpack => m.unpack_i8(&mut self.unpacked),
            Op::GemvF32 => m.gemm_f32(&self.inputs.x1, 1, &mut self.y, &self.exec),
            Op::GemvI8 | Op::GemmI8 => {
                let acts = self
                    .acts
                    .as_ref()
                    .ok_or_else(|| KernelError::WrongActivations {
                        format: self.case.format,
                        got: "none".into(),
                        expected: "quantized activations".into(),
                    })?;
                m.gemm_quantized(acts, &mut self.y, &self.exec)
            }
            Op::ActQuant => m
                .quantize_activations(&self.inputs.xn, self.inputs.tokens, &self.exec)
                .map(|a| {
                    black_box(a);
                }),
        }?;
        black_box(&mut self.y);
        black_box(&mut self.unpacked);
        Ok(())
    }
}

/// Bytes a call of `case` moves through the memory level that bounds it, and the work it
/// does (weights, weight·token products, or activation elements).
pub fn traffic(case: &Case, weight_bytes: usize) -> (u64, u64) {
    let (rows, cols, n) = (
        case.shape.rows as u64,
        case.shape.cols as u64,
        case.tokens as u64,
    );
    let w = weight_bytes as u64;
    match case.op {
        Op::Unpack => (w + rows * cols, rows * cols),
        Op::GemvF32 => (w + 4 * cols + 4 * rows, rows * cols),
        Op::GemvI8 => (w + cols + 4 * rows, rows * cols),
        Op::GemmI8 => (w + n * cols + 4 * n * rows, rows * cols * n),
        Op::ActQuant => (5 * n * cols, n * cols),
    }
}

/// Measures one case and sets it against the roofline.
pub fn run_case(
    case: &Case,
    pool: &Pool,
    inputs: &Inputs,
    budget: Budget,
    roof: &Roofline,
) -> Result<KernelFigure, KernelError> {
    let mut p = Prepared::new(case, pool, inputs)?;
    let t = Instant::now();
    p.call(0)?;
    let timing = measure_after(budget, t.elapsed(), |i| {
        let _ = p.call(i);
    });
    let weight_bytes = if case.op == Op::ActQuant {
        0
    } else {
        pool.weight_bytes()
    };
    let (bytes_moved, work) = traffic(case, pool.weight_bytes());
    let level = match case.regime {
        Regime::Cold => Level::Dram,
        Regime::Hot => roof.hot_level(bytes_moved, case.threads),
    };
    let mut fig = KernelFigure {
        kernel: case.kernel(),
        format: case.format.name().to_string(),
        op: case.op.name().to_string(),
        isa: case.isa.name().to_string(),
        threads: case.threads,
        rows: case.shape.rows,
        cols: case.shape.cols,
        tokens: case.tokens,
        regime: case.regime.name().to_string(),
        reps: timing.reps,
        time_us: timing.min_s * 1e6,
        median_us: timing.median_s * 1e6,
        weight_bytes: weight_bytes as u64,
        bytes_moved,
        work,
        weight_gbps: 0.0,
        gops: 0.0,
        level: level.name().to_string(),
        bound: String::new(),
        roofline_us: 0.0,
        roofline_fraction: 0.0,
    };
    complete_figure(&mut fig, roof);
    Ok(fig)
}

/// The figures as a fixed-width table.
pub fn table(figs: &[KernelFigure]) -> String {
    let mut s = format!(
        "{:<26} {:>11} {:>4} {:>3} {:<4} {:>10} {:>10} {:>8} {:>9} {:<9} {:>6}\n",
        "kernel",
        "cols→rows",
        "n",
        "thr",
        "reg",
        "µs",
        "median µs",
        "GB/s",
        "Gops/s",
        "bound",
        "%roof"
    );
    for f in figs {
        s += &format!(
            "{:<26} {:>11} {:>4} {:>3} {:<4} {:>10.1} {:>10.1} {:>8.2} {:>9.2} {:<9} {:>5.1}%\n",
            f.kernel,
            format!("{}→{}", f.cols, f.rows),
            f.tokens,
            f.threads,
            f.regime,
            f.time_us,
            f.median_us,
            f.weight_gbps,
            f.gops,
            f.bound,
            f.roofline_fraction * 100.0
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in Format::ALL {
            for o in Op::ALL {
                for i in Isa::ALL {
                    assert_eq!(parse_kernel_name(&kernel_name(f, o, i)), Some((f, o, i)));
                }
            }
        }
        assert_eq!(parse_kernel_name("tq2_0.gemv_i8.avx512.x"), None);
        assert_eq!(parse_kernel_name("tq3_0.gemv_i8.avx512"), None);
        assert_eq!(parse_kernel_name("tq2_0.gemv.avx512"), None);
        assert_eq!(parse_kernel_name("tq2_0.gemv_i8.auto"), None);
        assert_eq!(
            Shape::parse("6912x2560"),
            Some(Shape {
                rows: 6912,
                cols: 2560
            })
        );
        assert_eq!(Shape::parse("0x2560"), None);
    }

    #[test]
    fn pool_copies_are_the_same_matrix() {
        for f in Format::ALL {
            let pool = Pool::build(f, 8, 512, 3, 1).unwrap();
            let mut a = vec![0i8; 8 * 512];
            let mut b = vec![0i8; 8 * 512];
            pool.matrix(0).unpack_i8(&mut a).unwrap();
            pool.matrix(2).unpack_i8(&mut b).unwrap();
            assert_eq!(a, b);
            assert!(a.iter().all(|&v| (-1..=1).contains(&v)));
        }
    }

    #[test]
    fn cases_follow_the_rules() {
        let mut cfg = Config::full();
        cfg.isas = vec![Isa::Scalar];
        cfg.threads = vec![1, 2];
        let cases = cfg.cases();
        // unpack: once per format × shape × regime; act_quant: once per format × distinct cols.
        let unpack = cases.iter().filter(|c| c.op == Op::Unpack).count();
        assert_eq!(unpack, 4 * 4 * 2);
        let aq = cases.iter().filter(|c| c.op == Op::ActQuant).count();
        assert_eq!(aq, 4 * 2);
        let gemv = cases.iter().filter(|c| c.op == Op::GemvI8).count();
        assert_eq!(gemv, 4 * 4 * 2 * 2);
    }
}
