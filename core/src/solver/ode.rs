//! Deterministic solvers of the probability-flow ODE `dx/dt = f(x, t) − ½g(t)²s(x, t)`,
//! whose solution has the same marginals as the reverse SDE (Song et al. 2021).
//!
//! The Runge–Kutta solvers integrate it as written. The exponential integrators use the
//! data prediction `x̂₀ = (x + σ_t²s)/α_t` and integrate the linear part exactly in the
//! log-SNR `λ = ln(α/σ)` (Lu et al., DPM-Solver and DPM-Solver++, 2022).

use super::{checked_score, Solver};
use crate::error::StepError;
use crate::math;
use crate::noise::GaussianStream;
use crate::score::Score;
use crate::sde::{LinearSde, Sde};
use crate::vector;
use rand_core::Rng;

/// The probability-flow velocity `f(x, t) − ½g(t)²s(x, t)`.
#[inline]
fn velocity<D: LinearSde, S: Score<N>, const N: usize>(
    sde: &D,
    score: &S,
    x: &[f32; N],
    t: f32,
) -> Result<[f32; N], StepError> {
    let s = checked_score(score, x, t)?;
    let g = sde.diffusion_coeff(t);
    Ok(vector::axpy(-0.5 * g * g, &s, &sde.drift(x, t)))
}

/// The data prediction `x̂₀ = (x + σ_t²·s(x, t))/α_t` (Tweedie's formula).
#[inline]
fn denoised<D: LinearSde, S: Score<N>, const N: usize>(
    sde: &D,
    score: &S,
    x: &[f32; N],
    t: f32,
) -> Result<[f32; N], StepError> {
    let s = checked_score(score, x, t)?;
    let sigma = sde.sigma(t);
    Ok(vector::scale(
        1.0 / sde.alpha(t),
        &vector::axpy(sigma * sigma, &s, x),
    ))
}

/// Euler's method on the probability-flow ODE. Order 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OdeEuler;

impl<D: LinearSde, const N: usize> Solver<D, N> for OdeEuler {
    type State = ();
    const ORDER: u32 = 1;
    #[inline]
    fn step<S: Score<N>, R: Rng>(
        &self,
        sde: &D,
        score: &S,
        t: f32,
        t_next: f32,
        x: &mut [f32; N],
        _state: &mut (),
        _noise: &mut GaussianStream<R>,
    ) -> Result<(), StepError> {
        let v = velocity(sde, score, x, t)?;
        *x = vector::axpy(t_next - t, &v, x);
        Ok(())
    }
}

/// Heun's method (explicit trapezoid: an Euler predictor, then the mean of the two slopes) on
/// the probability-flow ODE. Order 2, two score evaluations per step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OdeHeun;

impl<D: LinearSde, const N: usize> Solver<D, N> for OdeHeun {
    type State = ();
    const ORDER: u32 = 2;
    #[inline]
    fn step<S: Score<N>, R: Rng>(
        &self,
        sde: &D,
        score: &S,
        t: f32,
        t_next: f32,
        x: &mut [f32; N],
        _state: &mut (),
        _noise: &mut GaussianStream<R>,
    ) -> Result<(), StepError> {
        let h = t_next - t;
        let k1 = velocity(sde, score, x, t)?;
        let k2 = velocity(sde, score, &vector::axpy(h, &k1, x), t_next)?;
        *x = core::array::from_fn(|d| x[d] + 0.5 * h * (k1[d] + k2[d]));
        Ok(())
    }
}

/// The classical fourth-order Runge–Kutta method on the probability-flow ODE. Order 4, four
/// score evaluations per step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OdeRk4;

impl<D: LinearSde, const N: usize> Solver<D, N> for OdeRk4 {
    type State = ();
    const ORDER: u32 = 4;
    #[inline]
    fn step<S: Score<N>, R: Rng>(
        &self,
        sde: &D,
        score: &S,
        t: f32,
        t_next: f32,
        x: &mut [f32; N],
        _state: &mut (),
        _noise: &mut GaussianStream<R>,
    ) -> Result<(), StepError> {
        let h = t_next - t;
        let t_mid = t + 0.5 * h;
        let k1 = velocity(sde, score, x, t)?;
        let k2 = velocity(sde, score, &vector::axpy(0.5 * h, &k1, x), t_mid)?;
        let k3 = velocity(sde, score, &vector::axpy(0.5 * h, &k2, x), t_mid)?;
        let k4 = velocity(sde, score, &vector::axpy(h, &k3, x), t_next)?;
        *x = core::array::from_fn(|d| x[d] + h / 6.0 * (k1[d] + 2.0 * k2[d] + 2.0 * k3[d] + k4[d]));
        Ok(())
    }
}

/// Deterministic DDIM (Song, Meng & Ermon 2021), i.e. first-order DPM-Solver:
/// `ε̂ = −σ_t s`, `x̂₀ = (x − σ_t ε̂)/α_t`, `x ← α_next x̂₀ + σ_next ε̂`. Exact when the data
/// is a single point; order 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ddim;

impl<D: LinearSde, const N: usize> Solver<D, N> for Ddim {
    type State = ();
    const ORDER: u32 = 1;
    #[inline]
    fn step<S: Score<N>, R: Rng>(
        &self,
        sde: &D,
        score: &S,
        t: f32,
        t_next: f32,
        x: &mut [f32; N],
        _state: &mut (),
        _noise: &mut GaussianStream<R>,
    ) -> Result<(), StepError> {
        let s = checked_score(score, x, t)?;
        let sigma = sde.sigma(t);
        let eps_hat = vector::scale(-sigma, &s);
        let x0 = vector::scale(1.0 / sde.alpha(t), &vector::axpy(-sigma, &eps_hat, x));
        *x = vector::axpy(
            sde.sigma(t_next),
            &eps_hat,
            &vector::scale(sde.alpha(t_next), &x0),
        );
        Ok(())
    }
}

/// DPM-Solver++(2M) (Lu et al. 2022), the multistep second-order exponential integrator in
/// data prediction: with `h = λ_next − λ_t` and `r = h_prev/h`,
/// `D = (1 + 1/2r)x̂₀ − (1/2r)x̂₀_prev` and `x ← (σ_next/σ_t)x − α_next(e^{−h} − 1)D`.
/// The first step, which has no history, is DDIM. One score evaluation per step; order 2.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DpmSolverPp2M;

/// The previous step's data prediction and log-SNR step, for [`DpmSolverPp2M`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MultistepHistory<const N: usize> {
    previous: Option<([f32; N], f32)>,
}

impl<D: LinearSde, const N: usize> Solver<D, N> for DpmSolverPp2M {
    type State = MultistepHistory<N>;
    const ORDER: u32 = 2;
    fn step<S: Score<N>, R: Rng>(
        &self,
        sde: &D,
        score: &S,
        t: f32,
        t_next: f32,
        x: &mut [f32; N],
        history: &mut MultistepHistory<N>,
        _noise: &mut GaussianStream<R>,
    ) -> Result<(), StepError> {
        let x0 = denoised(sde, score, x, t)?;
        let h = sde.log_snr(t_next) - sde.log_snr(t);
        let data = match history.previous {
            None => x0,
            Some((x0_previous, h_previous)) => {
                let half_inv_r = 0.5 * h / h_previous;
                core::array::from_fn(|d| (1.0 + half_inv_r) * x0[d] - half_inv_r * x0_previous[d])
            }
        };
        let carry = sde.sigma(t_next) / sde.sigma(t);
        let pull = -sde.alpha(t_next) * math::expm1(-h);
        *x = core::array::from_fn(|d| carry * x[d] + pull * data[d]);
        history.previous = Some((x0, h));
        Ok(())
    }
}
