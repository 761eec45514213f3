//! Stochastic reverse-time solvers: they integrate the reverse SDE or run Langevin dynamics.

use super::{Solver, Span};
use crate::error::{ParamError, StepError};
use crate::mcmc::langevin_update;
use crate::noise::{self, GaussianStream};
use crate::score::checked_scores;
use crate::score::Score;
use crate::sde::{LinearSde, Sde, VeSde, VpSde};
use crate::{math, vector};
use rand_core::Rng;

/// `x + drift·dt + g·dw`: the Euler–Maruyama update, shared by every use of the scheme.
#[inline]
fn euler_maruyama_update<const N: usize>(
    x: &[f32; N],
    drift: &[f32; N],
    dt: f32,
    g: f32,
    dw: &[f32; N],
) -> [f32; N] {
    core::array::from_fn(|d| x[d] + drift[d] * dt + g * dw[d])
}

/// The exact Gaussian transition of a linear SDE from `t_next` up to `t`:
/// `x_t = a·x_{t_next} + G·z` with `a = α(t)/α(t_next)` and
/// `G² = σ(t)² − a²σ(t_next)² = σ(t)²(1 − e^{2(λ(t) − λ(t_next))})`, the second form free of
/// cancellation for small steps.
#[inline]
fn forward_transition<D: LinearSde>(sde: &D, t: f32, t_next: f32) -> (f32, f32) {
    let a = sde.alpha(t) / sde.alpha(t_next);
    let sigma = sde.sigma(t);
    let g2 = -sigma * sigma * math::expm1(2.0 * (sde.log_snr(t) - sde.log_snr(t_next)));
    (a, g2)
}

/// Applies `update(x, s, z)` to every particle with its score `s` at `t` and a standard
/// normal vector `z` from its stream: the shape of every one-evaluation stochastic step. A
/// batch of at least [`noise::LANES`] particles draws its noise together
/// ([`GaussianStream::normals`], which vectorises); a smaller one — a chip's single particle —
/// draws particle by particle and does not link the lane code. The bits are the same.
#[inline]
fn for_each_scored<S, R, const N: usize, const B: usize>(
    score: &S,
    t: f32,
    xs: &mut [[f32; N]],
    noises: &mut [GaussianStream<R>],
    mut update: impl FnMut(&[f32; N], &[f32; N], &[f32; N]) -> [f32; N],
) -> Result<(), StepError>
where
    S: Score<N>,
    R: Rng,
{
    let mut buffer = [[0.0f32; N]; B];
    let scores = checked_scores(score, xs, t, &mut buffer)?;
    let mut normals = [[0.0f32; N]; B];
    let normals = &mut normals[..xs.len().min(noises.len())];
    if B >= noise::LANES {
        GaussianStream::normals(noises, normals);
    } else {
        for (z, noise) in normals.iter_mut().zip(noises.iter_mut()) {
            *z = noise.normal();
        }
    }
    for ((x, s), z) in xs.iter_mut().zip(scores).zip(normals.iter()) {
        *x = update(x, s, z);
    }
    Ok(())
}

/// Euler–Maruyama: `x ← x + [f − g²s]·Δt + g·√|Δt|·z` on the reverse SDE (Δt < 0).
///
/// Weak order 1; strong order ½ in general and 1 when the noise is additive, as for every
/// process in this crate (`g` depends on `t` only). [`EulerMaruyama::step_sde`] integrates any
/// [`Sde`] forward or backward with a given Brownian increment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct EulerMaruyama;

impl EulerMaruyama {
    /// One step of `dx = f(x, t) dt + g(t) dw` from `t` to `t + dt`, driven by the Brownian
    /// increment `dw = W(t + dt) − W(t)`.
    #[inline]
    pub fn step_sde<E: Sde<N>, const N: usize>(
        terms: &E,
        x: &[f32; N],
        t: f32,
        dt: f32,
        dw: &[f32; N],
    ) -> [f32; N] {
        euler_maruyama_update(x, &terms.drift(x, t), dt, terms.diffusion(t), dw)
    }
}

impl<D: LinearSde, const N: usize> Solver<D, N> for EulerMaruyama {
    type State = ();
    const ORDER: u32 = 1;
    #[inline]
    fn step<S: Score<N>, R: Rng, const B: usize>(
        &self,
        sde: &D,
        score: &S,
        span: Span,
        xs: &mut [[f32; N]],
        _states: &mut [()],
        noises: &mut [GaussianStream<R>],
    ) -> Result<(), StepError> {
        let Span { t, t_next, .. } = span;
        let (a, g) = (sde.drift_coeff(t), sde.diffusion_coeff(t));
        let dt = t_next - t;
        let sqrt_dt = math::sqrt(dt.abs());
        for_each_scored::<S, R, N, B>(score, t, xs, noises, |x, s, z| {
            let drift = vector::axpy(-g * g, s, &vector::scale(a, x));
            euler_maruyama_update(x, &drift, dt, g, &vector::scale(sqrt_dt, z))
        })
    }
}

/// The reverse-diffusion predictor of Song et al. (2021): the reverse of the exact forward
/// transition `x_t = a·x_{t'} + G·z`, `x ← x − (a − 1)x + G²s + G·z`. Weak order 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReverseDiffusion;

impl<D: LinearSde, const N: usize> Solver<D, N> for ReverseDiffusion {
    type State = ();
    const ORDER: u32 = 1;
    #[inline]
    fn step<S: Score<N>, R: Rng, const B: usize>(
        &self,
        sde: &D,
        score: &S,
        span: Span,
        xs: &mut [[f32; N]],
        _states: &mut [()],
        noises: &mut [GaussianStream<R>],
    ) -> Result<(), StepError> {
        let Span { t, t_next, .. } = span;
        let (a, g2) = forward_transition(sde, t, t_next);
        let g = math::sqrt(g2);
        for_each_scored::<S, R, N, B>(score, t, xs, noises, |x, s, z| {
            core::array::from_fn(|d| (2.0 - a) * x[d] + g2 * s[d] + g * z[d])
        })
    }
}

/// Ancestral sampling: DDPM's for the VP-SDE, `x ← (x + β_i s)/√(1 − β_i) + √β_i·z` with
/// `1 − β_i = α(t)²/α(t_next)²` for the step; SMLD's for the VE-SDE,
/// `x ← x + (σ_t² − σ_n²)s + √(σ_n²(σ_t² − σ_n²)/σ_t²)·z`. Weak order 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ancestral;

impl<const N: usize> Solver<VpSde, N> for Ancestral {
    type State = ();
    const ORDER: u32 = 1;
    #[inline]
    fn step<S: Score<N>, R: Rng, const B: usize>(
        &self,
        sde: &VpSde,
        score: &S,
        span: Span,
        xs: &mut [[f32; N]],
        _states: &mut [()],
        noises: &mut [GaussianStream<R>],
    ) -> Result<(), StepError> {
        let Span { t, t_next, .. } = span;
        let (a, beta) = forward_transition(sde, t, t_next); // VP: G² = 1 − a²
        let g = math::sqrt(beta);
        for_each_scored::<S, R, N, B>(score, t, xs, noises, |x, s, z| {
            core::array::from_fn(|d| (x[d] + beta * s[d]) / a + g * z[d])
        })
    }
}

impl<const N: usize> Solver<VeSde, N> for Ancestral {
    type State = ();
    const ORDER: u32 = 1;
    #[inline]
    fn step<S: Score<N>, R: Rng, const B: usize>(
        &self,
        sde: &VeSde,
        score: &S,
        span: Span,
        xs: &mut [[f32; N]],
        _states: &mut [()],
        noises: &mut [GaussianStream<R>],
    ) -> Result<(), StepError> {
        let Span { t, t_next, .. } = span;
        let (_, variance_step) = forward_transition(sde, t, t_next); // VE: σ_t² − σ_n²
        let g = math::sqrt(variance_step) * sde.sigma(t_next) / sde.sigma(t);
        for_each_scored::<S, R, N, B>(score, t, xs, noises, |x, s, z| {
            core::array::from_fn(|d| x[d] + variance_step * s[d] + g * z[d])
        })
    }
}

/// A corrector: Langevin MCMC steps at a fixed time that pull particles towards `p_t`.
pub trait Corrector<D: LinearSde, const N: usize> {
    /// Corrects each particle at time `t` (at most `B` of them, as for
    /// [`Solver::step`]); `t_next` is where the predictor goes next.
    fn correct<S: Score<N>, R: Rng, const B: usize>(
        &self,
        sde: &D,
        score: &S,
        t: f32,
        t_next: f32,
        xs: &mut [[f32; N]],
        noises: &mut [GaussianStream<R>],
    ) -> Result<(), StepError>;
}

/// Langevin corrector with the signal-to-noise step rule of Song et al. (2021),
/// `ε = 2α(snr·‖z‖/‖s‖)²`, `x ← x + εs + √(2ε)·z`, with `α = α(t)²/α(t_next)²` (1 − β_i for
/// VP, 1 for VE).
///
/// score_sde takes ‖z‖ and ‖s‖ as means over the batch. Per particle they are χ-distributed,
/// and in low dimension ‖s‖ comes close to 0 often (for N = 2, ‖s‖² < 5% of its mean with
/// probability 2.5% per step), so ε explodes: on the 8-Gaussians the modes spread to 0.48
/// instead of 0.1. A batch mean would make particles depend on each other (and on how they
/// are split across threads or chips). The rule here uses the norms' expectations instead,
/// `E‖z‖² = N` and `E‖s‖² = N/σ(t)²` (the Fisher information of the perturbation kernel, which
/// denoising score matching fits), so `ε = 2α(snr·σ(t))²`: one step size per time, the value
/// the batch rule takes on concentrated data, and no coupling between particles.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LangevinCorrector {
    snr: f32,
    steps: u32,
}

impl LangevinCorrector {
    /// `steps` corrector steps per time with signal-to-noise ratio `snr > 0`.
    pub fn new(snr: f32, steps: u32) -> Result<Self, ParamError> {
        ParamError::positive(snr, "snr")?;
        Ok(LangevinCorrector { snr, steps })
    }
}

impl Default for LangevinCorrector {
    /// snr = 0.16, one step (score_sde's setting for VP on small data).
    fn default() -> Self {
        LangevinCorrector {
            snr: 0.16,
            steps: 1,
        }
    }
}

impl<D: LinearSde, const N: usize> Corrector<D, N> for LangevinCorrector {
    fn correct<S: Score<N>, R: Rng, const B: usize>(
        &self,
        sde: &D,
        score: &S,
        t: f32,
        t_next: f32,
        xs: &mut [[f32; N]],
        noises: &mut [GaussianStream<R>],
    ) -> Result<(), StepError> {
        let ratio = sde.alpha(t) / sde.alpha(t_next);
        let signal_to_noise = self.snr * sde.sigma(t);
        let eps = 2.0 * ratio * ratio * signal_to_noise * signal_to_noise;
        for _ in 0..self.steps {
            for_each_scored::<S, R, N, B>(score, t, xs, noises, |x, s, z| {
                langevin_update(x, s, eps, z)
            })?;
        }
        Ok(())
    }
}

/// Predictor–corrector sampling: at each time, the corrector first, then the predictor step
/// (the order of score_sde's `pc_sampler`). Order: the predictor's.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PredictorCorrector<P, C> {
    /// The predictor.
    pub predictor: P,
    /// The corrector.
    pub corrector: C,
}

impl<D, P, C, const N: usize> Solver<D, N> for PredictorCorrector<P, C>
where
    D: LinearSde,
    P: Solver<D, N>,
    C: Corrector<D, N>,
{
    type State = P::State;
    const ORDER: u32 = P::ORDER;
    fn step<S: Score<N>, R: Rng, const B: usize>(
        &self,
        sde: &D,
        score: &S,
        span: Span,
        xs: &mut [[f32; N]],
        states: &mut [P::State],
        noises: &mut [GaussianStream<R>],
    ) -> Result<(), StepError> {
        self.corrector
            .correct::<S, R, B>(sde, score, span.t, span.t_next, xs, noises)?;
        self.predictor
            .step::<S, R, B>(sde, score, span, xs, states, noises)
    }
}

/// Annealed Langevin dynamics (NCSN, Song & Ermon 2019): at each noise level `σ_i = σ(t_i)`,
/// `steps_per_level` Langevin steps `x ← x + ε_i s(x, t_i) + √(2ε_i)·z` with
/// `ε_i = ε·σ_i²/σ_L²`. A step of the grid from `t` to `t_next` runs the level `t_next`; on
/// a VE-SDE a uniform grid gives NCSN's geometric σ levels. Each level has the O(ε) bias of
/// unadjusted Langevin (order 1).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AnnealedLangevin {
    step_size: f32,
    steps_per_level: u32,
    sigma_last: f32,
}

impl AnnealedLangevin {
    /// Step size `step_size` (ε) at the last level `sigma_last` (σ_L), `steps_per_level ≥ 1`.
    pub fn new(step_size: f32, steps_per_level: u32, sigma_last: f32) -> Result<Self, ParamError> {
        ParamError::positive(step_size, "step_size")?;
        ParamError::require(steps_per_level >= 1, "steps_per_level", ">= 1")?;
        ParamError::positive(sigma_last, "sigma_last")?;
        Ok(AnnealedLangevin {
            step_size,
            steps_per_level,
            sigma_last,
        })
    }
}

impl<D: LinearSde, const N: usize> Solver<D, N> for AnnealedLangevin {
    type State = ();
    const ORDER: u32 = 1;
    fn step<S: Score<N>, R: Rng, const B: usize>(
        &self,
        sde: &D,
        score: &S,
        span: Span,
        xs: &mut [[f32; N]],
        _states: &mut [()],
        noises: &mut [GaussianStream<R>],
    ) -> Result<(), StepError> {
        let Span { t_next, .. } = span;
        let level = sde.sigma(t_next) / self.sigma_last;
        let eps = self.step_size * level * level;
        for _ in 0..self.steps_per_level {
            for_each_scored::<S, R, N, B>(score, t_next, xs, noises, |x, s, z| {
                langevin_update(x, s, eps, z)
            })?;
        }
        Ok(())
    }
}
