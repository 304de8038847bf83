//! Command-line front end. Every failure is one line on stderr and exit code 2.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod kernel;
mod model;

/// BitNet b1.58 inference on CPUs, with bit-exact ternary kernels.
#[derive(Debug, Parser)]
#[command(name = "bitnet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Pack, unpack and multiply ternary matrices; check this CPU's kernels.
    #[command(subcommand)]
    Kernel(kernel::KernelCmd),
    /// Benchmarks: roofline probe, kernels, whole model; receipts.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// Check a benchmark receipt.
    #[command(subcommand)]
    Receipt(bench::ReceiptCmd),
    #[command(flatten)]
    Model(model::ModelCmd),
}

/// A failure to report: one line, exit code 2.
pub(crate) type CliResult = Result<(), String>;

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help / --version: print as clap formats them.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line, like every other failure: clap's message up to its usage block.
            let text = e.to_string();
            let msg: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
                .map(str::trim)
                .collect();
            let msg = msg.join(" ");
            eprintln!(
                "bitnet: error: {} (see `bitnet --help`)",
                msg.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Kernel(cmd) => kernel::run(cmd),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Receipt(cmd) => bench::run_receipt(cmd),
        Command::Model(cmd) => model::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("bitnet: error: {msg}");
            ExitCode::from(2)
        }
    }
}

/// `--head` value.
pub(crate) fn head_arg(s: &str) -> Result<bitnet_runner::model::HeadMode, String> {
    bitnet_runner::model::HeadMode::parse(s)
        .ok_or_else(|| format!("--head: unknown value '{s}' (known: f16, int8)"))
}

/// `--kv` value.
pub(crate) fn kv_arg(s: &str) -> Result<bitnet_runner::model::KvType, String> {
    bitnet_runner::model::KvType::parse(s)
        .ok_or_else(|| format!("--kv: unknown value '{s}' (known: f32, f16)"))
}
