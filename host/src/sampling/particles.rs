//! Many particles at once: each particle has its own RNG stream, so the output is the same
//! bits whatever the number of threads (and the same as one particle sampled on a chip).

use super::SampleOptions;
use crate::progress::Progress;
use anyhow::{anyhow, Result};
use rayon::prelude::*;
use tinyscore::{DefaultRng, GaussianStream, LinearSde, Sampler, Score, Solver};

/// Particles advanced in lockstep by one task: enough for the score to vectorise, few enough
/// that the solvers' stack scratch stays small.
pub const BATCH: usize = 64;

/// The most threads a command takes: four per core (more only adds the cost of starting
/// them).
pub fn max_threads() -> usize {
    4 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A rayon pool of `threads` threads (0: one per core; at most [`max_threads`]).
pub fn thread_pool(threads: usize) -> Result<rayon::ThreadPool> {
    anyhow::ensure!(
        threads <= max_threads(),
        "--threads {threads}: at most {} on this machine (4 per core; 0 takes one per core)",
        max_threads()
    );
    Ok(rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?)
}

/// Particle-steps a task takes between two advances of the progress.
const PROGRESS_CHUNK: u64 = 1 << 14;

/// Draws the particles `o` names (`o.first..o.first + o.n` of the run seeded with `o.seed`,
/// on `o.threads` threads; its sampler settings are in `sampler`), in states of `N`
/// coordinates of which the first `coordinates` are the data's (see [`crate::dims`]).
/// `progress` advances by one per particle and step (the denoising step included).
pub fn sample_particles<P, D, S, const N: usize>(
    sampler: &Sampler<P>,
    sde: &D,
    score: &S,
    o: &SampleOptions,
    coordinates: usize,
    progress: &Progress,
) -> Result<Vec<[f32; N]>>
where
    P: Solver<D, N> + Sync,
    D: LinearSde + Sync,
    S: Score<N> + Sync,
{
    let mut out = vec![[0.0f32; N]; o.n];
    in_batches(
        out.as_flattened_mut(),
        N,
        coordinates,
        (o.seed, o.first),
        o.threads,
        &|first, xs, noises| {
            let mut unreported = 0u64;
            let report = |step: u32, _: f32, xs: &[[f32; N]]| {
                if step > 0 {
                    unreported += xs.len() as u64;
                    if unreported >= PROGRESS_CHUNK {
                        progress.advance(std::mem::take(&mut unreported));
                    }
                }
            };
            let states = xs.as_chunks_mut().0;
            let result = match o.init {
                None => sampler.sample_batch_observed::<D, S, _, _, N, BATCH>(
                    sde, score, noises, states, report,
                ),
                Some(init) => {
                    for (k, x) in states.iter_mut().enumerate() {
                        *x = super::start_from(init, first + k as u64)?;
                    }
                    sampler.run_batch_observed::<D, S, _, _, N, BATCH>(
                        sde, score, noises, states, report,
                    )
                }
            };
            progress.advance(unreported);
            result.map_err(|e| anyhow!("particle {}: {}", first + e.particle as u64, e.error))
        },
    )?;
    Ok(out)
}

/// A batch of particles: the index of its first, the coordinates of each particle (row-major)
/// and each particle's noise stream.
pub type BatchFn<'a> =
    dyn Fn(u64, &mut [f32], &mut [GaussianStream<DefaultRng>]) -> Result<()> + Sync + 'a;

/// Runs `batch` on [`BATCH`]-particle chunks of `values` (`dim` coordinates per particle, of
/// which the first `coordinates` are drawn from the noise), the particles numbered from
/// `first` on, particle i with noise stream i of `seed` (`streams = (seed, first)`), on a pool
/// of `threads`. Not generic, so the thread-pool machinery is compiled once for every sampler,
/// score and dimension.
pub fn in_batches(
    values: &mut [f32],
    dim: usize,
    coordinates: usize,
    (seed, first): (u64, u64),
    threads: usize,
    batch: &BatchFn<'_>,
) -> Result<()> {
    thread_pool(threads)?.install(|| {
        values
            .par_chunks_mut(BATCH * dim.max(1))
            .enumerate()
            .try_for_each(|(chunk, xs)| {
                let first = first + (chunk * BATCH) as u64;
                let particles = first..first + (xs.len() / dim.max(1)) as u64;
                let mut noises: Vec<_> = crate::simd::particle_noises(seed, particles)
                    .into_iter()
                    .map(|noise| noise.with_coordinates(coordinates))
                    .collect();
                batch(first, xs, &mut noises)
            })
    })
}
