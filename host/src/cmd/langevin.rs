//! `tinyscore langevin`: Langevin MCMC chains on a time-independent target.

use super::Particles;
use anyhow::Result;
use tinyscore_host::io::write_csv;
use tinyscore_host::sampling::langevin::{check_target, run_target, LangevinOptions, Method};

/// Langevin MCMC on a time-independent target (its score −∇U is exact).
#[derive(clap::Args)]
pub struct Args {
    /// The target: `doublewell` (barrier 2), `8gaussians`, or a mixture .json.
    #[arg(long)]
    target: String,
    /// The dynamics.
    #[arg(long, value_enum, default_value = "ula")]
    method: Method,
    /// Step size ε (ULA) or dt (underdamped).
    #[arg(long, allow_negative_numbers = true, default_value_t = 1e-3)]
    step: f32,
    /// Steps per chain.
    #[arg(long, default_value_t = 5000)]
    steps: u32,
    /// Mass (underdamped).
    #[arg(long, allow_negative_numbers = true, default_value_t = 1.0)]
    mass: f32,
    /// Friction γ (underdamped).
    #[arg(long, allow_negative_numbers = true, default_value_t = 1.0)]
    friction: f32,
    /// Temperature kT (underdamped; 1 samples the target).
    #[arg(long, allow_negative_numbers = true, default_value_t = 1.0)]
    kt: f32,
    #[command(flatten)]
    particles: Particles,
}

pub fn run(args: Args) -> Result<()> {
    check_target(&args.target)?;
    let options = LangevinOptions {
        method: args.method,
        step: args.step,
        steps: args.steps,
        mass: args.mass,
        friction: args.friction,
        kt: args.kt,
        n: args.particles.n,
        seed: args.particles.seed,
        threads: args.particles.threads,
    };
    let samples = run_target(&args.target, &options)?;
    write_csv(&args.particles.out, &samples)?;
    eprintln!(
        "wrote {} samples to {}",
        samples.len(),
        args.particles.out.display()
    );
    Ok(())
}
