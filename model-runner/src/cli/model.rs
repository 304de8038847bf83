//! Model commands: run, logits, inspect, chat, synth (to be written).

use clap::Subcommand;

use super::CliResult;

#[derive(Debug, Subcommand)]
pub(crate) enum ModelCmd {
    /// Describe a GGUF model file.
    Inspect {
        /// Path to the GGUF file.
        model: std::path::PathBuf,
    },
}

pub(crate) fn run(cmd: ModelCmd) -> CliResult {
    match cmd {
        ModelCmd::Inspect { model } => Err(format!("inspect {}: not written yet", model.display())),
    }
}
