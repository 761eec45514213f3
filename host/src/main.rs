//! `tinyscore`: train, quantize, sample, evaluate and run score-based generative models, from
//! the desktop to a microcontroller. The commands are in `cmd/`, the work in the
//! `tinyscore_host` library.

mod cmd;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    match cmd::Cli::parse().run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
