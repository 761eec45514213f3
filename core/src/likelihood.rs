//! Exact log-likelihoods by the probability-flow ODE (Song et al. 2021, §4.3; FFJORD).
//!
//! Along the ODE `dx/dt = v(x, t) = f(x, t) − ½g(t)²s(x, t)` the density changes as
//! `d log p_t(x(t))/dt = −∇·v`, so a point `x` at `t_end`, carried to `T`, has
//!
//! `log p_{t_end}(x) = log p_T(x(T)) + ∫_{t_end}^{T} ∇·v(x(t), t) dt`,
//!
//! with `∇·v = n·a(t) − ½g(t)²·∇·s` for the linear drift `a(t)·x` in `n` coordinates. The
//! integral is carried by [`Dopri5`] together with `x`; `∇·s` is exact ([`Divergence::Exact`]:
//! in closed form for a Gaussian mixture, by forward-mode differentiation of the f32 network)
//! or Hutchinson's estimate `vᵀ(∂s/∂x)v` averaged over Rademacher probes drawn once per point
//! from the point's own noise stream ([`Divergence::Hutchinson`]). Everything is f32 through
//! [`math`]: a chip computes the host's bits.

use crate::error::{ParamError, SampleError, StepError};
use crate::math;
use crate::model::{Model, ModelError, NeuralScore, Precision};
use crate::noise::GaussianStream;
use crate::score::{Diffused, GaussianMixture, Score};
use crate::sde::LinearSde;
use crate::solver::{Dopri5, OdeStats};
use rand_core::Rng;

/// A score whose derivative in `x` is known.
pub trait ScoreJacobian<const N: usize>: Score<N> {
    /// The score at `x` and time `t`, and its Jacobian-vector product `(∂s/∂x)·v`.
    fn score_jvp(&self, x: &[f32; N], t: f32, v: &[f32; N]) -> ([f32; N], [f32; N]);

    /// The score and its divergence `∇·s = tr(∂s/∂x)` over the data's first `coordinates`
    /// coordinates. The default takes one product per coordinate.
    fn score_divergence(&self, x: &[f32; N], t: f32, coordinates: usize) -> ([f32; N], f32) {
        let mut score = self.score(x, t);
        let mut divergence = 0.0;
        for j in 0..coordinates.min(N) {
            let mut unit = [0.0f32; N];
            unit[j] = 1.0;
            let (s, jv) = self.score_jvp(x, t, &unit);
            score = s;
            divergence += jv[j];
        }
        (score, divergence)
    }
}

/// The most Hutchinson probes per point.
pub const MAX_PROBES: u32 = 64;

/// How `∇·s` is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Divergence {
    /// Exactly: [`ScoreJacobian::score_divergence`].
    Exact,
    /// Hutchinson's unbiased estimate over `probes` Rademacher vectors (1 to [`MAX_PROBES`]),
    /// drawn once per point and held fixed along its path (the ODE must stay smooth for the
    /// adaptive solver).
    Hutchinson {
        /// How many.
        probes: u32,
    },
}

/// A point carried from `t_end` to `T`: the ODE's encoding of it and the log-density change.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Encoded<const N: usize> {
    /// `x(T)`, the point's latent.
    pub latent: [f32; N],
    /// `∫_{t_end}^{T} ∇·v dt`: `log p_{t_end}(x) = log p_T(latent) + delta_log_p`.
    pub delta_log_p: f32,
    /// What the integration cost (evaluations count one score and its divergence each).
    pub stats: OdeStats,
}

/// The probability-flow likelihood: an adaptive solver and a divergence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Likelihood {
    /// The solver, with its tolerances and step limit.
    pub solver: Dopri5,
    /// Exact or estimated divergence.
    pub divergence: Divergence,
}

impl Likelihood {
    /// `solver` with `divergence`; a Hutchinson estimate needs 1 to [`MAX_PROBES`] probes.
    pub fn new(solver: Dopri5, divergence: Divergence) -> Result<Self, ParamError> {
        if let Divergence::Hutchinson { probes } = divergence {
            ParamError::require((1..=MAX_PROBES).contains(&probes), "probes", "1 to 64")?;
        }
        Ok(Likelihood { solver, divergence })
    }

    /// Carries `x` from `t_end` to `sde.t_max()` along the probability-flow ODE of `score`,
    /// with the log-density change; `coordinates` of the `N` are the data's (the rest is
    /// padding, which neither moves nor counts). `noise` is the point's stream: the
    /// Hutchinson probes are drawn from it.
    pub fn encode<D, S, R, const N: usize>(
        &self,
        sde: &D,
        score: &S,
        x: &[f32; N],
        t_end: f32,
        coordinates: usize,
        noise: &mut GaussianStream<R>,
    ) -> Result<Encoded<N>, SampleError>
    where
        D: LinearSde,
        S: ScoreJacobian<N>,
        R: Rng,
    {
        let coordinates = coordinates.min(N);
        let mut probes = [[0.0f32; N]; MAX_PROBES as usize];
        let count = match self.divergence {
            Divergence::Exact => 0,
            Divergence::Hutchinson { probes: k } => k.min(MAX_PROBES) as usize,
        };
        for probe in probes.iter_mut().take(count) {
            let draw: [f32; N] = noise.normal();
            for (p, z) in probe.iter_mut().zip(draw).take(coordinates) {
                *p = if z < 0.0 { -1.0 } else { 1.0 };
            }
        }
        let probes = &probes[..count];
        let mut latent = *x;
        let mut delta_log_p = 0.0f32;
        let stats = self.solver.integrate(
            t_end,
            sde.t_max(),
            &mut latent,
            Some(&mut delta_log_p),
            |t, y| {
                let (s, divergence) = if probes.is_empty() {
                    score.score_divergence(y, t, coordinates)
                } else {
                    let mut s = [0.0f32; N];
                    let mut sum = 0.0f32;
                    for probe in probes {
                        let (score, jv) = score.score_jvp(y, t, probe);
                        s = score;
                        sum += probe.iter().zip(&jv).map(|(p, j)| p * j).sum::<f32>();
                    }
                    (s, sum / probes.len() as f32)
                };
                if !s.iter().all(|v| v.is_finite()) {
                    return Err(StepError::NonFiniteScore { particle: 0 });
                }
                let (a, g) = (sde.drift_coeff(t), sde.diffusion_coeff(t));
                let half_g2 = 0.5 * g * g;
                let mut velocity = [0.0f32; N];
                for d in 0..coordinates {
                    velocity[d] = a * y[d] - half_g2 * s[d];
                }
                Ok((velocity, coordinates as f32 * a - half_g2 * divergence))
            },
        )?;
        Ok(Encoded {
            latent,
            delta_log_p,
            stats,
        })
    }
}

/// `log N(x; 0, std²·I)`: the prior's log-density at a latent (its data coordinates).
pub fn gaussian_log_density(x: &[f32], std: f32) -> f32 {
    let squares: f32 = x.iter().map(|v| v * v).sum();
    let n = x.len() as f32;
    -0.5 * squares / (std * std)
        - n * math::ln(std)
        - 0.5 * n * math::ln(2.0 * core::f32::consts::PI)
}

impl<D: LinearSde, const N: usize> ScoreJacobian<N> for Diffused<D, GaussianMixture<'_, N>> {
    fn score_jvp(&self, x: &[f32; N], t: f32, v: &[f32; N]) -> ([f32; N], [f32; N]) {
        let (alpha, sigma) = (self.sde.alpha(t), self.sde.sigma(t));
        let (score, jv, _) = self.data.perturbed_derivatives(x, alpha, sigma, Some(v));
        (score, jv)
    }

    fn score_divergence(&self, x: &[f32; N], t: f32, _coordinates: usize) -> ([f32; N], f32) {
        let (alpha, sigma) = (self.sde.alpha(t), self.sde.sigma(t));
        let (score, _, divergence) = self.data.perturbed_derivatives(x, alpha, sigma, None);
        (score, divergence)
    }
}

/// The score of an f32 network with its derivatives: `s = −ε̂/σ(t)`, so
/// `(∂s/∂x)·v = −(∂ε̂/∂x)·v / σ(t)`.
#[derive(Clone, Copy, Debug)]
pub struct NetworkJacobian<'a, const N: usize> {
    score: NeuralScore<'a, N>,
}

impl<'a, const N: usize> NetworkJacobian<'a, N> {
    /// The f32 network of `model` (dimension `N`; an int8 model is refused).
    pub fn new(model: Model<'a>) -> Result<Self, ModelError> {
        Self::check_f32(&model)?;
        Ok(NetworkJacobian {
            score: NeuralScore::new(model)?,
        })
    }

    /// The same on a state padded beyond the model's dimension (see
    /// [`NeuralScore::padded`]). Hosts only.
    #[cfg(not(target_os = "none"))]
    pub fn padded(model: Model<'a>) -> Result<Self, ModelError> {
        Self::check_f32(&model)?;
        Ok(NetworkJacobian {
            score: NeuralScore::padded(model)?,
        })
    }

    fn check_f32(model: &Model<'_>) -> Result<(), ModelError> {
        if model.header().precision == Precision::F32 {
            Ok(())
        } else {
            Err(ParamError {
                parameter: "model",
                requirement: "an f32 network (an int8 network has no derivative)",
            }
            .into())
        }
    }

    /// The score `−ε̂/σ` (the bits of [`NeuralScore`]'s) and `−(∂ε̂/∂x)·v_l/σ` for `L`
    /// directions, in one pass of the network.
    fn jvps<const L: usize>(
        &self,
        x: &[f32; N],
        t: f32,
        directions: &[[f32; N]; L],
    ) -> ([f32; N], [[f32; N]; L]) {
        let sigma = self.score.model().header().sde.sigma(t);
        // Cannot fail: the model is f32 and fits N (checked in `new`).
        let (eps, derivatives) = self
            .score
            .model()
            .predict_noise_jvp(x, t, directions)
            .unwrap_or(([f32::NAN; N], [[f32::NAN; N]; L]));
        (
            eps.map(|e| -e / sigma),
            derivatives.map(|d| d.map(|v| -v / sigma)),
        )
    }
}

impl<const N: usize> Score<N> for NetworkJacobian<'_, N> {
    #[inline]
    fn score(&self, x: &[f32; N], t: f32) -> [f32; N] {
        self.score.score(x, t)
    }
    #[inline]
    fn score_batch(&self, xs: &[[f32; N]], t: f32, out: &mut [[f32; N]]) {
        self.score.score_batch(xs, t, out)
    }
}

impl<const N: usize> ScoreJacobian<N> for NetworkJacobian<'_, N> {
    fn score_jvp(&self, x: &[f32; N], t: f32, v: &[f32; N]) -> ([f32; N], [f32; N]) {
        let (score, [jv]) = self.jvps(x, t, &[*v]);
        (score, jv)
    }

    /// All `N` unit directions in one forward pass.
    fn score_divergence(&self, x: &[f32; N], t: f32, coordinates: usize) -> ([f32; N], f32) {
        let units: [[f32; N]; N] = core::array::from_fn(|j| {
            let mut unit = [0.0f32; N];
            unit[j] = 1.0;
            unit
        });
        let (score, jacobian) = self.jvps(x, t, &units);
        let divergence = (0..coordinates.min(N)).map(|j| jacobian[j][j]).sum();
        (score, divergence)
    }
}
