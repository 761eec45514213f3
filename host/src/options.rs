//! The sampler, SDE and grid choices of the command line, and the dispatch from a choice to
//! the generic core types.

use crate::sampling::sample_particles;
use anyhow::{bail, Context, Result};
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
pub trait ScoreFor<D: LinearSde> {
    /// The score under `sde`.
    type Score<'a>: Score<2> + Sync
    where
        Self: 'a;
    /// Builds it.
    fn for_sde(&self, sde: D) -> Self::Score<'_>;
}

/// The exact score of a Gaussian-mixture dataset, diffused by whichever SDE is chosen.
pub struct ExactMixture(pub Vec<Component<2>>);

impl<D: LinearSde + Sync> ScoreFor<D> for ExactMixture {
    type Score<'a> = Diffused<D, GaussianMixture<'a, 2>>;
    fn for_sde(&self, sde: D) -> Self::Score<'_> {
        // The components were validated when built; an empty list is refused by `new`.
        Diffused::new(
            sde,
            GaussianMixture::new(&self.0).expect("a mixture has components"),
        )
    }
}

/// Runs `options` with the score `make_score` builds for the chosen SDE.
pub fn sample_2d<F>(options: &SampleOptions, make_score: &F) -> Result<Vec<[f32; 2]>>
where
    F: ScoreFor<VpSde> + ScoreFor<SubVpSde> + ScoreFor<VeSde>,
{
    match options.sde {
        SdeKind::Vp => sample_with_sde(VpSde::default(), options, make_score),
        SdeKind::Subvp => sample_with_sde(SubVpSde::default(), options, make_score),
        SdeKind::Ve => sample_with_sde(VeSde::default(), options, make_score),
    }
}

/// A model file's network, whose SDE is fixed by the file.
pub struct NetworkScore(pub Vec<u8>);

impl ScoreFor<ModelSde> for NetworkScore {
    type Score<'a> = NeuralScore<'a, 2>;
    fn for_sde(&self, _sde: ModelSde) -> Self::Score<'_> {
        // Checked when the file was loaded (see `NetworkScore::load`).
        NeuralScore::new(Model::parse(&self.0).expect("a checked model")).expect("a 2-D model")
    }
}

impl NetworkScore {
    /// Reads and checks a 2-D model file; returns it with its SDE.
    pub fn load(path: &std::path::Path) -> Result<(Self, ModelSde)> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let model = Model::parse(&bytes).with_context(|| format!("{}", path.display()))?;
        let sde = NeuralScore::<2>::new(model)
            .with_context(|| format!("{}: only 2-D models can be sampled for now", path.display()))?
            .sde();
        Ok((NetworkScore(bytes), sde))
    }

    /// Samples in the model's coordinates, mapped back to data units when `data_units`.
    pub fn sample(
        &self,
        sde: ModelSde,
        options: &SampleOptions,
        data_units: bool,
    ) -> Result<Vec<[f32; 2]>> {
        let model = Model::parse(&self.0)?;
        let samples = sample_with_sde(sde, options, self)?;
        Ok(if data_units {
            samples.iter().map(|x| model.denormalize(x)).collect()
        } else {
            samples
        })
    }
}

/// Runs `o` under `sde` with the score `make_score` builds for it.
pub fn sample_with_sde<D, F>(sde: D, o: &SampleOptions, make_score: &F) -> Result<Vec<[f32; 2]>>
where
    D: LinearSde + Sync,
    F: ScoreFor<D>,
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
    fn sample_with<S: Score<2> + Sync>(
        sde: &D,
        score: &S,
        grid: TimeGrid,
        o: &SampleOptions,
    ) -> Result<Vec<[f32; 2]>>;
}

macro_rules! ancestral_for {
    ($sde:ty) => {
        impl AncestralFor<$sde> for Ancestral {
            fn sample_with<S: Score<2> + Sync>(
                sde: &$sde,
                score: &S,
                grid: TimeGrid,
                o: &SampleOptions,
            ) -> Result<Vec<[f32; 2]>> {
                let sampler = Sampler::new(Ancestral, grid).with_denoise(o.denoise);
                sample_particles(&sampler, sde, score, o.n, o.seed, o.threads)
            }
        }
    };
}
ancestral_for!(VpSde);
ancestral_for!(VeSde);

impl AncestralFor<ModelSde> for Ancestral {
    fn sample_with<S: Score<2> + Sync>(
        sde: &ModelSde,
        score: &S,
        grid: TimeGrid,
        o: &SampleOptions,
    ) -> Result<Vec<[f32; 2]>> {
        match sde {
            ModelSde::Vp(vp) => Ancestral::sample_with(vp, score, grid, o),
            ModelSde::Ve(ve) => Ancestral::sample_with(ve, score, grid, o),
            ModelSde::SubVp(_) => {
                bail!("ancestral sampling is defined for the VP and VE SDEs only")
            }
        }
    }
}

impl AncestralFor<SubVpSde> for Ancestral {
    fn sample_with<S: Score<2> + Sync>(
        _: &SubVpSde,
        _: &S,
        _: TimeGrid,
        _: &SampleOptions,
    ) -> Result<Vec<[f32; 2]>> {
        bail!("ancestral sampling is defined for the VP and VE SDEs only")
    }
}
