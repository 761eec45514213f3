//! Many particles at once: each particle has its own RNG stream, so the output is the same
//! bits whatever the number of threads (and the same as one particle sampled on a chip).

use anyhow::{anyhow, Result};
use rayon::prelude::*;
use tinyscore::{particle_noise, LinearSde, Sampler, Score, Solver};

/// Particles advanced in lockstep by one task: enough for the score to vectorise, few enough
/// that the solvers' stack scratch stays small.
pub const BATCH: usize = 64;

/// A rayon pool of `threads` threads (0: one per core).
pub fn thread_pool(threads: usize) -> Result<rayon::ThreadPool> {
    Ok(rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?)
}

/// Draws particles `0..n` of the run seeded with `seed`, on `threads` threads.
pub fn sample_particles<P, D, S, const N: usize>(
    sampler: &Sampler<P>,
    sde: &D,
    score: &S,
    n: usize,
    seed: u64,
    threads: usize,
) -> Result<Vec<[f32; N]>>
where
    P: Solver<D, N> + Sync,
    D: LinearSde + Sync,
    S: Score<N> + Sync,
{
    let mut out = vec![[0.0f32; N]; n];
    thread_pool(threads)?.install(|| {
        out.par_chunks_mut(BATCH)
            .enumerate()
            .try_for_each(|(chunk, xs)| {
                let first = chunk * BATCH;
                let mut noises: Vec<_> = (first..first + xs.len())
                    .map(|i| particle_noise(seed, i as u64))
                    .collect();
                sampler
                    .sample_batch::<D, S, _, N, BATCH>(sde, score, &mut noises, xs)
                    .map_err(|e| anyhow!("particle {}: {}", first + e.particle, e.error))
            })
    })?;
    Ok(out)
}
