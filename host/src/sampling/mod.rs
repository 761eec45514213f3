//! Sampling on the host: the sampler, SDE and grid choices, and the dispatch from a choice
//! to the generic core types, for an exact mixture score ([`sample_exact`]) or a parsed
//! model's network ([`sample_model`]); many particles at once ([`particles`]); Langevin MCMC
//! on a time-independent target ([`langevin`]).

pub mod langevin;
pub mod particles;

pub use particles::{in_batches, sample_particles, thread_pool, BatchFn, BATCH};

use crate::data::Mixture;
use crate::points::Samples;
use anyhow::{bail, Result};
use clap::ValueEnum;
use tinyscore::{
    Ancestral, AnnealedLangevin, Component, Ddim, Diffused, DpmSolverPp2M, EulerMaruyama,
    GaussianMixture, LangevinCorrector, LinearSde, Model, ModelSde, NeuralScore, OdeEuler, OdeHeun,
    OdeRk4, PredictorCorrector, ReverseDiffusion, Sampler, Schedule, Score, SubVpSde, TimeGrid,
    VeSde, VpSde,
};

/// A reverse-time sampler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SamplerKind {
    /// Euler–Maruyama on the reverse SDE.
    Em,
    /// Reverse-diffusion predictor.
    Rd,
    /// Ancestral sampling (VP: DDPM, VE: SMLD).
    Ancestral,
    /// Reverse-diffusion predictor + Langevin corrector.
    Pc,
    /// Probability-flow ODE, Euler.
    OdeEuler,
    /// Probability-flow ODE, Heun.
    OdeHeun,
    /// Probability-flow ODE, RK4.
    OdeRk4,
    /// DDIM (deterministic).
    Ddim,
    /// DPM-Solver++(2M).
    Dpm2,
    /// Annealed Langevin dynamics.
    Ald,
}

impl SamplerKind {
    /// Its command-line name.
    pub fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }
}

/// The forward process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SdeKind {
    /// Variance preserving (β 0.1 → 20).
    Vp,
    /// Sub-VP (β 0.1 → 20).
    Subvp,
    /// Variance exploding (σ 0.01 → 50).
    Ve,
}

impl SdeKind {
    /// The SDE with its default parameters, as a model file carries it.
    pub fn model_sde(self) -> ModelSde {
        match self {
            SdeKind::Vp => ModelSde::Vp(VpSde::default()),
            SdeKind::Subvp => ModelSde::SubVp(SubVpSde::default()),
            SdeKind::Ve => ModelSde::Ve(VeSde::default()),
        }
    }
}

/// The spacing of the time grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScheduleKind {
    /// Equal steps in t.
    Uniform,
    /// EDM (Karras) spacing, ρ = 7.
    Karras,
    /// Equal steps in log-SNR.
    Logsnr,
}

/// Everything that defines a sampling run besides the score and its SDE.
#[derive(Clone, Copy, Debug)]
pub struct SampleOptions {
    /// The sampler.
    pub sampler: SamplerKind,
    /// Steps of the grid.
    pub steps: u32,
    /// Grid spacing.
    pub schedule: ScheduleKind,
    /// Final denoising step.
    pub denoise: bool,
    /// Particles.
    pub n: usize,
    /// Seed.
    pub seed: u64,
    /// Threads (0: all cores).
    pub threads: usize,
    /// Last time of the grid.
    pub t_end: f32,
}

impl SampleOptions {
    /// `n` particles of `sampler` on a uniform grid of `steps` steps from T to `t_end`, no
    /// denoising, all cores.
    pub fn uniform(sampler: SamplerKind, steps: u32, n: usize, seed: u64, t_end: f32) -> Self {
        SampleOptions {
            sampler,
            steps,
            schedule: ScheduleKind::Uniform,
            denoise: false,
            n,
            seed,
            threads: 0,
            t_end,
        }
    }
}

/// A score for each forward process: the exact score depends on the SDE, a network's does not.
pub trait ScoreFor<D: LinearSde, const N: usize> {
    /// The score under `sde`.
    type Score<'a>: Score<N> + Sync
    where
        Self: 'a;
    /// Builds it.
    fn for_sde(&self, sde: D) -> Self::Score<'_>;
}

/// The exact score of a Gaussian-mixture dataset, diffused by whichever SDE is chosen.
pub struct ExactMixture<const N: usize>(pub Vec<Component<N>>);

impl<D: LinearSde + Sync, const N: usize> ScoreFor<D, N> for ExactMixture<N> {
    type Score<'a> = Diffused<D, GaussianMixture<'a, N>>;
    fn for_sde(&self, sde: D) -> Self::Score<'_> {
        // The components were validated when built; an empty list is refused by `new`.
        Diffused::new(
            sde,
            crate::simd::exact_mixture(&self.0).expect("a mixture has components"),
        )
    }
}

/// Samples `mixture` with its exact score diffused by `sde`, whatever its dimension.
pub fn sample_exact(options: &SampleOptions, sde: ModelSde, mixture: &Mixture) -> Result<Samples> {
    crate::with_dim!(mixture.dim(), sample_exact_in(options, sde, mixture))
}

fn sample_exact_in<const N: usize>(
    options: &SampleOptions,
    sde: ModelSde,
    mixture: &Mixture,
) -> Result<Samples> {
    // One SDE type for the three (an enum): a third of the code of one per SDE, for each
    // dimension.
    let exact = ExactMixture(mixture.components::<N>()?);
    Ok(Samples::from_rows(&sample_with_sde(sde, options, &exact)?))
}

/// A parsed model's network, whose SDE is the model's.
impl<'m, const N: usize> ScoreFor<ModelSde, N> for Model<'m> {
    type Score<'a>
        = NeuralScore<'m, N>
    where
        Self: 'a;
    fn for_sde(&self, _sde: ModelSde) -> Self::Score<'_> {
        // Callers pick N from the model's header (see `sample_model`).
        crate::simd::neural_score(*self).expect("N is the model's dimension")
    }
}

/// Samples the network of `model` under its SDE, in the model's (normalised) coordinates
/// (`model_file::denormalize` maps them to data units).
pub fn sample_model(model: Model<'_>, options: &SampleOptions) -> Result<Samples> {
    let dim = model.header().dims.dim as usize;
    crate::with_dim!(dim, sample_model_in(model, options))
}

fn sample_model_in<const N: usize>(model: Model<'_>, options: &SampleOptions) -> Result<Samples> {
    let samples: Vec<[f32; N]> = sample_with_sde(model.header().sde, options, &model)?;
    Ok(Samples::from_rows(&samples))
}

/// Runs `o` under `sde` with the score `make_score` builds for it.
pub fn sample_with_sde<D, F, const N: usize>(
    sde: D,
    o: &SampleOptions,
    make_score: &F,
) -> Result<Vec<[f32; N]>>
where
    D: LinearSde + Sync,
    F: ScoreFor<D, N>,
    Ancestral: AncestralFor<D>,
{
    let schedule = match o.schedule {
        ScheduleKind::Uniform => Schedule::Uniform,
        ScheduleKind::Karras => Schedule::Karras { rho: 7.0 },
        ScheduleKind::Logsnr => Schedule::LogSnr,
    };
    let grid = TimeGrid::new(schedule, sde.t_max(), o.t_end, o.steps)?;
    let score = make_score.for_sde(sde);
    macro_rules! run {
        ($solver:expr) => {
            sample_particles(
                &Sampler::new($solver, grid).with_denoise(o.denoise),
                &sde,
                &score,
                o.n,
                o.seed,
                o.threads,
            )
        };
    }
    match o.sampler {
        SamplerKind::Em => run!(EulerMaruyama),
        SamplerKind::Rd => run!(ReverseDiffusion),
        SamplerKind::Ancestral => Ancestral::sample_with(&sde, &score, grid, o),
        SamplerKind::Pc => run!(PredictorCorrector {
            predictor: ReverseDiffusion,
            corrector: LangevinCorrector::default(),
        }),
        SamplerKind::OdeEuler => run!(OdeEuler),
        SamplerKind::OdeHeun => run!(OdeHeun),
        SamplerKind::OdeRk4 => run!(OdeRk4),
        SamplerKind::Ddim => run!(Ddim),
        SamplerKind::Dpm2 => run!(DpmSolverPp2M),
        SamplerKind::Ald => {
            let sigma_last = sde.sigma(o.t_end);
            run!(AnnealedLangevin::new(
                sigma_last * sigma_last,
                2,
                sigma_last
            )?)
        }
    }
}

/// Ancestral sampling where the SDE has it (VP, VE); sub-VP has none and is refused.
pub trait AncestralFor<D: LinearSde> {
    /// Samples with ancestral steps.
    fn sample_with<S: Score<N> + Sync, const N: usize>(
        sde: &D,
        score: &S,
        grid: TimeGrid,
        o: &SampleOptions,
    ) -> Result<Vec<[f32; N]>>;
}

macro_rules! ancestral_for {
    ($sde:ty) => {
        impl AncestralFor<$sde> for Ancestral {
            fn sample_with<S: Score<N> + Sync, const N: usize>(
                sde: &$sde,
                score: &S,
                grid: TimeGrid,
                o: &SampleOptions,
            ) -> Result<Vec<[f32; N]>> {
                let sampler = Sampler::new(Ancestral, grid).with_denoise(o.denoise);
                sample_particles(&sampler, sde, score, o.n, o.seed, o.threads)
            }
        }
    };
}
ancestral_for!(VpSde);
ancestral_for!(VeSde);

impl AncestralFor<ModelSde> for Ancestral {
    fn sample_with<S: Score<N> + Sync, const N: usize>(
        sde: &ModelSde,
        score: &S,
        grid: TimeGrid,
        o: &SampleOptions,
    ) -> Result<Vec<[f32; N]>> {
        match sde {
            ModelSde::Vp(vp) => Ancestral::sample_with(vp, score, grid, o),
            ModelSde::Ve(ve) => Ancestral::sample_with(ve, score, grid, o),
            ModelSde::SubVp(_) => {
                bail!("ancestral sampling is defined for the VP and VE SDEs only")
            }
        }
    }
}
