//! `tinyscore langevin`: Langevin MCMC on a time-independent target, and the Gaussian
//! mixtures a user can give as JSON.

use crate::datasets::{Dataset, Mixture};
use crate::sampling::{in_batches, Samples, MAX_DIM};
use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;
use tinyscore::{DefaultRng, GaussianStream, NullObserver, Score, Ula, Underdamped};

/// A Gaussian mixture as JSON: `{"weights": [w…], "means": [[x…]…], "stds": [[s…]…]}`.
#[derive(Debug, Deserialize)]
struct MixtureJson {
    weights: Vec<f32>,
    means: Vec<Vec<f32>>,
    stds: Vec<Vec<f32>>,
}

/// The mixture `spec`: a dataset that is a Gaussian mixture (`8gaussians`) or a JSON file
/// `{"weights": [w…], "means": [[x…]…], "stds": [[s…]…]}` of 1 to 64 dimensions.
pub fn mixture(spec: &str) -> Result<Mixture> {
    if spec.ends_with(".json") {
        let text = std::fs::read_to_string(spec).with_context(|| format!("cannot read {spec}"))?;
        let m: MixtureJson = serde_json::from_str(&text)
            .with_context(|| format!("{spec}: expected {{\"weights\", \"means\", \"stds\"}}"))?;
        ensure!(
            !m.weights.is_empty()
                && m.weights.len() == m.means.len()
                && m.means.len() == m.stds.len(),
            "{spec}: weights, means and stds must be non-empty and of one length"
        );
        let mixture = Mixture {
            name: spec.to_owned(),
            weights: m.weights,
            means: m.means,
            stds: m.stds,
        };
        let dim = mixture.dim();
        ensure!(
            (1..=MAX_DIM).contains(&dim),
            "{spec}: means of {dim} coordinates (1 to {MAX_DIM} allowed)"
        );
        ensure!(
            mixture
                .means
                .iter()
                .chain(&mixture.stds)
                .all(|v| v.len() == dim),
            "{spec}: every mean and std must have {dim} coordinates, as the first mean"
        );
        return Ok(mixture);
    }
    Dataset::from_name(spec)?
        .mixture()
        .with_context(|| format!("`{spec}` has no closed-form score (not a Gaussian mixture)"))
}

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

/// Runs `n` independent chains from N(0, I) on `score`; returns their final states.
pub fn run<S: Score<N> + Sync, const N: usize>(
    score: &S,
    o: &LangevinOptions,
) -> Result<Vec<[f32; N]>> {
    let mut out = vec![[0.0f32; N]; o.n];
    let chains = |first: usize, xs: &mut [[f32; N]], noises: &mut [GaussianStream<DefaultRng>]| {
        for (k, (x, noise)) in xs.iter_mut().zip(noises).enumerate() {
            let i = first + k;
            *x = noise.normal();
            match o.method {
                Method::Ula => {
                    Ula::new(o.step)?
                        .run(score, x, o.steps, noise, &mut NullObserver)
                        .map_err(|e| chain_error(i, e))?;
                }
                Method::Underdamped => {
                    let dynamics = Underdamped::new(o.mass, o.friction, o.kt, o.step)?;
                    let mut state = dynamics
                        .start(score, *x, [0.0; N])
                        .map_err(|e| chain_error(i, e))?;
                    dynamics
                        .run(score, &mut state, o.steps, noise, &mut NullObserver)
                        .map_err(|e| chain_error(i, e))?;
                    *x = state.x;
                }
            }
        }
        Ok(())
    };
    in_batches(
        out.as_flattened_mut(),
        N,
        o.seed,
        o.threads,
        &|first, xs, noises| chains(first, xs.as_chunks_mut().0, noises),
    )?;
    Ok(out)
}

fn chain_error(chain: usize, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("chain {chain}: {e}")
}

/// Runs `o` on `target`: `doublewell` or a mixture (see [`mixture`]) of any dimension.
pub fn run_target(target: &str, o: &LangevinOptions) -> Result<Samples> {
    if target == "doublewell" {
        let rows: Vec<[f32; 2]> = run(&tinyscore::DoubleWell::new(2.0)?, o)?;
        return Ok(Samples::from_rows(&rows));
    }
    let mixture = mixture(target)?;
    crate::with_dim!(mixture.dim(), run_mixture(&mixture, o))
}

fn run_mixture<const N: usize>(mixture: &Mixture, o: &LangevinOptions) -> Result<Samples> {
    let components = mixture.components::<N>()?;
    let rows = run(&crate::simd::exact_mixture(&components)?, o)?;
    Ok(Samples::from_rows(&rows))
}

/// The names `--target` takes besides mixtures.
pub fn check_target(spec: &str) -> Result<()> {
    if spec == "doublewell" || spec.ends_with(".json") || Dataset::from_name(spec).is_ok() {
        Ok(())
    } else {
        bail!("unknown target `{spec}` (doublewell, 8gaussians, or a mixture .json)")
    }
}
