//! `bitnet kernel {pack, unpack, gemv, selftest}`: cross-check any engine's bytes from the
//! shell. Files are little-endian and row-major: weights and activations f32, packed bytes
//! exactly as in GGUF (I2_S with its scale tail; QK256 without a scale). An output file is
//! written whole or not at all.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use bitnet_kernels::quant::absmean_ternary;
use bitnet_kernels::{Exec, Format, I2SQk256NoScale, I2s, Isa, TernaryMatrix, Tq1_0, Tq2_0};
use clap::{Args, Subcommand, ValueEnum};

use super::CliResult;
use bitnet_runner::selftest;

#[derive(Debug, Subcommand)]
pub(crate) enum KernelCmd {
    /// Pack f32 weights [rows, cols] into a ternary format.
    Pack {
        #[command(flatten)]
        shape: Shape,
        /// f32 weights [rows, cols].
        #[arg(long)]
        input: PathBuf,
        /// Packed output.
        #[arg(long)]
        out: PathBuf,
        /// Ternarize full-precision weights with BitNet b1.58 absmean (`s = mean|W|`) instead
        /// of the format's own rule (i2s/qk256: sign with scale max|W|; tq: per-block max).
        #[arg(long)]
        absmean: bool,
    },
    /// Unpack a packed matrix to f32 weights [rows, cols].
    Unpack {
        #[command(flatten)]
        shape: Shape,
        /// Packed input.
        #[arg(long)]
        input: PathBuf,
        /// f32 output [rows, cols].
        #[arg(long)]
        out: PathBuf,
        /// QK256 only: the per-tensor scale (default 1.0).
        #[arg(long)]
        scale: Option<f32>,
    },
    /// Y [tokens, rows] = X [tokens, cols] · Wᵀ.
    Gemv {
        #[command(flatten)]
        shape: Shape,
        /// Packed weights.
        #[arg(long)]
        weights: PathBuf,
        /// f32 activations [tokens, cols].
        #[arg(long)]
        input: PathBuf,
        /// Number of activation rows.
        #[arg(long, default_value_t = 1)]
        tokens: usize,
        /// f32 output [tokens, rows].
        #[arg(long)]
        out: PathBuf,
        /// i8: bitnet.cpp int8 activations (i2s/qk256) or Q8_K (tq*); f32: exact activations.
        #[arg(long, value_enum, default_value_t = Act::I8)]
        act: Act,
        /// Kernel ISA: auto, scalar, avx2, avx512.
        #[arg(long, default_value = "auto")]
        isa: String,
        /// Threads.
        #[arg(long, short = 't', default_value_t = 1)]
        threads: usize,
        /// QK256 only: the per-tensor scale (default 1.0).
        #[arg(long)]
        scale: Option<f32>,
    },
    /// Check every format on this CPU against the reference twin and the golden vectors.
    Selftest {
        /// Threads per check.
        #[arg(long, short = 't', default_value_t = 2)]
        threads: usize,
    },
}

#[derive(Debug, Args)]
pub(crate) struct Shape {
    /// i2s, qk256, tq2_0 or tq1_0.
    #[arg(long)]
    format: String,
    /// Output dimension.
    #[arg(long)]
    rows: usize,
    /// Input dimension.
    #[arg(long)]
    cols: usize,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Act {
    I8,
    F32,
}

pub(crate) fn run(cmd: KernelCmd) -> CliResult {
    match cmd {
        KernelCmd::Pack {
            shape,
            input,
            out,
            absmean,
        } => pack(&shape, &input, &out, absmean),
        KernelCmd::Unpack {
            shape,
            input,
            out,
            scale,
        } => unpack(&shape, &input, &out, scale),
        KernelCmd::Gemv {
            shape,
            weights,
            input,
            tokens,
            out,
            act,
            isa,
            threads,
            scale,
        } => gemv(
            &shape, &weights, &input, tokens, &out, act, &isa, threads, scale,
        ),
        KernelCmd::Selftest { threads } => run_selftest(threads),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn read_f32(path: &Path, expected: usize, what: &str) -> Result<Vec<f32>, String> {
    let b = read(path)?;
    if Some(b.len()) != expected.checked_mul(4) {
        return Err(format!(
            "{}: {} bytes, but {what} needs {expected} f32 values ({} bytes)",
            path.display(),
            b.len(),
            expected.saturating_mul(4)
        ));
    }
    Ok(b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Writes `bytes` to a temporary file beside `path`, then renames it: never a partial file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    let result = fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, path));
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn format_and_len(shape: &Shape) -> Result<(Format, usize), String> {
    let format = Format::parse(&shape.format).map_err(|e| e.to_string())?;
    let len = format
        .packed_len(shape.rows, shape.cols)
        .map_err(|e| e.to_string())?;
    Ok((format, len))
}

fn pack(shape: &Shape, input: &Path, out: &Path, absmean: bool) -> CliResult {
    let (format, _) = format_and_len(shape)?;
    let (rows, cols) = (shape.rows, shape.cols);
    let w = read_f32(input, rows * cols, &format!("a {rows}x{cols} matrix"))?;
    let e = |e: bitnet_kernels::KernelError| e.to_string();
    let bytes = if absmean {
        let (codes, s) = absmean_ternary(&w);
        eprintln!("absmean scale {s}");
        match format {
            Format::I2s => I2s::from_codes(&codes, rows, cols, s)
                .map_err(e)?
                .bytes()
                .to_vec(),
            Format::Qk256 => I2SQk256NoScale::from_codes(&codes, rows, cols)
                .map_err(e)?
                .qs()
                .to_vec(),
            Format::Tq2_0 => Tq2_0::from_codes(&codes, &vec![s; rows * cols / 256], rows, cols)
                .map_err(e)?
                .bytes()
                .to_vec(),
            _ => Tq1_0::from_codes(&codes, &vec![s; rows * cols / 256], rows, cols)
                .map_err(e)?
                .bytes()
                .to_vec(),
        }
    } else {
        match format {
            Format::I2s => I2s::quantize(&w, rows, cols).map_err(e)?.bytes().to_vec(),
            Format::Qk256 => {
                // bitnet.cpp's sign rule; the scale (max|w|) travels beside the codes.
                let scale = w.iter().fold(0f32, |m, v| m.max(v.abs()));
                let codes: Vec<u8> = w
                    .iter()
                    .map(|&v| {
                        if v.abs() < 1e-6 {
                            1
                        } else if v > 0.0 {
                            2
                        } else {
                            0
                        }
                    })
                    .collect();
                eprintln!("qk256 scale {scale} (pass it to unpack/gemv with --scale)");
                I2SQk256NoScale::from_codes(&codes, rows, cols)
                    .map_err(e)?
                    .qs()
                    .to_vec()
            }
            Format::Tq2_0 => Tq2_0::quantize(&w, rows, cols).map_err(e)?.bytes().to_vec(),
            _ => Tq1_0::quantize(&w, rows, cols).map_err(e)?.bytes().to_vec(),
        }
    };
    write_atomic(out, &bytes)
}

fn load<'a>(
    shape: &Shape,
    bytes: &'a [u8],
    scale: Option<f32>,
) -> Result<Box<dyn TernaryMatrix + 'a>, String> {
    let (format, _) = format_and_len(shape)?;
    if scale.is_some() && format != Format::Qk256 {
        return Err(format!(
            "--scale applies to qk256 only ({format} stores its scales)"
        ));
    }
    let (rows, cols) = (shape.rows, shape.cols);
    let e = |e: bitnet_kernels::KernelError| format!("weights: {e}");
    Ok(match format {
        Format::I2s => Box::new(I2s::new(rows, cols, bytes).map_err(e)?),
        Format::Qk256 => Box::new(
            I2SQk256NoScale::new(rows, cols, bytes)
                .map_err(e)?
                .try_with_scale(scale.unwrap_or(1.0))
                .map_err(e)?,
        ),
        Format::Tq2_0 => Box::new(Tq2_0::new(rows, cols, bytes).map_err(e)?),
        _ => Box::new(Tq1_0::new(rows, cols, bytes).map_err(e)?),
    })
}

fn unpack(shape: &Shape, input: &Path, out: &Path, scale: Option<f32>) -> CliResult {
    let bytes = read(input)?;
    let m = load(shape, &bytes, scale).map_err(|e| format!("{}: {e}", input.display()))?;
    let mut w = vec![0f32; shape.rows * shape.cols];
    m.dequantize(&mut w).map_err(|e| e.to_string())?;
    write_atomic(out, &f32_bytes(&w))
}

#[allow(clippy::too_many_arguments)]
fn gemv(
    shape: &Shape,
    weights: &Path,
    input: &Path,
    tokens: usize,
    out: &Path,
    act: Act,
    isa: &str,
    threads: usize,
    scale: Option<f32>,
) -> CliResult {
    let exec = Isa::parse(isa)
        .and_then(|i| Exec::new(i, threads))
        .map_err(|e| e.to_string())?;
    if tokens == 0 {
        return Err("--tokens must be at least 1".into());
    }
    let bytes = read(weights)?;
    let m = load(shape, &bytes, scale).map_err(|e| format!("{}: {e}", weights.display()))?;
    let x = read_f32(
        input,
        tokens.saturating_mul(shape.cols),
        &format!("{tokens} tokens x {} cols", shape.cols),
    )?;
    let mut y = vec![0f32; tokens * shape.rows];
    match act {
        Act::I8 => m.gemm_i8(&x, tokens, &mut y, &exec),
        Act::F32 => m.gemm_f32(&x, tokens, &mut y, &exec),
    }
    .map_err(|e| e.to_string())?;
    write_atomic(out, &f32_bytes(&y))
}

fn run_selftest(threads: usize) -> CliResult {
    if threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    let isas = Isa::available();
    println!(
        "bitnet kernel selftest: {} thread(s); ISAs on this CPU: {}",
        threads,
        names(&isas)
    );
    println!(
        "reference: bitnet-reference (scalar twin); golden vectors: bitnet.cpp (I2_S), gguf-py (TQ1_0/TQ2_0)\n"
    );
    let rows = selftest::run(threads);
    let w0 = 22;
    let wc = 30;
    print!("{:<8} {:<w0$}", "format", "check");
    for isa in &isas {
        print!(" {:<wc$}", isa.name());
    }
    println!();
    let mut failures = 0;
    for row in &rows {
        let subject = row.format.map_or("f32", |f| f.name());
        print!("{subject:<8} {:<w0$}", row.check);
        for (_, o) in &row.outcomes {
            let cell = match o {
                selftest::Outcome::Pass(s) => format!("ok  {s}"),
                selftest::Outcome::Fail(s) => {
                    failures += 1;
                    format!("FAIL {s}")
                }
            };
            print!(" {cell:<wc$}");
        }
        println!();
    }
    let total: usize = rows.iter().map(|r| r.outcomes.len()).sum();
    println!("\n{} passed, {} failed", total - failures, failures);
    if failures == 0 {
        Ok(())
    } else {
        Err(format!("selftest: {failures} check(s) failed"))
    }
}

fn names(isas: &[Isa]) -> String {
    isas.iter().map(|i| i.name()).collect::<Vec<_>>().join(", ")
}
