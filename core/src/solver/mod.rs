//! Reverse-time samplers: one [`Solver`] step at a time, driven over a grid by [`Sampler`].
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

mod ode;
mod stochastic;

pub use ode::{Ddim, DpmSolverPp2M, MultistepHistory, OdeEuler, OdeHeun, OdeRk4};
pub use stochastic::{
    Ancestral, AnnealedLangevin, Corrector, EulerMaruyama, LangevinCorrector, PredictorCorrector,
    ReverseDiffusion,
};

use crate::error::{SampleError, StepError};
use crate::grid::TimeGrid;
use crate::noise::GaussianStream;
use crate::observe::Observer;
use crate::score::Score;
use crate::sde::LinearSde;
use crate::vector;
use rand_core::Rng;

/// One step of a reverse-time sampler, from `t` down to `t_next < t`.
pub trait Solver<D: LinearSde, const N: usize> {
    /// What the solver carries between steps (multistep methods); `()` for one-step ones.
    type State: Default;
    /// The order of convergence in the step size: of the global error for the ODE solvers,
    /// the weak order (error in expectations) for the stochastic ones.
    const ORDER: u32;
    /// Advances `x` from `t` to `t_next`.
    #[allow(clippy::too_many_arguments)]
    fn step<S: Score<N>, R: Rng>(
        &self,
        sde: &D,
        score: &S,
        t: f32,
        t_next: f32,
        x: &mut [f32; N],
        state: &mut Self::State,
        noise: &mut GaussianStream<R>,
    ) -> Result<(), StepError>;
}

/// The score at `(x, t)`, or an error when it is not finite.
#[inline]
pub(crate) fn checked_score<S: Score<N>, const N: usize>(
    score: &S,
    x: &[f32; N],
    t: f32,
) -> Result<[f32; N], StepError> {
    let s = score.score(x, t);
    if vector::all_finite(&s) {
        Ok(s)
    } else {
        Err(StepError::NonFiniteScore)
    }
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
        let steps = self.grid.steps();
        let mut state = P::State::default();
        let mut t = self.grid.time(sde, 0);
        observer.observe(0, t, x);
        for i in 0..steps {
            let t_next = self.grid.time(sde, i + 1);
            let mut next = *x;
            self.solver
                .step(sde, score, t, t_next, &mut next, &mut state, noise)
                .map_err(|e| SampleError::at(i, e))?;
            if !vector::all_finite(&next) {
                return Err(SampleError::NonFiniteState { step: i });
            }
            *x = next;
            t = t_next;
            observer.observe(i + 1, t, x);
        }
        if self.denoise {
            let s = checked_score(score, x, t).map_err(|e| SampleError::at(steps, e))?;
            let (alpha, sigma) = (sde.alpha(t), sde.sigma(t));
            let denoised = vector::scale(1.0 / alpha, &vector::axpy(sigma * sigma, &s, x));
            if !vector::all_finite(&denoised) {
                return Err(SampleError::NonFiniteState { step: steps });
            }
            *x = denoised;
            observer.observe(steps + 1, 0.0, x);
        }
        Ok(())
    }
}
