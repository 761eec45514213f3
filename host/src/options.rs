//! The sampler, SDE and grid choices of the command line, and the dispatch from a choice to
//! the generic core types.

use crate::datasets::Mixture;
use crate::sampling::{sample_particles, Samples};
use anyhow::{bail, ensure, Context, Result};
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

/// What a trained network's output is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputKind {
    /// ε̂ less the Gaussian data's noise prediction σ/(α² + σ²)·x, which the model adds back
    /// in f32: ε̂ keeps growing with x beyond the network's (or int8's) ranges.
    Residual,
    /// ε̂ itself (score_sde's ε-prediction).
    Noise,
}

impl OutputKind {
    /// The model file's output.
    pub fn model_output(self) -> tinyscore::model::Output {
        match self {
            OutputKind::Residual => tinyscore::model::Output::GaussianResidual,
            OutputKind::Noise => tinyscore::model::Output::Noise,
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

/// Everything that defines a sampling run besides the score.
#[derive(Clone, Copy, Debug)]
pub struct SampleOptions {
    /// The sampler.
    pub sampler: SamplerKind,
    /// The forward process.
    pub sde: SdeKind,
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
    /// `n` particles of `sampler` on a uniform grid of `steps` steps from T to `t_end`, under
    /// the VP-SDE where the score does not fix the SDE itself, no denoising, all cores.
    pub fn uniform(sampler: SamplerKind, steps: u32, n: usize, seed: u64, t_end: f32) -> Self {
        SampleOptions {
            sampler,
            sde: SdeKind::Vp,
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

impl<const N: usize> ExactMixture<N> {
    /// Runs `options` with this score under the SDE they choose.
    pub fn sample(&self, options: &SampleOptions) -> Result<Vec<[f32; N]>> {
        // One SDE type for the three (an enum): a third of the code of one per SDE, for
        // each of the 64 dimensions.
        sample_with_sde(options.sde.model_sde(), options, self)
    }
}

/// Samples `mixture` with its exact score, whatever its dimension.
pub fn sample_exact(options: &SampleOptions, mixture: &Mixture) -> Result<Samples> {
    crate::with_dim!(mixture.dim(), sample_exact_in(options, mixture))
}

fn sample_exact_in<const N: usize>(options: &SampleOptions, mixture: &Mixture) -> Result<Samples> {
    let exact = ExactMixture(mixture.components::<N>()?);
    Ok(Samples::from_rows(&exact.sample(options)?))
}

/// A model file's network, whose SDE is fixed by the file.
pub struct NetworkScore(pub Vec<u8>);

impl<const N: usize> ScoreFor<ModelSde, N> for NetworkScore {
    type Score<'a> = NeuralScore<'a, N>;
    fn for_sde(&self, _sde: ModelSde) -> Self::Score<'_> {
        // Checked when the file was loaded (see `NetworkScore::load`); callers pick N from
        // the file's header (see `NetworkScore::sample`).
        crate::simd::neural_score(Model::parse(&self.0).expect("a checked model"))
            .expect("N is the model's")
    }
}

impl NetworkScore {
    /// Reads and checks a model file; returns it with its SDE.
    pub fn load(path: &std::path::Path) -> Result<(Self, ModelSde)> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let model = Model::parse(&bytes).with_context(|| format!("{}", path.display()))?;
        let sde = model.header().sde;
        Ok((NetworkScore(bytes), sde))
    }

    /// `samples` (in the model's coordinates) in data units.
    pub fn denormalize(&self, samples: &Samples) -> Result<Samples> {
        let model = Model::parse(&self.0)?;
        ensure!(
            samples.dim == model.header().dims.dim as usize,
            "{}-D samples for a {}-D model",
            samples.dim,
            model.header().dims.dim
        );
        let values = samples
            .rows()
            .flat_map(|x| {
                x.iter().enumerate().map(move |(d, v)| {
                    let (mean, std) = model.normalization(d);
                    mean + std * v
                })
            })
            .collect();
        Ok(Samples {
            dim: samples.dim,
            values,
        })
    }

    /// The model's data dimension.
    pub fn dim(&self) -> usize {
        Model::parse(&self.0).map_or(0, |m| m.header().dims.dim as usize)
    }

    /// Samples in the model's coordinates, mapped back to data units when `data_units`.
    pub fn sample(
        &self,
        sde: ModelSde,
        options: &SampleOptions,
        data_units: bool,
    ) -> Result<Samples> {
        let samples = crate::with_dim!(self.dim(), sample_network_in(self, sde, options))?;
        if data_units {
            self.denormalize(&samples)
        } else {
            Ok(samples)
        }
    }
}

fn sample_network_in<const N: usize>(
    network: &NetworkScore,
    sde: ModelSde,
    options: &SampleOptions,
) -> Result<Samples> {
    let samples: Vec<[f32; N]> = sample_with_sde(sde, options, network)?;
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
