//! A few-step solver of the probability-flow ODE whose coefficients are fitted to one score
//! and one time grid (in the spirit of Shaul et al., "Bespoke Non-Stationary Solvers", 2024).
//!
//! Every linear multistep method in data prediction (DDIM, DPM-Solver++, UniPC's predictor)
//! takes the next state as a linear combination of the current state, the data predictions
//! `x̂₀ = (x + σ²s)/α` made so far and the starting point, with coefficients set by the times
//! alone. [`Bespoke`] keeps that form,
//!
//! `x_{i+1} = a_i·x_i + b_i·x̂₀(x_i, t_i) + c_i·x̂₀(x_{i−1}, t_{i−1}) + e_i·x_T`,
//!
//! one score evaluation a step, and takes `(a_i, b_i, c_i, e_i)` from a fit to the score's
//! converged solution: `tinyscore schedule --sampler bespoke` fits them step by step by least
//! squares on calibration draws, each step correcting the error the earlier ones left. The
//! coefficients belong to the grid they were fitted on and have no order of convergence.

use super::ode::denoised;
use super::{Solver, Span};
use crate::error::{ParamError, StepError};
use crate::noise::GaussianStream;
use crate::score::Score;
use crate::sde::LinearSde;
use rand_core::Rng;

/// The most steps of a [`Bespoke`] solver (it is for few-step sampling).
pub const MAX_BESPOKE_STEPS: usize = 32;

/// Coefficients `[a, b, c, e]` of one step: of the state, its data prediction, the previous
/// step's data prediction and the starting point.
pub type StepCoefficients = [f32; 4];

/// The fitted linear multistep solver: its coefficients, one row a step, held inline (no
/// allocator), so that a solver read from a file or baked into firmware is a `Copy` value.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Bespoke {
    coefficients: [StepCoefficients; MAX_BESPOKE_STEPS],
    steps: u32,
}

impl Bespoke {
    /// The solver with these coefficients, one row a step of its grid: 1 to
    /// [`MAX_BESPOKE_STEPS`] rows, every value finite, and the first step without the terms
    /// it cannot have (`c₀ = e₀ = 0`: there is no earlier prediction, and the start is the
    /// state).
    pub fn new(coefficients: &[StepCoefficients]) -> Result<Self, ParamError> {
        ParamError::require(
            (1..=MAX_BESPOKE_STEPS).contains(&coefficients.len()),
            "bespoke coefficients",
            "1 to 32 steps",
        )?;
        ParamError::require(
            coefficients.iter().flatten().all(|c| c.is_finite()),
            "bespoke coefficients",
            "finite",
        )?;
        ParamError::require(
            coefficients[0][2] == 0.0 && coefficients[0][3] == 0.0,
            "bespoke coefficients",
            "c = e = 0 at the first step",
        )?;
        let mut rows = [[0.0f32; 4]; MAX_BESPOKE_STEPS];
        rows[..coefficients.len()].copy_from_slice(coefficients);
        Ok(Bespoke {
            coefficients: rows,
            steps: coefficients.len() as u32,
        })
    }

    /// The coefficients, one row a step.
    pub fn coefficients(&self) -> &[StepCoefficients] {
        &self.coefficients[..(self.steps as usize).min(MAX_BESPOKE_STEPS)]
    }

    /// The steps of the grid it was fitted on.
    pub fn steps(&self) -> u32 {
        self.steps
    }

    /// The step `x_{i+1}` from the state, its data prediction, the previous step's and the
    /// start, coordinate by coordinate in one order (the host's fit and every target get these
    /// bits).
    #[inline]
    pub fn combine<const N: usize>(
        row: &StepCoefficients,
        x: &[f32; N],
        prediction: &[f32; N],
        previous: &[f32; N],
        start: &[f32; N],
    ) -> [f32; N] {
        let [a, b, c, e] = *row;
        core::array::from_fn(|d| a * x[d] + b * prediction[d] + c * previous[d] + e * start[d])
    }
}

/// What [`Bespoke`] carries from step to step: the starting point and the last data
/// prediction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BespokeHistory<const N: usize> {
    start: [f32; N],
    previous: [f32; N],
}

impl<const N: usize> Default for BespokeHistory<N> {
    fn default() -> Self {
        BespokeHistory {
            start: [0.0; N],
            previous: [0.0; N],
        }
    }
}

impl<D: LinearSde, const N: usize> Solver<D, N> for Bespoke {
    type State = BespokeHistory<N>;
    /// Fitted, not derived: no order in the step size.
    const ORDER: u32 = 0;
    fn step<S: Score<N>, R: Rng, const B: usize>(
        &self,
        sde: &D,
        score: &S,
        span: Span,
        xs: &mut [[f32; N]],
        histories: &mut [BespokeHistory<N>],
        _noises: &mut [GaussianStream<R>],
    ) -> Result<(), StepError> {
        // `Method::with_solver` checks that the grid has the solver's steps; on a longer grid
        // the first steps would take the first row.
        let index = self.steps.saturating_sub(span.remaining + 1);
        let row = self.coefficients[(index as usize).min(MAX_BESPOKE_STEPS - 1)];
        let mut buffer = [[0.0f32; N]; B];
        let predictions = denoised(sde, score, xs, span.t, &mut buffer)?;
        for ((x, history), prediction) in xs.iter_mut().zip(histories).zip(predictions) {
            if index == 0 {
                history.start = *x;
            }
            *x = Bespoke::combine(&row, x, prediction, &history.previous, &history.start);
            history.previous = *prediction;
        }
        Ok(())
    }
}
