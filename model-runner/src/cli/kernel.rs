//! `bitnet kernel ...` (to be written).

use clap::Subcommand;

use super::CliResult;

#[derive(Debug, Subcommand)]
pub(crate) enum KernelCmd {
    /// Check every format on this CPU against the reference twin.
    Selftest,
}

pub(crate) fn run(cmd: KernelCmd) -> CliResult {
    match cmd {
        KernelCmd::Selftest => Err("not written yet".into()),
    }
}
