//! The `vigil` binary: parse the command line, run it, turn the outcome into an
//! exit code. Everything else lives in the library modules.

use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    let args = cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("vigil: {}", cli::errors::render_chain(&err));
            ExitCode::from(cli::errors::code_for(&err))
        }
    }
}
