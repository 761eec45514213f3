//! Deterministic solvers of the probability-flow ODE `dx/dt = f(x, t) − ½g(t)²s(x, t)`,
//! whose solution has the same marginals as the reverse SDE (Song et al. 2021).
//!
//! The Runge–Kutta solvers integrate it as written. The exponential integrators use the
//! data prediction `x̂₀ = (x + σ_t²s)/α_t` and integrate the linear part exactly in the
//! log-SNR `λ = ln(α/σ)` (Lu et al., DPM-Solver and DPM-Solver++, 2022).

use super::{Solver, Span};
use crate::error::StepError;
use crate::math;
use crate::noise::GaussianStream;
use crate::score::checked_scores;
use crate::score::Score;
use crate::sde::LinearSde;
use crate::vector;
use rand_core::Rng;

/// The probability-flow velocities `f(x, t) − ½g(t)²s(x, t)` of `xs`, into `out`.
#[inline]
fn velocities<'o, D, S, const N: usize, const B: usize>(
    sde: &D,
    score: &S,
    xs: &[[f32; N]],
    t: f32,
    out: &'o mut [[f32; N]; B],
) -> Result<&'o [[f32; N]], StepError>
where
    D: LinearSde,
    S: Score<N>,
{
    let len = checked_scores(score, xs, t, out)?.len();
    let (a, g) = (sde.drift_coeff(t), sde.diffusion_coeff(t));
    for (v, x) in out[..len].iter_mut().zip(xs) {
        *v = vector::axpy(-0.5 * g * g, v, &vector::scale(a, x));
    }
    Ok(&out[..len])
}

/// `x + h·k` for every particle, into `out`.
#[inline]
fn stage<'o, const N: usize, const B: usize>(
    xs: &[[f32; N]],
    h: f32,
    ks: &[[f32; N]],
    out: &'o mut [[f32; N]; B],
) -> &'o [[f32; N]] {
    let len = xs.len().min(ks.len()).min(B);
    for ((o, x), k) in out.iter_mut().zip(xs).zip(ks) {
        *o = vector::axpy(h, k, x);
    }
    &out[..len]
}

/// The data predictions `x̂₀ = (x + σ_t²·s(x, t))/α_t` (Tweedie's formula) of `xs`, into `out`.
#[inline]
pub(super) fn denoised<'o, D, S, const N: usize, const B: usize>(
    sde: &D,
    score: &S,
    xs: &[[f32; N]],
    t: f32,
    out: &'o mut [[f32; N]; B],
) -> Result<&'o [[f32; N]], StepError>
where
    D: LinearSde,
    S: Score<N>,
{
    let len = checked_scores(score, xs, t, out)?.len();
    let (sigma, alpha) = (sde.sigma(t), sde.alpha(t));
    for (o, x) in out[..len].iter_mut().zip(xs) {
        *o = vector::scale(1.0 / alpha, &vector::axpy(sigma * sigma, o, x));
    }
    Ok(&out[..len])
}

/// Euler's method on the probability-flow ODE. Order 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OdeEuler;

impl<D: LinearSde, const N: usize> Solver<D, N> for OdeEuler {
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
        _noises: &mut [GaussianStream<R>],
    ) -> Result<(), StepError> {
        let Span { t, t_next, .. } = span;
        let mut k = [[0.0f32; N]; B];
        let k = velocities(sde, score, xs, t, &mut k)?;
        for (x, v) in xs.iter_mut().zip(k) {
            *x = vector::axpy(t_next - t, v, x);
        }
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
    fn step<S: Score<N>, R: Rng, const B: usize>(
        &self,
        sde: &D,
        score: &S,
        span: Span,
        xs: &mut [[f32; N]],
        _states: &mut [()],
        _noises: &mut [GaussianStream<R>],
    ) -> Result<(), StepError> {
        let Span { t, t_next, .. } = span;
        let h = t_next - t;
        let (mut k1, mut k2, mut tmp) = ([[0.0f32; N]; B], [[0.0f32; N]; B], [[0.0f32; N]; B]);
        let k1 = velocities(sde, score, xs, t, &mut k1)?;
        let k2 = velocities(sde, score, stage(xs, h, k1, &mut tmp), t_next, &mut k2)?;
        for ((x, a), b) in xs.iter_mut().zip(k1).zip(k2) {
            *x = core::array::from_fn(|d| x[d] + 0.5 * h * (a[d] + b[d]));
        }
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
    fn step<S: Score<N>, R: Rng, const B: usize>(
        &self,
        sde: &D,
        score: &S,
        span: Span,
        xs: &mut [[f32; N]],
        _states: &mut [()],
        _noises: &mut [GaussianStream<R>],
    ) -> Result<(), StepError> {
        let Span { t, t_next, .. } = span;
        let h = t_next - t;
        let t_mid = t + 0.5 * h;
        let zero = [[0.0f32; N]; B];
        let (mut k1, mut k2, mut k3, mut k4, mut tmp) = (zero, zero, zero, zero, zero);
        let k1 = velocities(sde, score, xs, t, &mut k1)?;
        let k2 = velocities(sde, score, stage(xs, 0.5 * h, k1, &mut tmp), t_mid, &mut k2)?;
        let k3 = velocities(sde, score, stage(xs, 0.5 * h, k2, &mut tmp), t_mid, &mut k3)?;
        let k4 = velocities(sde, score, stage(xs, h, k3, &mut tmp), t_next, &mut k4)?;
        for (i, x) in xs.iter_mut().enumerate().take(k4.len()) {
            let (a, b, c, e) = (k1[i], k2[i], k3[i], k4[i]);
            *x = core::array::from_fn(|d| x[d] + h / 6.0 * (a[d] + 2.0 * b[d] + 2.0 * c[d] + e[d]));
        }
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
    fn step<S: Score<N>, R: Rng, const B: usize>(
        &self,
        sde: &D,
        score: &S,
        span: Span,
        xs: &mut [[f32; N]],
        _states: &mut [()],
        _noises: &mut [GaussianStream<R>],
    ) -> Result<(), StepError> {
        let Span { t, t_next, .. } = span;
        let mut buffer = [[0.0f32; N]; B];
        let scores = checked_scores(score, xs, t, &mut buffer)?;
        let (sigma, alpha) = (sde.sigma(t), sde.alpha(t));
        let (sigma_next, alpha_next) = (sde.sigma(t_next), sde.alpha(t_next));
        for (x, s) in xs.iter_mut().zip(scores) {
            let eps_hat = vector::scale(-sigma, s);
            let x0 = vector::scale(1.0 / alpha, &vector::axpy(-sigma, &eps_hat, x));
            *x = vector::axpy(sigma_next, &eps_hat, &vector::scale(alpha_next, &x0));
        }
        Ok(())
    }
}

/// DPM-Solver++(2M) (Lu et al. 2022), the multistep second-order exponential integrator in
/// data prediction: with `h = λ_next − λ_t` and `r = h_prev/h`,
/// `D = (1 + 1/2r)x̂₀ − (1/2r)x̂₀_prev` and `x ← (σ_next/σ_t)x − α_next(e^{−h} − 1)D`.
/// The first step, which has no history, is DDIM, and so is the last with
/// `lower_order_final`. One score evaluation per step; order 2.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DpmSolverPp2M {
    /// Whether the last step is first order (Lu et al.'s "denoising trick", diffusers'
    /// `lower_order_final`): it steadies few-step sampling where the data prediction is
    /// least smooth, at `t` near 0.
    pub lower_order_final: bool,
}

/// The previous step's data prediction and log-SNR step, for [`DpmSolverPp2M`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MultistepHistory<const N: usize> {
    previous: Option<([f32; N], f32)>,
}

impl<D: LinearSde, const N: usize> Solver<D, N> for DpmSolverPp2M {
    type State = MultistepHistory<N>;
    const ORDER: u32 = 2;
    fn step<S: Score<N>, R: Rng, const B: usize>(
        &self,
        sde: &D,
        score: &S,
        span: Span,
        xs: &mut [[f32; N]],
        histories: &mut [MultistepHistory<N>],
        _noises: &mut [GaussianStream<R>],
    ) -> Result<(), StepError> {
        let Span { t, t_next, .. } = span;
        let mut buffer = [[0.0f32; N]; B];
        let predictions = denoised(sde, score, xs, t, &mut buffer)?;
        let h = sde.log_snr(t_next) - sde.log_snr(t);
        let carry = sde.sigma(t_next) / sde.sigma(t);
        let pull = -sde.alpha(t_next) * math::expm1(-h);
        let first_order = self.lower_order_final && span.remaining == 0;
        for ((x, x0), history) in xs.iter_mut().zip(predictions).zip(histories.iter_mut()) {
            let data = match history.previous {
                Some(_) if first_order => *x0,
                None => *x0,
                Some((x0_previous, h_previous)) => {
                    let half_inv_r = 0.5 * h / h_previous;
                    core::array::from_fn(|d| {
                        (1.0 + half_inv_r) * x0[d] - half_inv_r * x0_previous[d]
                    })
                }
            };
            *x = core::array::from_fn(|d| carry * x[d] + pull * data[d]);
            history.previous = Some((*x0, h));
        }
        Ok(())
    }
}

/// DPM-Solver++(3M) (Lu et al. 2022; the third-order multistep update of `dpm_solver_pytorch`
/// in data prediction): with the step `h = λ_next − λ_t`, the last two steps' `h₀, h₁` and
/// data predictions `x̂₀, x̂₀′, x̂₀″` (newest first), `r₀ = h₀/h`, `r₁ = h₁/h`,
/// `D₁₀ = (x̂₀ − x̂₀′)/r₀`, `D₁₁ = (x̂₀′ − x̂₀″)/r₁`, `D₁ = D₁₀ + r₀/(r₀+r₁)·(D₁₀ − D₁₁)`,
/// `D₂ = (D₁₀ − D₁₁)/(r₀+r₁)` and `φ₁ = e^{−h} − 1`, `φ₂ = φ₁/h + 1`, `φ₃ = φ₂/h − ½`:
/// `x ← (σ_next/σ_t)x − α_next(φ₁x̂₀ − φ₂D₁ + 2φ₃D₂)`. `D₂ ≈ ½h²x̂₀″` while the exact
/// integral's second-order term is `−α_next h²φ₃x̂₀″`, hence `2φ₃`; the `φ₃D₂` of
/// `dpm_solver_pytorch` and diffusers makes the update second order (measured in
/// `core/tests/convergence.rs`). The first step, without history, is
/// DPM-Solver++(2S) through the log-SNR midpoint (two evaluations), the second
/// DPM-Solver++(2M). With `lower_order_final` the last step is first order and the one
/// before it second order. One score evaluation per step after the first (`K + 1` in all);
/// order 3.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DpmSolverPp3M {
    /// Whether the last two steps lower the order to 1 and 2 (diffusers'
    /// `lower_order_final`).
    pub lower_order_final: bool,
}

/// The last two steps' data predictions and log-SNR steps, newest first, for
/// [`DpmSolverPp3M`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TwoStepHistory<const N: usize> {
    previous: Option<([f32; N], f32)>,
    older: Option<([f32; N], f32)>,
}

impl<D: LinearSde, const N: usize> Solver<D, N> for DpmSolverPp3M {
    type State = TwoStepHistory<N>;
    const ORDER: u32 = 3;
    fn step<S: Score<N>, R: Rng, const B: usize>(
        &self,
        sde: &D,
        score: &S,
        span: Span,
        xs: &mut [[f32; N]],
        histories: &mut [TwoStepHistory<N>],
        _noises: &mut [GaussianStream<R>],
    ) -> Result<(), StepError> {
        let Span { t, t_next, .. } = span;
        let mut buffer = [[0.0f32; N]; B];
        let predictions = denoised(sde, score, xs, t, &mut buffer)?;
        let (lambda, lambda_next) = (sde.log_snr(t), sde.log_snr(t_next));
        let h = lambda_next - lambda;
        let carry = sde.sigma(t_next) / sde.sigma(t);
        let alpha_next = sde.alpha(t_next);
        let phi_1 = math::expm1(-h);
        let phi_2 = phi_1 / h + 1.0;
        let phi_3 = phi_2 / h - 0.5;
        // The first step has no history: DPM-Solver++(2S) through the log-SNR midpoint (one
        // more evaluation), whose local error O(h³) keeps the global order 3; a first-order
        // start would cap it at 2. All particles of a batch start together.
        let first = histories.first().is_some_and(|h| h.previous.is_none());
        let mut midpoint = [[0.0f32; N]; B];
        let mut midpoint_predictions = [[0.0f32; N]; B];
        let midpoint_predictions = if first {
            let t_mid = sde.time_at_log_snr(lambda + 0.5 * h);
            let (carry_mid, alpha_mid) = (sde.sigma(t_mid) / sde.sigma(t), sde.alpha(t_mid));
            let pull_mid = -alpha_mid * math::expm1(-0.5 * h);
            let len = predictions.len();
            for ((u, x), x0) in midpoint.iter_mut().zip(xs.iter()).zip(predictions) {
                *u = core::array::from_fn(|d| carry_mid * x[d] + pull_mid * x0[d]);
            }
            denoised(
                sde,
                score,
                &midpoint[..len],
                t_mid,
                &mut midpoint_predictions,
            )?
        } else {
            &[]
        };
        let max_order = match span.remaining {
            0 if self.lower_order_final => 1,
            1 if self.lower_order_final => 2,
            _ => 3,
        };
        for (i, ((x, x0), history)) in xs
            .iter_mut()
            .zip(predictions)
            .zip(histories.iter_mut())
            .enumerate()
        {
            *x = match (history.previous, history.older) {
                (Some(_), _) if max_order == 1 => {
                    core::array::from_fn(|d| carry * x[d] - alpha_next * phi_1 * x0[d])
                }
                (Some((x0_1, h_0)), Some((x0_2, h_1))) if max_order == 3 => {
                    let (r0, r1) = (h_0 / h, h_1 / h);
                    core::array::from_fn(|d| {
                        let d1_0 = (x0[d] - x0_1[d]) / r0;
                        let d1_1 = (x0_1[d] - x0_2[d]) / r1;
                        let d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1);
                        let d2 = (d1_0 - d1_1) / (r0 + r1);
                        carry * x[d] - alpha_next * (phi_1 * x0[d] - phi_2 * d1 + 2.0 * phi_3 * d2)
                    })
                }
                (Some((x0_1, h_0)), _) => {
                    let half_inv_r = 0.5 * h / h_0;
                    core::array::from_fn(|d| {
                        let data = (1.0 + half_inv_r) * x0[d] - half_inv_r * x0_1[d];
                        carry * x[d] - alpha_next * phi_1 * data
                    })
                }
                _ => {
                    let x0_mid = midpoint_predictions.get(i).unwrap_or(x0);
                    core::array::from_fn(|d| carry * x[d] - alpha_next * phi_1 * x0_mid[d])
                }
            };
            history.older = history.previous;
            history.previous = Some((*x0, h));
        }
        Ok(())
    }
}

/// UniPC (Zhao et al. 2023) in data prediction with `B(h) = e^{−h} − 1` ("bh2"), as
/// diffusers' `UniPCMultistepScheduler` runs it by default: a second-order multistep
/// predictor (UniP-2, which with bh2 is the DPM-Solver++(2M) step) and, at every time after
/// the first, the corrector UniC, which refits the step just taken through the evaluation
/// the next predictor needs anyway. The corrector raises the order by one at no extra
/// evaluation: one score evaluation per step; order 3. The first step is first order, and so
/// is the last with `lower_order_final`; no corrector follows the last step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UniPc {
    /// Whether the last step's predictor is first order (diffusers' `lower_order_final`).
    pub lower_order_final: bool,
}

/// What [`UniPc`] carries from step to step: the corrected state the last step started
/// from, the last two data predictions with their times (newest first), and the order of the
/// last predictor, which the corrector matches.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UniPcHistory<const N: usize> {
    start: [f32; N],
    previous: Option<([f32; N], f32)>,
    older: Option<([f32; N], f32)>,
    order: u32,
}

impl<const N: usize> Default for UniPcHistory<N> {
    fn default() -> Self {
        UniPcHistory {
            start: [0.0; N],
            previous: None,
            older: None,
            order: 0,
        }
    }
}

/// The UniC update's coefficients for one step `s → t` of log-SNR length `h`, computed once
/// per batch (its particles share their times): `x_t = carry·x_s + pull·(x̂₀(s)
/// + ρ_older·D₁ + ρ_new·(x̂₀(t) − x̂₀(s)))` with `D₁ = (x̂₀(older) − x̂₀(s))/r` and
/// `pull = −α_t(e^{−h} − 1)`, which is also `−α_t·B(h)` for bh2.
#[derive(Clone, Copy, Debug)]
struct UniCorrector {
    lambda_s: f32,
    carry: f32,
    pull: f32,
    rho_older: f32,
    rho_new: f32,
    r: f32,
}

impl UniCorrector {
    /// For the step from `s` to `t`: of order 1, or of order 2 through the `older` time.
    fn new<D: LinearSde>(sde: &D, s: f32, t: f32, older: Option<f32>) -> Self {
        let lambda_s = sde.log_snr(s);
        let h = sde.log_snr(t) - lambda_s;
        let phi_1 = math::expm1(-h);
        let (rho_older, rho_new, r) = match older {
            None => (0.0, 0.5, 1.0),
            Some(older) => {
                // UniPC's b_k = k!·φ_{k+1}/B(h) with φ_{k+1} = φ_k/(−h) − 1/k!, and the
                // 2×2 system [1 1; r 1]·ρ = (b₁, b₂) on the nodes r and 1.
                let phi_2 = phi_1 / -h - 1.0;
                let phi_3 = phi_2 / -h - 0.5;
                let (b1, b2) = (phi_2 / phi_1, 2.0 * phi_3 / phi_1);
                let r = (sde.log_snr(older) - lambda_s) / h;
                let rho_older = (b2 - b1) / (r - 1.0);
                (rho_older, b1 - rho_older, r)
            }
        };
        UniCorrector {
            lambda_s,
            carry: sde.sigma(t) / sde.sigma(s),
            pull: -sde.alpha(t) * phi_1,
            rho_older,
            rho_new,
            r,
        }
    }
}

impl<D: LinearSde, const N: usize> Solver<D, N> for UniPc {
    type State = UniPcHistory<N>;
    const ORDER: u32 = 3;
    fn step<S: Score<N>, R: Rng, const B: usize>(
        &self,
        sde: &D,
        score: &S,
        span: Span,
        xs: &mut [[f32; N]],
        histories: &mut [UniPcHistory<N>],
        _noises: &mut [GaussianStream<R>],
    ) -> Result<(), StepError> {
        let Span { t, t_next, .. } = span;
        let mut buffer = [[0.0f32; N]; B];
        let predictions = denoised(sde, score, xs, t, &mut buffer)?;
        // The corrector of the step that led here, of the order its predictor had.
        let corrector = histories.first().and_then(|h| {
            let (_, s) = h.previous?;
            let older = h.older.filter(|_| h.order >= 2).map(|(_, t)| t);
            Some(UniCorrector::new(sde, s, t, older))
        });
        let lambda = sde.log_snr(t);
        let h = sde.log_snr(t_next) - lambda;
        let carry = sde.sigma(t_next) / sde.sigma(t);
        let pull = -sde.alpha(t_next) * math::expm1(-h);
        let first_order = self.lower_order_final && span.remaining == 0;
        for ((x, x0), history) in xs.iter_mut().zip(predictions).zip(histories.iter_mut()) {
            let mut order = 1;
            let mut data = *x0;
            if let (Some(c), Some((x0_s, _))) = (corrector, history.previous) {
                let older = match history.older {
                    Some((x0_older, _)) if history.order >= 2 => x0_older,
                    _ => x0_s,
                };
                let start = history.start;
                *x = core::array::from_fn(|d| {
                    let d1 = (older[d] - x0_s[d]) / c.r;
                    let change = x0[d] - x0_s[d];
                    c.carry * start[d] + c.pull * (x0_s[d] + c.rho_older * d1 + c.rho_new * change)
                });
                if !first_order {
                    // UniP-2 with bh2 is the DPM-Solver++(2M) step.
                    let half_inv_r = 0.5 * h / (lambda - c.lambda_s);
                    data = core::array::from_fn(|d| x0[d] + half_inv_r * (x0[d] - x0_s[d]));
                    order = 2;
                }
            }
            history.start = *x;
            history.older = history.previous;
            history.previous = Some((*x0, t));
            history.order = order;
            *x = core::array::from_fn(|d| carry * x[d] + pull * data[d]);
        }
        Ok(())
    }
}

/// Heun's method in the EDM variables (Karras et al. 2022; k-diffusion's `sample_heun`): with
/// `σ̃ = σ/α` and `x̃ = x/α` the probability-flow ODE is `dx̃/dσ̃ = (x̃ − x̂₀)/σ̃`, whose
/// curvature is small where the data prediction `x̂₀` changes slowly. An Euler step in `σ̃`,
/// then the mean of the two slopes; two score evaluations per step; order 2.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct EdmHeun;

impl<D: LinearSde, const N: usize> Solver<D, N> for EdmHeun {
    type State = ();
    const ORDER: u32 = 2;
    fn step<S: Score<N>, R: Rng, const B: usize>(
        &self,
        sde: &D,
        score: &S,
        span: Span,
        xs: &mut [[f32; N]],
        _states: &mut [()],
        _noises: &mut [GaussianStream<R>],
    ) -> Result<(), StepError> {
        let Span { t, t_next, .. } = span;
        let (alpha, alpha_next) = (sde.alpha(t), sde.alpha(t_next));
        let (s, s_next) = (sde.sigma(t) / alpha, sde.sigma(t_next) / alpha_next);
        let ds = s_next - s;
        let (mut first, mut second, mut euler) =
            ([[0.0f32; N]; B], [[0.0f32; N]; B], [[0.0f32; N]; B]);
        let x0 = denoised(sde, score, xs, t, &mut first)?;
        let len = x0.len();
        // Slopes d = (x̃ − x̂₀)/σ̃, and the Euler predictor back in x = α·x̃.
        let mut slopes = [[0.0f32; N]; B];
        for i in 0..len {
            let scaled: [f32; N] = core::array::from_fn(|d| xs[i][d] / alpha);
            slopes[i] = core::array::from_fn(|d| (scaled[d] - x0[i][d]) / s);
            euler[i] = core::array::from_fn(|d| alpha_next * (scaled[d] + ds * slopes[i][d]));
        }
        let x0_next = denoised(sde, score, &euler[..len], t_next, &mut second)?;
        for (i, x) in xs.iter_mut().enumerate().take(len) {
            let scaled: [f32; N] = core::array::from_fn(|d| x[d] / alpha);
            *x = core::array::from_fn(|d| {
                let predicted = euler[i][d] / alpha_next;
                let slope_next = (predicted - x0_next[i][d]) / s_next;
                alpha_next * (scaled[d] + 0.5 * ds * (slopes[i][d] + slope_next))
            });
        }
        Ok(())
    }
}
