//! `bitnet`: run BitNet b1.58 GGUF models and cross-check ternary kernels from the shell.

use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    cli::main()
}
