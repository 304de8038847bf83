//! `bitnet kernel selftest`: every format × check × ISA of this CPU against the reference
//! twin (`bitnet-reference`) and against golden vectors made by bitnet.cpp and gguf-py
//! (embedded in the binary), so a user can verify the kernels on their own machine.

use bitnet_kernels::{Exec, Format, I2SQk256NoScale, I2s, Isa, TernaryMatrix, Tq1_0, Tq2_0};
use bitnet_reference as r;
use bitnet_reference::bounds::check_gemm_f32;
use bitnet_reference::testdata::SplitMix64;

/// One line of the table: a check on one format (or on a float kernel), with an outcome
/// per ISA.
#[derive(Debug, Clone)]
pub struct Row {
    /// Format checked; `None` for the float kernels beside the formats.
    pub format: Option<Format>,
    /// What was checked.
    pub check: &'static str,
    /// Outcome per ISA, in [`Isa::available`] order.
    pub outcomes: Vec<(Isa, Outcome)>,
}

/// Result of one check on one ISA.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Agreed; the text says how (e.g. "6/6 bit-exact", "≤ 0.03 of bound").
    Pass(String),
    /// Disagreed; the text says where.
    Fail(String),
}

impl Outcome {
    /// Whether the check passed.
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Pass(_))
    }
}

/// Runs every check on every available ISA with `threads` threads.
pub fn run(threads: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    for format in Format::ALL {
        for (check, f) in CHECKS {
            rows.push(Row {
                format: Some(format),
                check,
                outcomes: per_isa(threads, |exec| f(format, exec)),
            });
        }
    }
    rows.push(Row {
        format: None,
        check: "exp = libm (softmax)",
        outcomes: per_isa(threads, exp_f32),
    });
    rows
}

/// `check`'s outcome on every available ISA with `threads` threads.
fn per_isa(
    threads: usize,
    check: impl Fn(&Exec) -> Result<Outcome, String>,
) -> Vec<(Isa, Outcome)> {
    Isa::available()
        .into_iter()
        .map(|isa| match Exec::new(isa, threads) {
            Ok(exec) => (isa, check(&exec).unwrap_or_else(Outcome::Fail)),
            Err(e) => (isa, Outcome::Fail(e.to_string())),
        })
        .collect()
}

/// The ISA's softmax exponential against this platform's `f32::exp`, bit for bit, on
/// every 1024th f32 of the kernels' fast range `[-87, 88]` (2.2 M inputs) and on every
/// 65 537th bit pattern of all 2³²: the kernels keep their own result only where it is
/// the correctly rounded one by a margin that any `expf` within 0.504 ulp respects, so
/// this checks that assumption on the user's libm (the lab checks every input).
fn exp_f32(exec: &Exec) -> Result<Outcome, String> {
    let exp = exec.exp_f32().map_err(err)?;
    let ranges = [
        (0, 88f32.to_bits(), 1024),
        ((-0f32).to_bits(), (-87f32).to_bits(), 1024),
        (0, u32::MAX, 65_537),
    ];
    let mut n = 0usize;
    for (first, last, step) in ranges {
        let x: Vec<f32> = (first..=last).step_by(step).map(f32::from_bits).collect();
        let mut y = x.clone();
        exp(&mut y);
        if let Some((a, b)) = x
            .iter()
            .zip(&y)
            .find(|(a, b)| a.exp().to_bits() != b.to_bits())
        {
            return Ok(Outcome::Fail(format!(
                "exp({a:e}) = {:#010x}, libm {:#010x}",
                b.to_bits(),
                a.exp().to_bits()
            )));
        }
        n += x.len();
    }
    Ok(Outcome::Pass(format!("{n}/{n} bit-exact")))
}

type Check = fn(Format, &Exec) -> Result<Outcome, String>;

const CHECKS: [(&str, Check); 4] = [
    ("golden vectors", golden),
    ("unpack/dequant", unpack),
    ("gemm f32 (4 tok)", gemm_f32),
    ("gemm int8 (1,3 tok)", gemm_int8),
];

/// Shapes per format: one row, tails, rows not a multiple of the 4-row tile, 2B-4T widths.
fn shapes(format: Format) -> &'static [(usize, usize)] {
    match format {
        Format::I2s => &[(1, 128), (5, 384), (67, 2560)],
        Format::Qk256 => &[(1, 1), (7, 300), (33, 2560), (4, 3000)],
        _ => &[(1, 256), (5, 768), (33, 2560)],
    }
}

/// A random case packed by the reference's packers.
struct Case {
    rows: usize,
    cols: usize,
    packed: Vec<u8>,
    scale: f32,
}

impl Case {
    fn new(format: Format, rows: usize, cols: usize, seed: u64) -> Case {
        let mut g = SplitMix64::new(seed);
        let codes = g.codes(rows * cols, 2);
        let scale = g.uniform(0.05, 2.0);
        let nb = rows * cols / 256;
        let scales = g.values(nb, 0.05, 2.0);
        let packed = match format {
            Format::I2s => r::pack_i2s_codes(&codes, scale),
            Format::Qk256 => r::pack_qk256(&codes, rows, cols),
            Format::Tq2_0 => r::pack_tq2_0_codes(&codes, &scales, rows, cols),
            _ => r::pack_tq1_0_codes(&codes, &scales, rows, cols),
        };
        Case {
            rows,
            cols,
            packed,
            scale,
        }
    }

    fn matrix(&self, format: Format) -> Result<Box<dyn TernaryMatrix + '_>, String> {
        let (rows, cols, p) = (self.rows, self.cols, &self.packed[..]);
        let m: Box<dyn TernaryMatrix> = match format {
            Format::I2s => Box::new(I2s::new(rows, cols, p).map_err(|e| e.to_string())?),
            Format::Qk256 => Box::new(
                I2SQk256NoScale::new(rows, cols, p)
                    .map_err(|e| e.to_string())?
                    .with_scale(self.scale),
            ),
            Format::Tq2_0 => Box::new(Tq2_0::new(rows, cols, p).map_err(|e| e.to_string())?),
            _ => Box::new(Tq1_0::new(rows, cols, p).map_err(|e| e.to_string())?),
        };
        Ok(m)
    }

    fn dequant(&self, format: Format) -> Vec<f32> {
        let (rows, cols, p) = (self.rows, self.cols, &self.packed[..]);
        match format {
            Format::I2s => r::dequantize_i2s(p, rows, cols),
            Format::Qk256 => r::dequantize_qk256(p, rows, cols, self.scale),
            Format::Tq2_0 => r::dequantize_tq2_0(p, rows, cols),
            _ => r::dequantize_tq1_0(p, rows, cols),
        }
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn unpack(format: Format, _exec: &Exec) -> Result<Outcome, String> {
    for (i, &(rows, cols)) in shapes(format).iter().enumerate() {
        let c = Case::new(format, rows, cols, 11 + i as u64);
        let m = c.matrix(format)?;
        let mut w = vec![0f32; rows * cols];
        m.dequantize(&mut w).map_err(err)?;
        if bits(&w) != bits(&c.dequant(format)) {
            return Ok(Outcome::Fail(format!(
                "{rows}x{cols}: dequantized values differ"
            )));
        }
    }
    Ok(Outcome::Pass(format!(
        "{} shapes exact",
        shapes(format).len()
    )))
}

fn gemm_f32(format: Format, exec: &Exec) -> Result<Outcome, String> {
    let mut worst = 0f64;
    let tokens = 4;
    for (i, &(rows, cols)) in shapes(format).iter().enumerate() {
        let c = Case::new(format, rows, cols, 101 + i as u64);
        let x = SplitMix64::new(7 + i as u64).values(tokens * cols, -4.0, 4.0);
        let m = c.matrix(format)?;
        let mut y = vec![0f32; tokens * rows];
        m.gemm_f32(&x, tokens, &mut y, exec).map_err(err)?;
        let (p, s) = (&c.packed[..], c.scale);
        let want = match format {
            Format::I2s => r::gemv_f32_i2s(p, rows, cols, &x, tokens),
            Format::Qk256 => r::gemv_f32_qk256(p, rows, cols, s, &x, tokens),
            Format::Tq2_0 => r::gemv_f32_tq2_0(p, rows, cols, &x, tokens),
            _ => r::gemv_f32_tq1_0(p, rows, cols, &x, tokens),
        };
        match check_gemm_f32(&y, &want, &c.dequant(format), &x, rows, cols, tokens) {
            Ok(ratio) => worst = worst.max(ratio),
            Err(e) => return Ok(Outcome::Fail(format!("{rows}x{cols}: {e}"))),
        }
    }
    Ok(Outcome::Pass(format!("≤ {worst:.3} of bound")))
}

fn gemm_int8(format: Format, exec: &Exec) -> Result<Outcome, String> {
    let mut n = 0;
    for (i, &(rows, cols)) in shapes(format).iter().enumerate() {
        for tokens in [1, 3] {
            let c = Case::new(format, rows, cols, 1001 + i as u64);
            let x = SplitMix64::new(77 + i as u64).values(tokens * cols, -20.0, 20.0);
            let m = c.matrix(format)?;
            let mut y = vec![0f32; tokens * rows];
            m.gemm_i8(&x, tokens, &mut y, exec).map_err(err)?;
            let (p, s) = (&c.packed[..], c.scale);
            let want = match format {
                Format::I2s => r::gemv_i8_i2s(p, rows, cols, &x, tokens),
                Format::Qk256 => r::gemv_i8_qk256(p, rows, cols, s, &x, tokens),
                Format::Tq2_0 => r::gemv_q8k_tq2_0(p, rows, cols, &x, tokens),
                _ => r::gemv_q8k_tq1_0(p, rows, cols, &x, tokens),
            };
            if bits(&y) != bits(&want) {
                return Ok(Outcome::Fail(format!(
                    "{rows}x{cols}, {tokens} tok: not bit-exact"
                )));
            }
            n += 1;
        }
    }
    Ok(Outcome::Pass(format!("{n}/{n} bit-exact")))
}

/// Golden vectors embedded at build time (written by bitnet.cpp and gguf-py).
mod vectors {
    macro_rules! i2s {
        ($name:literal, $rows:expr, $cols:expr, $tokens:expr) => {
            (
                $rows,
                $cols,
                $tokens,
                include_bytes!(concat!(
                    "../../tests/data/vectors/i2s/",
                    $name,
                    ".packed.bin"
                )) as &[u8],
                include_bytes!(concat!(
                    "../../tests/data/vectors/i2s/",
                    $name,
                    ".weights.f32"
                )) as &[u8],
                include_bytes!(concat!("../../tests/data/vectors/i2s/", $name, ".x.f32"))
                    as &[u8],
                include_bytes!(concat!("../../tests/data/vectors/i2s/", $name, ".y.f32"))
                    as &[u8],
            )
        };
    }
    /// (rows, cols, tokens, packed, weights, x, y)
    pub type I2sCase = (
        usize,
        usize,
        usize,
        &'static [u8],
        &'static [u8],
        &'static [u8],
        &'static [u8],
    );
    pub const I2S: [I2sCase; 6] = [
        i2s!("i2s_16x512_m1_d0_s7", 16, 512, 1),
        i2s!("i2s_64x2560_m1_d0_s7", 64, 2560, 1),
        i2s!("i2s_40x2560_m4_d0_s7", 40, 2560, 4),
        i2s!("i2s_32x6912_m1_d0_s7", 32, 6912, 1),
        i2s!("i2s_8x256_m3_d1_s7", 8, 256, 3),
        i2s!("i2s_20x1024_m2_d2_s7", 20, 1024, 2),
    ];
    macro_rules! tq {
        ($name:literal, $rows:expr, $cols:expr) => {
            (
                $rows,
                $cols,
                include_bytes!(concat!("../../tests/data/vectors/tq/", $name, ".input.f32"))
                    as &[u8],
                include_bytes!(concat!(
                    "../../tests/data/vectors/tq/",
                    $name,
                    ".packed.bin"
                )) as &[u8],
                include_bytes!(concat!(
                    "../../tests/data/vectors/tq/",
                    $name,
                    ".dequant.f32"
                )) as &[u8],
            )
        };
    }
    /// (rows, cols, input, packed, dequant)
    pub type TqCase = (usize, usize, &'static [u8], &'static [u8], &'static [u8]);
    pub const TQ2: [TqCase; 5] = [
        tq!("tq2_0_gaussian_4x256_s7", 4, 256),
        tq!("tq2_0_ternary_8x512_s7", 8, 512),
        tq!("tq2_0_ties_3x768_s7", 3, 768),
        tq!("tq2_0_zeros_and_spikes_2x1024_s7", 2, 1024),
        tq!("tq2_0_tiny_2x256_s7", 2, 256),
    ];
    pub const TQ1: [TqCase; 5] = [
        tq!("tq1_0_gaussian_4x256_s7", 4, 256),
        tq!("tq1_0_ternary_8x512_s7", 8, 512),
        tq!("tq1_0_ties_3x768_s7", 3, 768),
        tq!("tq1_0_zeros_and_spikes_2x1024_s7", 2, 1024),
        tq!("tq1_0_tiny_2x256_s7", 2, 256),
    ];
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn golden(format: Format, exec: &Exec) -> Result<Outcome, String> {
    let mut n = 0;
    match format {
        Format::I2s | Format::Qk256 => {
            for (rows, cols, tokens, packed, weights, x, y) in vectors::I2S {
                let tensor = I2s::new(rows, cols, packed).map_err(err)?;
                let (x, y, weights) = (f32s(x), f32s(y), f32s(weights));
                let mut got = vec![0f32; tokens * rows];
                let mut w = vec![0f32; rows * cols];
                if format == Format::I2s {
                    let repacked = I2s::quantize(&weights, rows, cols).map_err(err)?;
                    if repacked.bytes() != packed {
                        return Ok(Outcome::Fail(format!(
                            "{rows}x{cols}: packing differs from bitnet.cpp"
                        )));
                    }
                    tensor.dequantize(&mut w).map_err(err)?;
                    tensor.gemm_i8(&x, tokens, &mut got, exec).map_err(err)?;
                } else {
                    let q = tensor.as_qk256().map_err(err)?;
                    q.dequantize(&mut w).map_err(err)?;
                    q.gemm_i8(&x, tokens, &mut got, exec).map_err(err)?;
                }
                if bits(&w) != bits(&weights) {
                    return Ok(Outcome::Fail(format!(
                        "{rows}x{cols}: unpacked weights differ"
                    )));
                }
                if bits(&got) != bits(&y) {
                    return Ok(Outcome::Fail(format!(
                        "{rows}x{cols}: GEMV differs from bitnet.cpp"
                    )));
                }
                n += 1;
            }
        }
        Format::Tq2_0 | Format::Tq1_0 => {
            let cases = if format == Format::Tq2_0 {
                &vectors::TQ2
            } else {
                &vectors::TQ1
            };
            for &(rows, cols, input, packed, dequant) in cases {
                let input = f32s(input);
                let mut w = vec![0f32; rows * cols];
                let repacked = if format == Format::Tq2_0 {
                    Tq2_0::new(rows, cols, packed)
                        .map_err(err)?
                        .dequantize(&mut w)
                        .map_err(err)?;
                    Tq2_0::quantize(&input, rows, cols)
                        .map_err(err)?
                        .bytes()
                        .to_vec()
                } else {
                    Tq1_0::new(rows, cols, packed)
                        .map_err(err)?
                        .dequantize(&mut w)
                        .map_err(err)?;
                    Tq1_0::quantize(&input, rows, cols)
                        .map_err(err)?
                        .bytes()
                        .to_vec()
                };
                if repacked != packed {
                    return Ok(Outcome::Fail(format!(
                        "{rows}x{cols}: packing differs from gguf-py"
                    )));
                }
                if bits(&w) != bits(&f32s(dequant)) {
                    return Ok(Outcome::Fail(format!(
                        "{rows}x{cols}: dequantized values differ"
                    )));
                }
                n += 1;
            }
        }
    }
    Ok(Outcome::Pass(format!("{n}/{n} exact")))
}
