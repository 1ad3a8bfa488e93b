//! The `vigil` binary: parse the command line, run it, turn the outcome into an
//! exit code. Everything else lives in the library modules.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod cluster;
mod exit;
mod render;
mod supervise;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("vigil: {}", exit::render_chain(&err));
            ExitCode::from(exit::code_for(&err))
        }
    }
}
