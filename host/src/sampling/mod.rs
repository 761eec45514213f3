//! Sampling on the host: the sampler, SDE and grid choices, and the dispatch from a choice
//! to the generic core types, for an exact mixture score ([`sample_exact`]) or a parsed
//! model's network ([`sample_model`]); many particles at once ([`particles`]); Langevin MCMC
//! on a time-independent target ([`langevin`]).

pub mod langevin;
pub mod particles;

use crate::progress::Progress;
pub use particles::{in_batches, sample_particles, thread_pool, BatchFn, BATCH};

use crate::data::Mixture;
use crate::points::Samples;
use anyhow::Result;
use clap::ValueEnum;
use tinyscore::{
    Bespoke, Component, Diffused, Dopri5, FittedGrid, GaussianMixture, LinearSde, Method, Model,
    ModelSde, NeuralScore, Sampler, Schedule, Score, Settings, Solver, SubVpSde, TimeGrid, VeSde,
    VpSde, WithSolver,
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
    /// DPM-Solver++(3M) (K + 1 evaluations).
    Dpm3,
    /// UniPC: multistep predictor with the UniC corrector (bh2; order 3).
    Unipc,
    /// Probability-flow ODE, Heun in the EDM variables (σ/α, x/α).
    EdmHeun,
    /// Probability-flow ODE, a multistep solver whose coefficients `tinyscore schedule
    /// --sampler bespoke` fits to the score and grid (needs --grid with them).
    Bespoke,
    /// Probability-flow ODE, adaptive Dormand–Prince 5(4) (scipy's RK45): --rtol, --atol
    /// instead of --steps.
    OdeRk45,
    /// Annealed Langevin dynamics.
    Ald,
}

impl SamplerKind {
    /// Whether it is a multistep method, whose last steps can lower the order.
    pub fn is_multistep(self) -> bool {
        self.method().is_some_and(Method::is_multistep)
    }

    /// Its command-line name.
    pub fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }

    /// The core's grid sampler of this name (`None` for the adaptive `ode-rk45`).
    pub fn method(self) -> Option<Method> {
        Method::from_name(&self.name())
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

impl ScheduleKind {
    /// The core's schedule (Karras with ρ = 7).
    pub fn schedule(self) -> Schedule {
        match self {
            ScheduleKind::Uniform => Schedule::Uniform,
            ScheduleKind::Karras => Schedule::Karras { rho: 7.0 },
            ScheduleKind::Logsnr => Schedule::LogSnr,
        }
    }

    /// Its command-line name.
    pub fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }
}

/// Everything that defines a sampling run besides the score and its SDE.
#[derive(Clone, Copy, Debug)]
pub struct SampleOptions<'a> {
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
    /// The index of the first particle (particle i draws noise stream i of the seed, so a
    /// run split into parts numbered on gives the bits of the whole).
    pub first: u64,
    /// Seed.
    pub seed: u64,
    /// Threads (0: all cores).
    pub threads: usize,
    /// Last time of the grid.
    pub t_end: f32,
    /// The adaptive solver of [`SamplerKind::OdeRk45`] (its tolerances and step limit).
    pub adaptive: Dopri5,
    /// Starting points at T instead of draws from the prior: particle i starts from row i
    /// (in the score's coordinates; as many rows as particles `first..first + n` need).
    pub init: Option<&'a Samples>,
    /// A fitted grid instead of `schedule` (its steps must be `steps`).
    pub fitted: Option<FittedGrid>,
    /// The coefficients of [`SamplerKind::Bespoke`], fitted to the grid.
    pub bespoke: Option<Bespoke>,
    /// Lower the order of the multistep samplers (`dpm2`, `dpm3`, `unipc`) at the last steps.
    pub lower_order_final: bool,
}

/// score_sde's tolerances for its ODE sampler, and a limit of 10 000 steps.
pub fn default_adaptive() -> Dopri5 {
    Dopri5::new(1e-5, 1e-5, 10_000).expect("valid tolerances")
}

impl SampleOptions<'_> {
    /// The particle-steps of the run, as the sampling functions report their progress: every
    /// step of the grid and the denoising step of each particle.
    pub fn particle_steps(&self) -> u64 {
        match self.sampler {
            // Its steps are not known in advance: a particle is one unit.
            SamplerKind::OdeRk45 => self.n as u64,
            _ => self.n as u64 * (u64::from(self.steps) + u64::from(self.denoise)),
        }
    }

    /// `n` particles of `sampler` on a uniform grid of `steps` steps from T to `t_end`, no
    /// denoising, all cores.
    pub fn uniform(
        sampler: SamplerKind,
        steps: u32,
        n: usize,
        seed: u64,
        t_end: f32,
    ) -> SampleOptions<'static> {
        SampleOptions {
            sampler,
            steps,
            schedule: ScheduleKind::Uniform,
            denoise: false,
            n,
            first: 0,
            seed,
            threads: 0,
            t_end,
            adaptive: default_adaptive(),
            init: None,
            fitted: None,
            bespoke: None,
            lower_order_final: false,
        }
    }
}

/// A score for the model SDE chosen (the exact score depends on the SDE, a network's does
/// not), on states of `N` coordinates of which the first [`coordinates`](Self::coordinates)
/// are the data's (the rest padding; see [`crate::dims`]).
pub trait ScoreFor<const N: usize> {
    /// The score under an SDE.
    type Score<'a>: Score<N> + Sync
    where
        Self: 'a;
    /// Builds it.
    fn for_sde(&self, sde: ModelSde) -> Self::Score<'_>;
    /// The data's coordinates.
    fn coordinates(&self) -> usize;
}

/// The exact score of a Gaussian-mixture dataset, diffused by whichever SDE is chosen.
pub struct ExactMixture<const N: usize> {
    components: Vec<Component<N>>,
    coordinates: usize,
}

impl<const N: usize> ExactMixture<N> {
    /// The components of `mixture` in states of `N` coordinates.
    pub fn new(mixture: &Mixture) -> Result<Self> {
        Ok(ExactMixture {
            components: mixture.components::<N>()?,
            coordinates: mixture.dim(),
        })
    }
}

impl<const N: usize> ScoreFor<N> for ExactMixture<N> {
    type Score<'a> = Diffused<ModelSde, GaussianMixture<'a, N>>;
    fn for_sde(&self, sde: ModelSde) -> Self::Score<'_> {
        // The components were validated when built; an empty list is refused by `new`.
        let mixture =
            crate::simd::exact_mixture(&self.components).expect("a mixture has components");
        Diffused::new(sde, mixture.with_coordinates(self.coordinates))
    }
    fn coordinates(&self) -> usize {
        self.coordinates
    }
}

/// Samples `mixture` with its exact score diffused by `sde`, whatever its dimension;
/// `progress` advances by one per particle and step ([`SampleOptions::particle_steps`]).
pub fn sample_exact(
    options: &SampleOptions,
    sde: ModelSde,
    mixture: &Mixture,
    progress: &Progress,
) -> Result<Samples> {
    crate::with_dim!(
        mixture.dim(),
        sample_exact_in(options, sde, mixture, progress)
    )
}

fn sample_exact_in<const N: usize>(
    options: &SampleOptions,
    sde: ModelSde,
    mixture: &Mixture,
    progress: &Progress,
) -> Result<Samples> {
    let exact = ExactMixture::<N>::new(mixture)?;
    let rows = sample_with_sde(sde, options, &exact, progress)?;
    Ok(Samples::from_padded_rows(&rows, mixture.dim()))
}

/// A parsed model's network, whose SDE is the model's.
impl<'m, const N: usize> ScoreFor<N> for Model<'m> {
    type Score<'a>
        = NeuralScore<'m, N>
    where
        Self: 'a;
    fn for_sde(&self, _sde: ModelSde) -> Self::Score<'_> {
        // Callers pick N to hold the model's dimension (see `sample_model`).
        crate::simd::neural_score(*self).expect("N holds the model's dimension")
    }
    fn coordinates(&self) -> usize {
        self.header().dims.dim as usize
    }
}

/// Samples the network of `model` under its SDE, in the model's (normalised) coordinates
/// (`model_file::denormalize` maps them to data units); `progress` advances by one per
/// particle and step ([`SampleOptions::particle_steps`]).
pub fn sample_model(
    model: Model<'_>,
    options: &SampleOptions,
    progress: &Progress,
) -> Result<Samples> {
    let dim = model.header().dims.dim as usize;
    crate::with_dim!(dim, sample_model_in(model, options, progress))
}

fn sample_model_in<const N: usize>(
    model: Model<'_>,
    options: &SampleOptions,
    progress: &Progress,
) -> Result<Samples> {
    let rows: Vec<[f32; N]> = sample_with_sde(model.header().sde, options, &model, progress)?;
    Ok(Samples::from_padded_rows(
        &rows,
        model.header().dims.dim as usize,
    ))
}

/// Runs `o` under `sde` with the score `make_score` builds for it, advancing `progress` by
/// one per particle and step.
pub fn sample_with_sde<F, const N: usize>(
    sde: ModelSde,
    o: &SampleOptions,
    make_score: &F,
    progress: &Progress,
) -> Result<Vec<[f32; N]>>
where
    F: ScoreFor<N>,
{
    anyhow::ensure!(o.n > 0, "-n must be at least 1");
    let schedule = o.fitted.map_or(o.schedule.schedule(), Schedule::Fitted);
    let grid = TimeGrid::new(schedule, sde.t_max(), o.t_end, o.steps)?;
    let score = make_score.for_sde(sde);
    let coordinates = make_score.coordinates();
    let Some(method) = o.sampler.method() else {
        return sample_adaptive(sde, &score, o, coordinates, progress);
    };
    /// Runs the method's solver over the grid.
    struct Run<'a, S, const N: usize> {
        grid: TimeGrid,
        score: &'a S,
        options: &'a SampleOptions<'a>,
        coordinates: usize,
        progress: &'a Progress,
    }
    impl<S: Score<N> + Sync, const N: usize> WithSolver<N> for Run<'_, S, N> {
        type Output = Result<Vec<[f32; N]>>;
        fn run<D, P>(self, solver: P, sde: D) -> Self::Output
        where
            D: LinearSde + Copy + Send + Sync + 'static,
            P: Solver<D, N> + Copy + Send + Sync + 'static,
            P::State: Send + Sync + 'static,
        {
            sample_particles(
                &Sampler::new(solver, self.grid).with_denoise(self.options.denoise),
                &sde,
                self.score,
                self.options,
                self.coordinates,
                self.progress,
            )
        }
    }
    let run = Run {
        grid,
        score: &score,
        options: o,
        coordinates,
        progress,
    };
    method
        .with_solver(
            sde,
            &grid,
            &Settings {
                lower_order_final: o.lower_order_final,
                bespoke: o.bespoke,
            },
            run,
        )
        .map_err(|e| anyhow::anyhow!("--sampler {}: {e}", method.name()))?
}

/// Draws from the prior of `sde`: particles `0..n` of `seed`, in `dim` coordinates, as the
/// samplers draw their starting points.
pub fn prior_draws(sde: ModelSde, dim: usize, seed: u64, n: usize) -> Result<Samples> {
    crate::with_dim!(dim, prior_draws_in(sde, dim, seed, n))
}

fn prior_draws_in<const N: usize>(
    sde: ModelSde,
    dim: usize,
    seed: u64,
    n: usize,
) -> Result<Samples> {
    let mut out = vec![[0.0f32; N]; n];
    in_batches(
        out.as_flattened_mut(),
        N,
        dim,
        (seed, 0),
        0,
        &|_, xs, noises| {
            for (x, noise) in xs.as_chunks_mut::<N>().0.iter_mut().zip(noises) {
                *x = sde.sample_prior(noise);
            }
            Ok(())
        },
    )?;
    Ok(Samples::from_padded_rows(&out, dim))
}

/// What to compute for each of some points under a score ([`at_points_model`],
/// [`at_points_exact`]).
#[derive(Clone, Copy, Debug)]
pub enum PointMap {
    /// Tweedie's data prediction `(x + σ(t)²·s(x, t))/α(t)` at time `t`, with the solvers'
    /// arithmetic.
    Denoise {
        /// The time.
        t: f32,
    },
    /// The probability-flow ODE's solution at `t1` from the point at `t0`, by `solver`.
    Flow {
        /// Where the points are.
        t0: f32,
        /// Where the solution is wanted.
        t1: f32,
        /// The adaptive solver.
        solver: Dopri5,
    },
}

/// `map` of each of `points` (in the model's coordinates) under the network of `model`.
pub fn at_points_model(model: Model<'_>, points: &Samples, map: PointMap) -> Result<Samples> {
    let dim = model.header().dims.dim as usize;
    crate::with_dim!(dim, at_points_model_in(model, points, map))
}

fn at_points_model_in<const N: usize>(
    model: Model<'_>,
    points: &Samples,
    map: PointMap,
) -> Result<Samples> {
    at_points::<_, N>(model.header().sde, &model, points, map)
}

/// [`at_points_model`] for the exact score of `mixture` diffused by `sde`.
pub fn at_points_exact(
    sde: ModelSde,
    mixture: &Mixture,
    points: &Samples,
    map: PointMap,
) -> Result<Samples> {
    crate::with_dim!(mixture.dim(), at_points_exact_in(sde, mixture, points, map))
}

fn at_points_exact_in<const N: usize>(
    sde: ModelSde,
    mixture: &Mixture,
    points: &Samples,
    map: PointMap,
) -> Result<Samples> {
    at_points::<_, N>(sde, &ExactMixture::<N>::new(mixture)?, points, map)
}

fn at_points<F: ScoreFor<N> + Sync, const N: usize>(
    sde: ModelSde,
    make_score: &F,
    points: &Samples,
    map: PointMap,
) -> Result<Samples> {
    use rayon::prelude::*;
    let score = make_score.for_sde(sde);
    let rows: Vec<[f32; N]> = (0..points.len() as u64)
        .into_par_iter()
        .map(|i| {
            let mut x: [f32; N] = start_from(points, i)?;
            match map {
                PointMap::Denoise { t } => {
                    let s = score.score(&x, t);
                    anyhow::ensure!(
                        s.iter().all(|v| v.is_finite()),
                        "the score is not finite at point {i}, t = {t}"
                    );
                    // The solvers' `(1/α)·(x + σ²·s)`, in their order.
                    let (alpha, sigma) = (sde.alpha(t), sde.sigma(t));
                    let variance = sigma * sigma;
                    x = core::array::from_fn(|d| (1.0 / alpha) * (x[d] + variance * s[d]));
                }
                PointMap::Flow { t0, t1, solver } => {
                    solver
                        .integrate(t0, t1, &mut x, None, flow_rates(sde, &score))
                        .map_err(|e| anyhow::anyhow!("point {i}: {e}"))?;
                }
            }
            Ok(x)
        })
        .collect::<Result<_>>()?;
    Ok(Samples::from_padded_rows(&rows, points.dim))
}

/// The probability-flow ODE's velocity `f(x, t) − ½g(t)²s(x, t)` under `score`, for the
/// adaptive solver (no scalar rate); a score that is not finite fails the evaluation.
fn flow_rates<S: Score<N>, const N: usize>(
    sde: ModelSde,
    score: &S,
) -> impl FnMut(f32, &[f32; N]) -> Result<tinyscore::Rates<N>, tinyscore::StepError> + '_ {
    move |t, y| {
        let s = score.score(y, t);
        if !s.iter().all(|v| v.is_finite()) {
            return Err(tinyscore::StepError::NonFiniteScore { particle: 0 });
        }
        let (a, g) = (sde.drift_coeff(t), sde.diffusion_coeff(t));
        Ok((core::array::from_fn(|d| a * y[d] - 0.5 * g * g * s[d]), 0.0))
    }
}

/// [`SamplerKind::OdeRk45`]: each particle from the prior at T down to `t_end` by the adaptive
/// solver (one particle at a time: each takes its own steps), then the denoising step if asked.
fn sample_adaptive<S: Score<N> + Sync, const N: usize>(
    sde: ModelSde,
    score: &S,
    o: &SampleOptions,
    coordinates: usize,
    progress: &Progress,
) -> Result<Vec<[f32; N]>> {
    let mut out = vec![[0.0f32; N]; o.n];
    in_batches(
        out.as_flattened_mut(),
        N,
        coordinates,
        (o.seed, o.first),
        o.threads,
        &|first, xs, noises| {
            for (k, (x, noise)) in xs.as_chunks_mut::<N>().0.iter_mut().zip(noises).enumerate() {
                let particle = first + k as u64;
                *x = match o.init {
                    Some(init) => start_from(init, particle)?,
                    None => sde.sample_prior(noise),
                };
                o.adaptive
                    .integrate(sde.t_max(), o.t_end, x, None, flow_rates(sde, score))
                    .map_err(|e| anyhow::anyhow!("particle {particle}: {e}"))?;
                if o.denoise {
                    let t = o.t_end;
                    let s = score.score(x, t);
                    let (alpha, sigma) = (sde.alpha(t), sde.sigma(t));
                    *x = core::array::from_fn(|d| (x[d] + sigma * sigma * s[d]) / alpha);
                }
                progress.advance(1);
            }
            Ok(())
        },
    )?;
    Ok(out)
}

/// Row `particle` of `init`, padded to `N` coordinates.
pub(crate) fn start_from<const N: usize>(init: &Samples, particle: u64) -> Result<[f32; N]> {
    let row = init.rows().nth(particle as usize).ok_or_else(|| {
        anyhow::anyhow!(
            "--init has {} points: none for particle {particle}",
            init.len()
        )
    })?;
    Ok(core::array::from_fn(|d| row.get(d).copied().unwrap_or(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every grid sampler of the command line is the core's method of the same name, so the
    /// host, the firmware's list and the web page build one solver for one name.
    #[test]
    fn every_grid_sampler_is_a_core_method() {
        for kind in SamplerKind::value_variants() {
            match kind {
                SamplerKind::OdeRk45 => assert_eq!(kind.method(), None),
                _ => assert_eq!(kind.method().map(Method::name), Some(&*kind.name())),
            }
        }
        assert_eq!(SamplerKind::value_variants().len(), Method::ALL.len() + 1);
    }
}
