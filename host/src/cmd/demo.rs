//! `tinyscore demo`: the whole pipeline in one command, with a markdown report.

use super::outln;
use anyhow::Result;
use std::path::PathBuf;

/// The whole pipeline in one command, with a markdown report.
#[derive(clap::Args)]
pub struct Args {
    /// Output directory.
    #[arg(long, default_value = "out/demo")]
    out: PathBuf,
    /// Samples per run.
    #[arg(short, default_value_t = 5000)]
    n: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(args: Args) -> Result<()> {
    eprintln!("tinyscore demo → {}", args.out.display());
    let report = tinyscore_host::demo::run(&args.out, args.n, args.seed)?;
    outln!("{report}");
    Ok(())
}
