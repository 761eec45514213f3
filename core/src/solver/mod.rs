//! Reverse-time samplers: one [`Solver`] step at a time, driven over a grid by [`Sampler`].
//!
//! A step advances up to `B` particles in lockstep (`B` is a const parameter of the driver):
//! the score is evaluated for all of them at once ([`Score::score_batch`]), which lets a
//! score share its per-time work and vectorise. Every particle keeps its own noise stream, and
//! single-particle sampling is the same code with `B = 1`, so a particle's bits never depend
//! on the batch it was computed in — on a host thread pool or on a chip.
//!
//! | solver | integrates | score evals/step | order |
//! |---|---|---|---|
//! | [`EulerMaruyama`] | reverse SDE | 1 | weak 1 (strong 1 for additive noise) |
//! | [`ReverseDiffusion`] | reverse SDE, exact forward transition | 1 | weak 1 |
//! | [`Ancestral`] | DDPM/SMLD ancestral sampling (VP, VE) | 1 | weak 1 |
//! | [`PredictorCorrector`] | a predictor plus a [`Corrector`] | 1 + corrector steps | the predictor's |
//! | [`AnnealedLangevin`] | NCSN annealed Langevin dynamics | steps per level | 1 (ULA bias per level) |
//! | [`OdeEuler`] | probability-flow ODE | 1 | 1 |
//! | [`OdeHeun`] | probability-flow ODE | 2 | 2 |
//! | [`OdeRk4`] | probability-flow ODE | 4 | 4 |
//! | [`Ddim`] | probability-flow ODE, exponential integrator | 1 | 1 |
//! | [`DpmSolverPp2M`] | probability-flow ODE, exponential multistep | 1 | 2 |
//! | [`DpmSolverPp3M`] | probability-flow ODE, exponential multistep | 1 | 3 |
//! | [`UniPc`] | probability-flow ODE, multistep predictor–corrector (bh2) | 1 | 3 |
//! | [`EdmHeun`] | probability-flow ODE in the EDM variables (σ/α, x/α) | 2 | 2 |
//! | [`Bespoke`] | probability-flow ODE, multistep fitted to a score and grid | 1 | — |
//!
//! [`Dopri5`] integrates the probability-flow ODE adaptively, one particle at a time, to a
//! tolerance rather than over a grid (see [`crate::likelihood`]).

mod adaptive;
mod bespoke;
mod method;
mod ode;
mod stochastic;

pub use adaptive::{Dopri5, OdeStats, Rates};
pub use bespoke::{Bespoke, BespokeHistory, StepCoefficients, MAX_BESPOKE_STEPS};
pub use method::{Method, Settings, WithSolver};
pub use ode::{
    Ddim, DpmSolverPp2M, DpmSolverPp3M, EdmHeun, MultistepHistory, OdeEuler, OdeHeun, OdeRk4,
    TwoStepHistory, UniPc, UniPcHistory,
};
pub use stochastic::{
    Ancestral, AnnealedLangevin, Corrector, EulerMaruyama, LangevinCorrector, PredictorCorrector,
    ReverseDiffusion,
};

use crate::error::{ParticleError, SampleError, StepError};
use crate::grid::TimeGrid;
use crate::noise::GaussianStream;
use crate::observe::Observer;
use crate::score::{checked_scores, Score};
use crate::sde::LinearSde;
use crate::vector;
use rand_core::Rng;

/// One step of a reverse-time sampler, from `t` down to `t_next < t`, for a batch of
/// particles advanced in lockstep.
pub trait Solver<D: LinearSde, const N: usize> {
    /// What the solver carries between steps per particle (multistep methods); `()` else.
    type State: Default + Copy;
    /// The order of convergence in the step size: of the global error for the ODE solvers,
    /// the weak order (error in expectations) for the stochastic ones.
    const ORDER: u32;
    /// Advances each particle `xs[i]` (with its state `states[i]` and noise `noises[i]`) from
    /// `span.t` to `span.t_next`. The three slices have one length, at most `B`: the step's scratch
    /// space is a few `[[f32; N]; B]` on the stack, and particles beyond `B` are left as they
    /// are. [`Sampler`] passes chunks of `B`.
    #[allow(clippy::too_many_arguments)]
    fn step<S: Score<N>, R: Rng, const B: usize>(
        &self,
        sde: &D,
        score: &S,
        span: Span,
        xs: &mut [[f32; N]],
        states: &mut [Self::State],
        noises: &mut [GaussianStream<R>],
    ) -> Result<(), StepError>;
}

/// One step of a grid: from `t` down to `t_next`, with `remaining` steps after it (0 for the
/// last), which lets a multistep method lower its order at the end of the grid.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Span {
    /// The time the step starts from.
    pub t: f32,
    /// The time it ends at, `< t`.
    pub t_next: f32,
    /// The steps of the grid after this one.
    pub remaining: u32,
}

/// Runs a [`Solver`] over a [`TimeGrid`], optionally ending with a denoising step.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Sampler<P> {
    /// The step.
    pub solver: P,
    /// The times, from the prior down to the end.
    pub grid: TimeGrid,
    /// Whether to finish with Tweedie's denoising step `x̂₀ = (x + σ²s(x, t))/α` at the last
    /// time, which removes the noise of scale `σ(t_end)` that the last step leaves.
    pub denoise: bool,
}

impl<P> Sampler<P> {
    /// `solver` over `grid`, without the denoising step.
    pub fn new(solver: P, grid: TimeGrid) -> Self {
        Sampler {
            solver,
            grid,
            denoise: false,
        }
    }

    /// The same sampler with the final denoising step on or off.
    pub fn with_denoise(self, denoise: bool) -> Self {
        Sampler { denoise, ..self }
    }

    /// A draw from the prior carried to the end of the grid.
    pub fn sample<D, S, R, O, const N: usize>(
        &self,
        sde: &D,
        score: &S,
        noise: &mut GaussianStream<R>,
        observer: &mut O,
    ) -> Result<[f32; N], SampleError>
    where
        D: LinearSde,
        P: Solver<D, N>,
        S: Score<N>,
        R: Rng,
        O: Observer<N>,
    {
        let mut x = sde.sample_prior(noise);
        self.run(sde, score, &mut x, noise, observer)?;
        Ok(x)
    }

    /// Carries `x` from the first time of the grid to the last. The observer sees the start
    /// (step 0), the state after each step `i + 1`, and, with `denoise`, the denoised state
    /// as step `K + 1` at `t = 0`. A non-finite score or state stops the run with the index of
    /// the failing step; `x` then holds the last finite state.
    pub fn run<D, S, R, O, const N: usize>(
        &self,
        sde: &D,
        score: &S,
        x: &mut [f32; N],
        noise: &mut GaussianStream<R>,
        observer: &mut O,
    ) -> Result<(), SampleError>
    where
        D: LinearSde,
        P: Solver<D, N>,
        S: Score<N>,
        R: Rng,
        O: Observer<N>,
    {
        let xs = core::slice::from_mut(x);
        let noises = core::slice::from_mut(noise);
        self.run_chunk::<D, S, R, _, N, 1>(sde, score, xs, noises, |step, t, xs| {
            observer.observe(step, t, &xs[0])
        })
        .map_err(|e| e.error)
    }

    /// Draws `out.len()` particles from the prior and carries them to the end of the grid,
    /// `B` at a time in lockstep; particle `i` uses `noises[i]` (the slices have one length).
    /// Each particle gets the same bits as [`sample`](Self::sample) with its stream.
    pub fn sample_batch<D, S, R, const N: usize, const B: usize>(
        &self,
        sde: &D,
        score: &S,
        noises: &mut [GaussianStream<R>],
        out: &mut [[f32; N]],
    ) -> Result<(), ParticleError>
    where
        D: LinearSde,
        P: Solver<D, N>,
        S: Score<N>,
        R: Rng,
    {
        self.sample_batch_observed::<D, S, R, _, N, B>(sde, score, noises, out, |_, _, _| ())
    }

    /// [`sample_batch`](Self::sample_batch), calling `on_step(step, t, xs)` with each chunk
    /// of at most `B` particles at its start (step 0) and after each step, as
    /// [`run`](Self::run)'s observer sees one particle (a host shows progress with it).
    pub fn sample_batch_observed<D, S, R, F, const N: usize, const B: usize>(
        &self,
        sde: &D,
        score: &S,
        noises: &mut [GaussianStream<R>],
        out: &mut [[f32; N]],
        on_step: F,
    ) -> Result<(), ParticleError>
    where
        D: LinearSde,
        P: Solver<D, N>,
        S: Score<N>,
        R: Rng,
        F: FnMut(u32, f32, &[[f32; N]]),
    {
        for (x, noise) in out.iter_mut().zip(noises.iter_mut()) {
            *x = sde.sample_prior(noise);
        }
        self.run_batch_observed::<D, S, R, F, N, B>(sde, score, noises, out, on_step)
    }

    /// Carries the states `xs` (at the grid's first time, e.g. points given at `T`) to the end
    /// of the grid, `B` at a time in lockstep, as
    /// [`sample_batch_observed`](Self::sample_batch_observed) does after its draws from the
    /// prior; particle `i` uses `noises[i]` for the stochastic steps.
    pub fn run_batch_observed<D, S, R, F, const N: usize, const B: usize>(
        &self,
        sde: &D,
        score: &S,
        noises: &mut [GaussianStream<R>],
        xs: &mut [[f32; N]],
        mut on_step: F,
    ) -> Result<(), ParticleError>
    where
        D: LinearSde,
        P: Solver<D, N>,
        S: Score<N>,
        R: Rng,
        F: FnMut(u32, f32, &[[f32; N]]),
    {
        let out = xs;
        let chunk = B.max(1);
        let mut first = 0;
        for (xs, noises) in out.chunks_mut(chunk).zip(noises.chunks_mut(chunk)) {
            self.run_chunk::<D, S, R, _, N, B>(sde, score, xs, noises, &mut on_step)
                .map_err(|e| ParticleError {
                    particle: first + e.particle,
                    error: e.error,
                })?;
            first += chunk;
        }
        Ok(())
    }

    /// Runs one chunk of at most `B` particles through every step.
    fn run_chunk<D, S, R, F, const N: usize, const B: usize>(
        &self,
        sde: &D,
        score: &S,
        xs: &mut [[f32; N]],
        noises: &mut [GaussianStream<R>],
        mut on_step: F,
    ) -> Result<(), ParticleError>
    where
        D: LinearSde,
        P: Solver<D, N>,
        S: Score<N>,
        R: Rng,
        F: FnMut(u32, f32, &[[f32; N]]),
    {
        let len = xs.len().min(noises.len()).min(B);
        let (xs, noises) = (&mut xs[..len], &mut noises[..len]);
        let steps = self.grid.steps();
        let mut states = [P::State::default(); B];
        let states = &mut states[..len];
        let mut t = self.grid.time(sde, 0);
        on_step(0, t, xs);
        for i in 0..steps {
            let t_next = self.grid.time(sde, i + 1);
            let mut next = [[0.0f32; N]; B];
            let next = &mut next[..len];
            next.copy_from_slice(xs);
            self.solver
                .step::<S, R, B>(
                    sde,
                    score,
                    Span {
                        t,
                        t_next,
                        remaining: steps - 1 - i,
                    },
                    next,
                    states,
                    noises,
                )
                .map_err(|e| ParticleError::at(i, e))?;
            check_states(next, i)?;
            xs.copy_from_slice(next);
            t = t_next;
            on_step(i + 1, t, xs);
        }
        if self.denoise {
            let mut scores = [[0.0f32; N]; B];
            let scores = checked_scores(score, xs, t, &mut scores)
                .map_err(|e| ParticleError::at(steps, e))?;
            let (alpha, sigma) = (sde.alpha(t), sde.sigma(t));
            let mut denoised = [[0.0f32; N]; B];
            let denoised = &mut denoised[..len];
            for ((d, x), s) in denoised.iter_mut().zip(xs.iter()).zip(scores) {
                *d = vector::scale(1.0 / alpha, &vector::axpy(sigma * sigma, s, x));
            }
            check_states(denoised, steps)?;
            xs.copy_from_slice(denoised);
            on_step(steps + 1, 0.0, xs);
        }
        Ok(())
    }
}

/// Fails at `step` with the first particle whose state is not finite.
fn check_states<const N: usize>(xs: &[[f32; N]], step: u32) -> Result<(), ParticleError> {
    match vector::first_non_finite(xs) {
        None => Ok(()),
        Some(particle) => Err(ParticleError {
            particle,
            error: SampleError::NonFiniteState { step },
        }),
    }
}
