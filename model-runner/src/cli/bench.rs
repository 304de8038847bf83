//! `bitnet bench ...` and `bitnet receipt ...` (to be written).

use clap::Subcommand;

use super::CliResult;

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCmd {
    /// Measure this machine's memory bandwidth and int8 peak.
    Roofline,
}

pub(crate) fn run(cmd: BenchCmd) -> CliResult {
    match cmd {
        BenchCmd::Roofline => Err("not written yet".into()),
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReceiptCmd {
    /// Verify a receipt's schema and invariants.
    Verify {
        /// The receipt JSON file.
        file: std::path::PathBuf,
    },
}

pub(crate) fn run_receipt(cmd: ReceiptCmd) -> CliResult {
    match cmd {
        ReceiptCmd::Verify { file } => Err(format!("{}: not written yet", file.display())),
    }
}
