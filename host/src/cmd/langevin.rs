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
    /// Mass (underdamped only) [default: 1].
    #[arg(long, allow_negative_numbers = true)]
    mass: Option<f32>,
    /// Friction γ (underdamped only) [default: 1].
    #[arg(long, allow_negative_numbers = true)]
    friction: Option<f32>,
    /// Temperature kT (underdamped only; 1 samples the target) [default: 1].
    #[arg(long, allow_negative_numbers = true)]
    kt: Option<f32>,
    #[command(flatten)]
    particles: Particles,
}

pub fn run(args: Args) -> Result<()> {
    check_target(&args.target)?;
    if args.method == Method::Ula {
        let kinetic = [
            ("--mass", args.mass),
            ("--friction", args.friction),
            ("--kt", args.kt),
        ];
        if let Some((flag, _)) = kinetic.iter().find(|(_, value)| value.is_some()) {
            anyhow::bail!("{flag} applies to --method underdamped, not to ula");
        }
    }
    let options = LangevinOptions {
        method: args.method,
        step: args.step,
        steps: args.steps,
        mass: args.mass.unwrap_or(1.0),
        friction: args.friction.unwrap_or(1.0),
        kt: args.kt.unwrap_or(1.0),
        n: args.particles.count(),
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
