//! The `tinyscore` command line: one module per subcommand, each a clap `Args` struct and a
//! `run` that reads its inputs once, calls the library and reports. Flags that cannot apply
//! together are refused by clap when the command line is parsed.

mod bench;
mod demo;
mod eval;
mod export;
mod firmware;
mod import;
mod langevin;
mod likelihood;
mod plot;
mod quantize;
mod sample;
mod schedule;
mod train;

use anyhow::Result;
use clap::{Parser, Subcommand};
use tinyscore_host::progress::Progress;
use tinyscore_host::sampling::SampleOptions;

/// The command line.
#[derive(Parser)]
#[command(
    name = "tinyscore",
    version,
    about = "Score-based generative models, from the desktop to a microcontroller"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Draw samples by integrating the reverse-time dynamics.
    Sample(sample::Args),
    /// Langevin MCMC on a time-independent target (its score −∇U is exact).
    Langevin(langevin::Args),
    /// Convert a PyTorch model (safetensors, the layout of moons_ref.safetensors) to .tsm.
    Import(import::Args),
    /// Train a score network by denoising score matching.
    Train(train::Args),
    /// Quantize a float model to integer-only int8, calibrated on diffused data.
    Quantize(quantize::Args),
    /// Write a model for the firmware (a Rust include) or for PyTorch (safetensors).
    Export(export::Args),
    /// Draw a model: data beside samples, the score field, trajectories, an animated GIF.
    Plot(plot::Args),
    /// Build the firmware for a model and run it in QEMU.
    #[command(subcommand)]
    Firmware(firmware::Command),
    /// Compare samples with fresh draws of a dataset: sw2, energy, mmd2 and their floor.
    Eval(eval::Args),
    /// Log-likelihoods of data points by the probability-flow ODE.
    Likelihood(likelihood::Args),
    /// Fit a few-step time grid to a score and a deterministic sampler.
    Schedule(schedule::Args),
    /// Measure throughput (one thread).
    Bench(bench::Args),
    /// The whole pipeline in one command, with a markdown report.
    Demo(demo::Args),
}

impl Cli {
    /// Runs the command.
    pub fn run(self) -> Result<()> {
        match self.command {
            Command::Sample(args) => sample::run(args),
            Command::Langevin(args) => langevin::run(args),
            Command::Import(args) => import::run(args),
            Command::Train(args) => train::run(args),
            Command::Quantize(args) => quantize::run(args),
            Command::Export(args) => export::run(args),
            Command::Plot(args) => plot::run(args),
            Command::Firmware(command) => firmware::run(command),
            Command::Eval(args) => eval::run(args),
            Command::Likelihood(args) => likelihood::run(args),
            Command::Schedule(args) => schedule::run(args),
            Command::Bench(args) => bench::run(args),
            Command::Demo(args) => demo::run(args),
        }
    }
}

/// The adaptive ODE solver's settings (`sample --sampler ode-rk45`, `likelihood`).
#[derive(clap::Args)]
pub(crate) struct OdeArgs {
    /// Relative tolerance of the adaptive solver [default: 1e-5].
    #[arg(long)]
    pub rtol: Option<f32>,
    /// Absolute tolerance of the adaptive solver [default: 1e-5].
    #[arg(long)]
    pub atol: Option<f32>,
    /// The most steps, accepted and rejected, per point [default: 10000].
    #[arg(long)]
    pub max_steps: Option<u32>,
}

impl OdeArgs {
    /// score_sde's tolerances for its ODE sampler and likelihood.
    pub fn rtol(&self) -> f32 {
        self.rtol.unwrap_or(1e-5)
    }
    pub fn atol(&self) -> f32 {
        self.atol.unwrap_or(1e-5)
    }
    pub fn max_steps(&self) -> u32 {
        self.max_steps.unwrap_or(10_000)
    }
    /// The first of the options that was given, if any (for refusing them where they do
    /// not apply).
    pub fn given(&self) -> Option<&'static str> {
        [
            ("--rtol", self.rtol.is_some()),
            ("--atol", self.atol.is_some()),
            ("--max-steps", self.max_steps.is_some()),
        ]
        .into_iter()
        .find_map(|(flag, given)| given.then_some(flag))
    }
}

impl Particles {
    /// The number of samples asked for, or the default.
    pub fn count(&self) -> usize {
        self.n.unwrap_or(5000)
    }
}

/// The particles a sampling command draws and where they go.
#[derive(clap::Args)]
pub(crate) struct Particles {
    /// Number of samples [default: 5000].
    #[arg(short)]
    pub n: Option<usize>,
    /// Seed (particle i uses stream i of this seed).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Threads (0: all cores; at most 4 per core); the output does not depend on it.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Output CSV.
    #[arg(long)]
    pub out: std::path::PathBuf,
}

/// Particles written per part: a run of any size holds one part's samples in memory.
const PART: usize = 1 << 16;

/// The progress of a sampling run, in particle-steps.
pub(crate) fn sampling_progress(options: &SampleOptions) -> Progress {
    Progress::new("sampling", options.particle_steps(), "particle-steps")
}

/// Writes the samples of `options` (its `n` particles, of `dim` coordinates) to `out` as CSV,
/// drawing them a part at a time with `draw(first, count, progress)` (particles
/// `first..first + count`), with progress on stderr. Ctrl-C stops it between parts and leaves
/// nothing behind (the temporary file is removed).
pub(crate) fn write_samples(
    out: &std::path::Path,
    options: &SampleOptions,
    dim: usize,
    mut draw: impl FnMut(u64, usize, &Progress) -> Result<tinyscore_host::points::Samples>,
) -> Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    let handler_stop = Arc::clone(&stop);
    ctrlc::set_handler(move || handler_stop.store(true, Ordering::Relaxed))
        .map_err(|e| anyhow::anyhow!("cannot install the Ctrl-C handler: {e}"))?;
    let n = options.n;
    let progress = sampling_progress(options);
    tinyscore_host::io::write_atomically(out, |w| {
        tinyscore_host::io::write_csv_header(w, dim)?;
        for first in (0..n).step_by(PART) {
            anyhow::ensure!(
                !stop.load(Ordering::Relaxed),
                "interrupted: {} not written",
                out.display()
            );
            let count = PART.min(n - first);
            tinyscore_host::io::write_csv_rows(w, &draw(first as u64, count, &progress)?)?;
        }
        Ok(())
    })?;
    progress.finish();
    Ok(())
}

/// Writes to stdout; a reader that has gone (`tinyscore eval … | head -1`) is not an error.
pub(crate) fn emit(text: std::fmt::Arguments<'_>) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_fmt(text) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// `println!` through [`emit`], returning its error.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::cmd::emit(format_args!("{}\n", format_args!($($arg)*)))? };
}
pub(crate) use outln;
