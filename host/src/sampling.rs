//! Many particles at once: each particle has its own RNG stream, so the output is the same
//! bits whatever the number of threads (and the same as one particle sampled on a chip).

use anyhow::{anyhow, Result};
use rayon::prelude::*;
use tinyscore::{particle_noise, LinearSde, NullObserver, Sampler, Score, Solver};

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
    thread_pool(threads)?.install(|| {
        (0..n)
            .into_par_iter()
            .map(|i| {
                let mut noise = particle_noise(seed, i as u64);
                sampler
                    .sample(sde, score, &mut noise, &mut NullObserver)
                    .map_err(|e| anyhow!("particle {i}: {e}"))
            })
            .collect()
    })
}
