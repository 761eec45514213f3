//! Forward noising processes `dx = f(x, t) dt + g(t) dw`.
//!
//! All four processes here are linear: `f(x, t) = a(t)·x`, so the marginal given the data is
//! Gaussian, `x_t = α(t)·x₀ + σ(t)·z`, with α and σ in closed form. That is what the exact
//! scores, the exponential integrators (DDIM, DPM-Solver) and the noise schedules build on.
//!
//! | process | `a(t)` | `g(t)²` | `α(t)` | `σ(t)` | prior |
//! |---|---|---|---|---|---|
//! | [`VpSde`] | `−β(t)/2` | `β(t)` | `e^{−B/2}` | `√(1 − e^{−B})` | N(0, I) |
//! | [`SubVpSde`] | `−β(t)/2` | `β(t)(1 − e^{−2B})` | `e^{−B/2}` | `1 − e^{−B}` | N(0, I) |
//! | [`VeSde`] | 0 | `d σ²/dt` | 1 | `σ_min (σ_max/σ_min)^t` | N(0, σ_max² I) |
//! | [`OrnsteinUhlenbeck`] | `−θ` | `2θs²` | `e^{−θt}` | `s√(1 − e^{−2θt})` | N(0, s² I) |
//!
//! with `β(t) = β_min + t(β_max − β_min)` and `B(t) = ∫₀ᵗ β = β_min t + ½(β_max − β_min)t²`
//! (the conventions of Song et al., "Score-based generative modeling through SDEs", 2021).
//! As in that paper, the VE marginal std includes `σ_min` at `t = 0`.

use crate::error::ParamError;
use crate::noise::GaussianStream;
use crate::{math, vector};
use rand_core::Rng;

/// The terms of an Itô SDE `dx = f(x, t) dt + g(t) dw` with scalar diffusion.
pub trait Sde<const N: usize> {
    /// The drift `f(x, t)`.
    fn drift(&self, x: &[f32; N], t: f32) -> [f32; N];
    /// The diffusion coefficient `g(t)`.
    fn diffusion(&self, t: f32) -> f32;
}

/// A forward process with linear drift and a Gaussian transition kernel from the data:
/// `x_t | x₀ ~ N(α(t)·x₀, σ(t)²·I)`.
pub trait LinearSde: Copy {
    /// The end time `T` of the forward process, where the prior takes over.
    fn t_max(&self) -> f32;
    /// `a(t)` in the drift `f(x, t) = a(t)·x`.
    fn drift_coeff(&self, t: f32) -> f32;
    /// The diffusion coefficient `g(t)`.
    fn diffusion_coeff(&self, t: f32) -> f32;
    /// The mean scale `α(t)` of the marginal.
    fn alpha(&self, t: f32) -> f32;
    /// The standard deviation `σ(t)` of the marginal.
    fn sigma(&self, t: f32) -> f32;
    /// The log signal-to-noise ratio `λ(t) = ln(α(t)/σ(t))`, decreasing in `t`.
    fn log_snr(&self, t: f32) -> f32 {
        math::ln(self.alpha(t) / self.sigma(t))
    }
    /// The time at which `log_snr` equals `lambda` (the inverse of [`log_snr`](Self::log_snr)).
    fn time_at_log_snr(&self, lambda: f32) -> f32;
    /// The standard deviation of the prior `N(0, prior_std²·I)` at `t_max`.
    fn prior_std(&self) -> f32;
    /// A draw from the prior.
    fn sample_prior<R: Rng, const N: usize>(&self, noise: &mut GaussianStream<R>) -> [f32; N] {
        vector::scale(self.prior_std(), &noise.normal())
    }
}

impl<D: LinearSde, const N: usize> Sde<N> for D {
    #[inline]
    fn drift(&self, x: &[f32; N], t: f32) -> [f32; N] {
        vector::scale(self.drift_coeff(t), x)
    }
    #[inline]
    fn diffusion(&self, t: f32) -> f32 {
        self.diffusion_coeff(t)
    }
}

/// `B(t) = β_min t + ½(β_max − β_min)t²` and `t` from `B`, shared by VP and sub-VP.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct LinearBeta {
    beta_min: f32,
    beta_max: f32,
}

impl LinearBeta {
    fn new(beta_min: f32, beta_max: f32) -> Result<Self, ParamError> {
        ParamError::positive(beta_min, "beta_min")?;
        ParamError::require(
            beta_max.is_finite() && beta_max >= beta_min,
            "beta_max",
            "finite and >= beta_min",
        )?;
        Ok(LinearBeta { beta_min, beta_max })
    }
    #[inline]
    fn beta(&self, t: f32) -> f32 {
        self.beta_min + t * (self.beta_max - self.beta_min)
    }
    #[inline]
    fn integral(&self, t: f32) -> f32 {
        self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t
    }
    /// The `t ≥ 0` with `integral(t) = b`: the root of ½Δβ t² + β_min t − b, in the form
    /// `2b / (β_min + √(β_min² + 2Δβ b))` that does not cancel for small `b`.
    #[inline]
    fn time_at_integral(&self, b: f32) -> f32 {
        let delta = self.beta_max - self.beta_min;
        let root = math::sqrt(self.beta_min * self.beta_min + 2.0 * delta * b);
        2.0 * b / (self.beta_min + root)
    }
}

/// `B = −2 ln α` at log-SNR `λ` for α² + σ² = 1: `B = ln(1 + e^{−2λ})`, without overflow.
fn vp_integral_at_log_snr(lambda: f32) -> f32 {
    if lambda < -10.0 {
        -2.0 * lambda + math::log1p(math::exp(2.0 * lambda))
    } else {
        math::log1p(math::exp(-2.0 * lambda))
    }
}

/// The variance-preserving SDE (DDPM's continuous limit): `dx = −½β(t)x dt + √β(t) dw`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct VpSde {
    beta: LinearBeta,
}

impl VpSde {
    /// A VP-SDE on `[0, 1]` with `β(t)` linear from `beta_min` to `beta_max`.
    pub fn new(beta_min: f32, beta_max: f32) -> Result<Self, ParamError> {
        Ok(VpSde {
            beta: LinearBeta::new(beta_min, beta_max)?,
        })
    }
    /// `β(t)`.
    pub fn beta(&self, t: f32) -> f32 {
        self.beta.beta(t)
    }
    /// `β_min`.
    pub fn beta_min(&self) -> f32 {
        self.beta.beta_min
    }
    /// `β_max`.
    pub fn beta_max(&self) -> f32 {
        self.beta.beta_max
    }
}

impl Default for VpSde {
    /// β_min = 0.1, β_max = 20, the values of score_sde and DDPM.
    fn default() -> Self {
        VpSde {
            beta: LinearBeta {
                beta_min: 0.1,
                beta_max: 20.0,
            },
        }
    }
}

impl LinearSde for VpSde {
    fn t_max(&self) -> f32 {
        1.0
    }
    #[inline]
    fn drift_coeff(&self, t: f32) -> f32 {
        -0.5 * self.beta.beta(t)
    }
    #[inline]
    fn diffusion_coeff(&self, t: f32) -> f32 {
        math::sqrt(self.beta.beta(t))
    }
    #[inline]
    fn alpha(&self, t: f32) -> f32 {
        math::exp(-0.5 * self.beta.integral(t))
    }
    #[inline]
    fn sigma(&self, t: f32) -> f32 {
        math::sqrt(-math::expm1(-self.beta.integral(t)))
    }
    fn time_at_log_snr(&self, lambda: f32) -> f32 {
        self.beta.time_at_integral(vp_integral_at_log_snr(lambda))
    }
    fn prior_std(&self) -> f32 {
        1.0
    }
}

/// The sub-VP SDE: VP drift with diffusion `√(β(t)(1 − e^{−2B(t)}))`, whose marginal variance
/// stays below the VP one (Song et al. 2021).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SubVpSde {
    beta: LinearBeta,
}

impl SubVpSde {
    /// A sub-VP SDE on `[0, 1]` with `β(t)` linear from `beta_min` to `beta_max`.
    pub fn new(beta_min: f32, beta_max: f32) -> Result<Self, ParamError> {
        Ok(SubVpSde {
            beta: LinearBeta::new(beta_min, beta_max)?,
        })
    }
}

impl SubVpSde {
    /// `β_min`.
    pub fn beta_min(&self) -> f32 {
        self.beta.beta_min
    }
    /// `β_max`.
    pub fn beta_max(&self) -> f32 {
        self.beta.beta_max
    }
}

impl Default for SubVpSde {
    /// β_min = 0.1, β_max = 20.
    fn default() -> Self {
        SubVpSde {
            beta: VpSde::default().beta,
        }
    }
}

impl LinearSde for SubVpSde {
    fn t_max(&self) -> f32 {
        1.0
    }
    #[inline]
    fn drift_coeff(&self, t: f32) -> f32 {
        -0.5 * self.beta.beta(t)
    }
    #[inline]
    fn diffusion_coeff(&self, t: f32) -> f32 {
        let b = self.beta.integral(t);
        math::sqrt(-self.beta.beta(t) * math::expm1(-2.0 * b))
    }
    #[inline]
    fn alpha(&self, t: f32) -> f32 {
        math::exp(-0.5 * self.beta.integral(t))
    }
    #[inline]
    fn sigma(&self, t: f32) -> f32 {
        -math::expm1(-self.beta.integral(t))
    }
    /// σ/α = e^{B/2} − e^{−B/2} = 2 sinh(B/2) = e^{−λ}, so B = 2 asinh(e^{−λ}/2).
    fn time_at_log_snr(&self, lambda: f32) -> f32 {
        let b = 2.0 * math::asinh(0.5 * math::exp(-lambda));
        self.beta.time_at_integral(b)
    }
    fn prior_std(&self) -> f32 {
        1.0
    }
}

/// The variance-exploding SDE (NCSN's continuous limit): `dx = √(dσ²/dt) dw` with
/// `σ(t) = σ_min (σ_max/σ_min)^t`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct VeSde {
    sigma_min: f32,
    sigma_max: f32,
    /// ln(σ_max/σ_min), used by every method.
    log_ratio: f32,
}

impl VeSde {
    /// A VE-SDE on `[0, 1]` from `sigma_min` to `sigma_max`.
    pub fn new(sigma_min: f32, sigma_max: f32) -> Result<Self, ParamError> {
        ParamError::positive(sigma_min, "sigma_min")?;
        ParamError::require(
            sigma_max.is_finite() && sigma_max > sigma_min,
            "sigma_max",
            "finite and > sigma_min",
        )?;
        Ok(VeSde {
            sigma_min,
            sigma_max,
            log_ratio: math::ln(sigma_max / sigma_min),
        })
    }
    /// σ_min.
    pub fn sigma_min(&self) -> f32 {
        self.sigma_min
    }
    /// σ_max.
    pub fn sigma_max(&self) -> f32 {
        self.sigma_max
    }
}

impl Default for VeSde {
    /// σ_min = 0.01, σ_max = 50 (score_sde's values for small data).
    fn default() -> Self {
        let (sigma_min, sigma_max) = (0.01, 50.0);
        VeSde {
            sigma_min,
            sigma_max,
            log_ratio: math::ln(sigma_max / sigma_min),
        }
    }
}

impl LinearSde for VeSde {
    fn t_max(&self) -> f32 {
        1.0
    }
    #[inline]
    fn drift_coeff(&self, _t: f32) -> f32 {
        0.0
    }
    #[inline]
    fn diffusion_coeff(&self, t: f32) -> f32 {
        self.sigma(t) * math::sqrt(2.0 * self.log_ratio)
    }
    #[inline]
    fn alpha(&self, _t: f32) -> f32 {
        1.0
    }
    #[inline]
    fn sigma(&self, t: f32) -> f32 {
        self.sigma_min * math::exp(t * self.log_ratio)
    }
    fn log_snr(&self, t: f32) -> f32 {
        -(math::ln(self.sigma_min) + t * self.log_ratio)
    }
    fn time_at_log_snr(&self, lambda: f32) -> f32 {
        (-lambda - math::ln(self.sigma_min)) / self.log_ratio
    }
    fn prior_std(&self) -> f32 {
        self.sigma_max
    }
}

/// The Ornstein–Uhlenbeck process `dx = −θx dt + √(2θ)·s dw`, stationary law N(0, s²·I).
///
/// With θ = 1, s = 1 it is the overdamped Langevin equation `dx = ∇log π(x) dt + √2 dw` of the
/// standard normal π ([`OrnsteinUhlenbeck::langevin`]).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OrnsteinUhlenbeck {
    theta: f32,
    stationary_std: f32,
    t_max: f32,
}

impl OrnsteinUhlenbeck {
    /// An OU process with mean-reversion rate `theta`, stationary std `stationary_std`, run to
    /// `t_max`.
    pub fn new(theta: f32, stationary_std: f32, t_max: f32) -> Result<Self, ParamError> {
        ParamError::positive(theta, "theta")?;
        ParamError::positive(stationary_std, "stationary_std")?;
        ParamError::positive(t_max, "t_max")?;
        Ok(OrnsteinUhlenbeck {
            theta,
            stationary_std,
            t_max,
        })
    }
    /// The overdamped Langevin equation of N(0, I): θ = 1, s = 1.
    pub fn langevin(t_max: f32) -> Result<Self, ParamError> {
        Self::new(1.0, 1.0, t_max)
    }
    /// θ.
    pub fn theta(&self) -> f32 {
        self.theta
    }
}

impl LinearSde for OrnsteinUhlenbeck {
    fn t_max(&self) -> f32 {
        self.t_max
    }
    #[inline]
    fn drift_coeff(&self, _t: f32) -> f32 {
        -self.theta
    }
    #[inline]
    fn diffusion_coeff(&self, _t: f32) -> f32 {
        math::sqrt(2.0 * self.theta) * self.stationary_std
    }
    #[inline]
    fn alpha(&self, t: f32) -> f32 {
        math::exp(-self.theta * t)
    }
    #[inline]
    fn sigma(&self, t: f32) -> f32 {
        self.stationary_std * math::sqrt(-math::expm1(-2.0 * self.theta * t))
    }
    /// (σ/α)² = s²(e^{2θt} − 1) = e^{−2λ}, so t = ln(1 + e^{−2λ}/s²)/(2θ).
    fn time_at_log_snr(&self, lambda: f32) -> f32 {
        let s2 = self.stationary_std * self.stationary_std;
        math::log1p(math::exp(-2.0 * lambda) / s2) / (2.0 * self.theta)
    }
    fn prior_std(&self) -> f32 {
        self.stationary_std
    }
}
