//! Langevin MCMC on a time-independent target: ULA or underdamped (BAOAB) chains from
//! N(0, I), each with its own noise stream.

use crate::data::{mixture, Dataset, Mixture};
use crate::points::Samples;
use crate::progress::Progress;
use crate::sampling::{in_batches, BATCH};
use anyhow::{bail, Result};
use tinyscore::{DefaultRng, GaussianStream, Score, Ula, Underdamped};

/// Which Langevin dynamics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// Unadjusted Langevin: x ← x + ε·s(x) + √(2ε)·η.
    Ula,
    /// Underdamped (kinetic) Langevin, BAOAB splitting.
    Underdamped,
}

/// Settings of a Langevin run.
#[derive(Clone, Copy, Debug)]
pub struct LangevinOptions {
    /// The dynamics.
    pub method: Method,
    /// Step size ε (ULA) or dt (underdamped).
    pub step: f32,
    /// Steps per particle.
    pub steps: u32,
    /// Mass (underdamped).
    pub mass: f32,
    /// Friction γ (underdamped).
    pub friction: f32,
    /// Temperature kT (underdamped; the target is sampled at kT = 1).
    pub kt: f32,
    /// Particles.
    pub n: usize,
    /// Seed: particle i uses stream i.
    pub seed: u64,
    /// Threads (0: all cores); the output does not depend on it.
    pub threads: usize,
}

/// Runs `n` independent chains from N(0, I) on `score`, in states of `N` coordinates of which
/// the first `coordinates` are the target's (see [`crate::dims`]); returns their final
/// states.
pub fn run<S: Score<N> + Sync, const N: usize>(
    score: &S,
    o: &LangevinOptions,
    coordinates: usize,
) -> Result<Vec<[f32; N]>> {
    let mut out = vec![[0.0f32; N]; o.n];
    let progress = Progress::new("langevin", o.n as u64 * u64::from(o.steps), "chain-steps");
    let chains = |first: u64, xs: &mut [[f32; N]], noises: &mut [GaussianStream<DefaultRng>]| {
        for (x, noise) in xs.iter_mut().zip(noises.iter_mut()) {
            *x = noise.normal();
        }
        match o.method {
            Method::Ula => ula_chains(score, o, first, xs, noises, &progress),
            Method::Underdamped => underdamped_chains(score, o, first, xs, noises, &progress),
        }
    };
    in_batches(
        out.as_flattened_mut(),
        N,
        coordinates,
        (o.seed, 0),
        o.threads,
        &|first, xs, noises| chains(first, xs.as_chunks_mut().0, noises),
    )?;
    progress.finish();
    Ok(out)
}

/// ULA on the chains `xs` (numbered from `first`) in lockstep: the score vectorises over
/// them, and each chain gets its own bits (`Ula::step_batch`).
fn ula_chains<S: Score<N>, const N: usize>(
    score: &S,
    o: &LangevinOptions,
    first: u64,
    xs: &mut [[f32; N]],
    noises: &mut [GaussianStream<DefaultRng>],
    progress: &Progress,
) -> Result<()> {
    let ula = Ula::new(o.step)?;
    let mut unreported = 0u64;
    for step in 0..o.steps {
        ula.step_batch::<S, _, N, BATCH>(score, xs, noises, step)
            .map_err(|e| chain_error(first + e.particle as u64, e.error))?;
        unreported += xs.len() as u64;
        if unreported >= PROGRESS_CHUNK {
            progress.advance(std::mem::take(&mut unreported));
        }
    }
    progress.advance(unreported);
    Ok(())
}

/// Underdamped Langevin on the chains `xs` (numbered from `first`), one at a time.
fn underdamped_chains<S: Score<N>, const N: usize>(
    score: &S,
    o: &LangevinOptions,
    first: u64,
    xs: &mut [[f32; N]],
    noises: &mut [GaussianStream<DefaultRng>],
    progress: &Progress,
) -> Result<()> {
    let dynamics = Underdamped::new(o.mass, o.friction, o.kt, o.step)?;
    let mut unreported = 0u64;
    let mut report = |step: u32, _: f32, _: &[f32; N]| {
        if step > 0 {
            unreported += 1;
            if unreported >= PROGRESS_CHUNK {
                progress.advance(std::mem::take(&mut unreported));
            }
        }
    };
    for (k, (x, noise)) in xs.iter_mut().zip(noises).enumerate() {
        let i = first + k as u64;
        let mut state = dynamics
            .start(score, *x, [0.0; N])
            .map_err(|e| chain_error(i, e))?;
        dynamics
            .run(score, &mut state, o.steps, noise, &mut report)
            .map_err(|e| chain_error(i, e))?;
        *x = state.x;
    }
    progress.advance(unreported);
    Ok(())
}

/// Chain-steps a task takes between two advances of the progress.
const PROGRESS_CHUNK: u64 = 1 << 14;

/// A chain that left the finite numbers: its step size is what the user can change.
fn chain_error(chain: u64, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("chain {chain}: {e}; try a smaller --step")
}

/// Runs `o` on `target`: `doublewell` or a mixture (see [`mixture`]) of any dimension.
pub fn run_target(target: &str, o: &LangevinOptions) -> Result<Samples> {
    anyhow::ensure!(o.n > 0, "-n must be at least 1");
    // The dynamics' parameters are checked before any chain runs.
    match o.method {
        Method::Ula => {
            Ula::new(o.step)?;
        }
        Method::Underdamped => {
            Underdamped::new(o.mass, o.friction, o.kt, o.step)?;
        }
    }
    if target == "doublewell" {
        let rows: Vec<[f32; 2]> = run(&tinyscore::DoubleWell::new(2.0)?, o, 2)?;
        return Ok(Samples::from_rows(&rows));
    }
    let mixture = mixture(target)?;
    crate::with_dim!(mixture.dim(), run_mixture(&mixture, o))
}

fn run_mixture<const N: usize>(mixture: &Mixture, o: &LangevinOptions) -> Result<Samples> {
    let components = mixture.components::<N>()?;
    let target = crate::simd::exact_mixture(&components)?.with_coordinates(mixture.dim());
    let rows = run(&target, o, mixture.dim())?;
    Ok(Samples::from_padded_rows(&rows, mixture.dim()))
}

/// The names `--target` takes besides mixtures.
pub fn check_target(spec: &str) -> Result<()> {
    if spec == "doublewell" || spec.ends_with(".json") || Dataset::from_name(spec).is_ok() {
        Ok(())
    } else {
        bail!("unknown target `{spec}` (doublewell, 8gaussians, or a mixture .json)")
    }
}
