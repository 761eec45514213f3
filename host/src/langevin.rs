//! `tinyscore langevin`: Langevin MCMC on a time-independent target, and the Gaussian
//! mixtures a user can give as JSON.

use crate::datasets::Dataset;
use anyhow::{bail, ensure, Context, Result};
use rayon::prelude::*;
use serde::Deserialize;
use tinyscore::{particle_noise, Component, NullObserver, Score, Ula, Underdamped};

/// A Gaussian mixture as JSON: `{"weights": [w…], "means": [[x, y]…], "stds": [[sx, sy]…]}`.
#[derive(Debug, Deserialize)]
struct MixtureJson {
    weights: Vec<f32>,
    means: Vec<[f32; 2]>,
    stds: Vec<[f32; 2]>,
}

/// The components of `spec`: a dataset that is a Gaussian mixture (`8gaussians`) or a JSON
/// file `{"weights": [w…], "means": [[x, y]…], "stds": [[sx, sy]…]}`.
pub fn mixture(spec: &str) -> Result<Vec<Component<2>>> {
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
        return m
            .weights
            .iter()
            .zip(&m.means)
            .zip(&m.stds)
            .enumerate()
            .map(|(k, ((w, mean), std))| {
                Component::new(*w, *mean, *std).with_context(|| format!("{spec}: component {k}"))
            })
            .collect();
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
pub fn run<S: Score<2> + Sync>(score: &S, o: &LangevinOptions) -> Result<Vec<[f32; 2]>> {
    let pool = crate::sampling::thread_pool(o.threads)?;
    match o.method {
        Method::Ula => {
            let ula = Ula::new(o.step)?;
            pool.install(|| {
                (0..o.n)
                    .into_par_iter()
                    .map(|i| {
                        let mut noise = particle_noise(o.seed, i as u64);
                        let mut x: [f32; 2] = noise.normal();
                        ula.run(score, &mut x, o.steps, &mut noise, &mut NullObserver)
                            .map_err(|e| anyhow::anyhow!("chain {i}: {e}"))?;
                        Ok(x)
                    })
                    .collect()
            })
        }
        Method::Underdamped => {
            let dynamics = Underdamped::new(o.mass, o.friction, o.kt, o.step)?;
            pool.install(|| {
                (0..o.n)
                    .into_par_iter()
                    .map(|i| {
                        let mut noise = particle_noise(o.seed, i as u64);
                        let x: [f32; 2] = noise.normal();
                        let mut state = dynamics
                            .start(score, x, [0.0; 2])
                            .map_err(|e| anyhow::anyhow!("chain {i}: {e}"))?;
                        dynamics
                            .run(score, &mut state, o.steps, &mut noise, &mut NullObserver)
                            .map_err(|e| anyhow::anyhow!("chain {i}: {e}"))?;
                        Ok(state.x)
                    })
                    .collect()
            })
        }
    }
}

/// The names `--target` takes besides mixtures.
pub fn check_target(spec: &str) -> Result<()> {
    if spec == "doublewell" || spec.ends_with(".json") || Dataset::from_name(spec).is_ok() {
        Ok(())
    } else {
        bail!("unknown target `{spec}` (doublewell, 8gaussians, or a mixture .json)")
    }
}
