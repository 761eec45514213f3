//! Throughput figures of `tinyscore bench`, each measured on one thread.

use crate::datasets::eight_gaussians;
use crate::sampling::BATCH;
use serde::Serialize;
use std::hint::black_box;
use std::time::Instant;
use tinyscore::{
    particle_noise, Diffused, EulerMaruyama, GaussianMixture, Sampler, TimeGrid, VpSde,
};

/// The figures, as `tinyscore bench --json` prints them.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct BenchReport {
    /// Euler–Maruyama particle-steps per second with the exact 8-Gaussians score.
    pub em_particle_steps_per_s: f64,
    /// Standard normal f32 draws per second (Box–Muller over PCG32).
    pub gaussians_per_s: f64,
}

/// Runs `work` until at least `min_seconds` have passed; returns units of work per second.
fn rate(min_seconds: f64, mut work: impl FnMut() -> u64) -> f64 {
    work(); // warm-up
    let start = Instant::now();
    let mut units = 0u64;
    while start.elapsed().as_secs_f64() < min_seconds {
        units += work();
    }
    units as f64 / start.elapsed().as_secs_f64()
}

/// Particle-steps per second of Euler–Maruyama, 1000 steps, 8-Gaussians exact score, in
/// the host's batches of [`BATCH`] particles.
pub fn em_particle_steps_per_s(min_seconds: f64) -> f64 {
    let components = eight_gaussians();
    let sde = VpSde::default();
    let score = Diffused::new(
        sde,
        GaussianMixture::new(&components).expect("valid mixture"),
    );
    let steps = 1000;
    let grid = TimeGrid::uniform(1.0, 1e-3, steps).expect("valid grid");
    let sampler = Sampler::new(EulerMaruyama, grid);
    let mut first = 0u64;
    rate(min_seconds, || {
        let mut noises: Vec<_> = (first..first + BATCH as u64)
            .map(|i| particle_noise(1, i))
            .collect();
        first += BATCH as u64;
        let mut xs = [[0.0f32; 2]; BATCH];
        sampler
            .sample_batch::<_, _, _, 2, BATCH>(&sde, &score, &mut noises, &mut xs)
            .expect("the exact score is finite");
        black_box(xs);
        (steps as usize * BATCH) as u64
    })
}

/// Standard normals per second.
pub fn gaussians_per_s(min_seconds: f64) -> f64 {
    let mut noise = particle_noise(2, 0);
    rate(min_seconds, || {
        let mut acc = 0.0f32;
        for _ in 0..100_000 {
            acc += noise.sample();
        }
        black_box(acc);
        100_000
    })
}

/// Every figure, each measured for about `min_seconds`.
pub fn run(min_seconds: f64) -> BenchReport {
    BenchReport {
        em_particle_steps_per_s: em_particle_steps_per_s(min_seconds),
        gaussians_per_s: gaussians_per_s(min_seconds),
    }
}
