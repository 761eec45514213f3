//! Scores `s(x, t) = ∇ₓ log p_t(x)`: the trait every sampler takes, and the exact ones.
//!
//! - [`GaussianMixture`]: a diagonal-covariance Gaussian mixture. As a [`Score`] it is the
//!   time-independent score of the mixture itself (an MCMC target); wrapped in [`Diffused`]
//!   it is the exact score of the mixture pushed through any [`LinearSde`] — the marginal at
//!   `t` is the mixture with means `α(t)μ_k` and variances `α(t)²s_k² + σ(t)²`.
//! - [`Component`] alone is a single diagonal Gaussian, the same way.
//! - [`DoubleWell`]: `−∇U` for the double-well potential, a non-Gaussian MCMC target.
//!
//! The learned network implements the same trait, so every sampler takes it unchanged.

use crate::error::ParamError;
use crate::math;
use crate::sde::LinearSde;

/// A score field `s(x, t) ≈ ∇ₓ log p_t(x)` on `[f32; N]`. Time-independent scores ignore `t`.
pub trait Score<const N: usize> {
    /// The score at `x` and time `t`.
    fn score(&self, x: &[f32; N], t: f32) -> [f32; N];
}

impl<S: Score<N> + ?Sized, const N: usize> Score<N> for &S {
    #[inline]
    fn score(&self, x: &[f32; N], t: f32) -> [f32; N] {
        (**self).score(x, t)
    }
}

/// A distribution whose image under `x ↦ αx + σz` (z standard normal) has a closed-form score.
pub trait GaussianData<const N: usize> {
    /// The score of the law of `α·X + σ·Z` at `x`, for `α > 0`, `σ ≥ 0`.
    fn perturbed_score(&self, x: &[f32; N], alpha: f32, sigma: f32) -> [f32; N];
}

/// One component of a diagonal Gaussian mixture: weight, mean and per-dimension std.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Component<const N: usize> {
    log_weight: f32,
    mean: [f32; N],
    std: [f32; N],
}

impl<const N: usize> Component<N> {
    /// A component of (unnormalised) weight `weight > 0`, mean `mean` and std `std > 0`.
    pub fn new(weight: f32, mean: [f32; N], std: [f32; N]) -> Result<Self, ParamError> {
        ParamError::positive(weight, "weight")?;
        ParamError::require(mean.iter().all(|m| m.is_finite()), "mean", "finite")?;
        ParamError::require(
            std.iter().all(|s| s.is_finite() && *s > 0.0),
            "std",
            "finite and > 0 in every dimension",
        )?;
        Ok(Component {
            log_weight: math::ln(weight),
            mean,
            std,
        })
    }
    /// The mean.
    pub fn mean(&self) -> &[f32; N] {
        &self.mean
    }
    /// The per-dimension standard deviation.
    pub fn std(&self) -> &[f32; N] {
        &self.std
    }
}

impl<const N: usize> GaussianData<N> for Component<N> {
    fn perturbed_score(&self, x: &[f32; N], alpha: f32, sigma: f32) -> [f32; N] {
        let (a2, s2) = (alpha * alpha, sigma * sigma);
        core::array::from_fn(|d| {
            (alpha * self.mean[d] - x[d]) / (a2 * self.std[d] * self.std[d] + s2)
        })
    }
}

impl<const N: usize> Score<N> for Component<N> {
    fn score(&self, x: &[f32; N], _t: f32) -> [f32; N] {
        self.perturbed_score(x, 1.0, 0.0)
    }
}

/// A diagonal-covariance Gaussian mixture over components borrowed from the caller (a
/// `static` array on a chip, a `Vec` on the host): no allocation, no fixed capacity.
#[derive(Clone, Copy, Debug)]
pub struct GaussianMixture<'a, const N: usize> {
    components: &'a [Component<N>],
    /// All components share one std vector: the log-determinants cancel in the softmax.
    shared_std: bool,
}

impl<'a, const N: usize> GaussianMixture<'a, N> {
    /// The mixture of `components` (weights need not sum to 1).
    pub fn new(components: &'a [Component<N>]) -> Result<Self, ParamError> {
        ParamError::require(!components.is_empty(), "components", "not empty")?;
        let shared_std = components.iter().all(|c| c.std == components[0].std);
        Ok(GaussianMixture {
            components,
            shared_std,
        })
    }
    /// The components.
    pub fn components(&self) -> &'a [Component<N>] {
        self.components
    }
}

/// Components handled per pass of the softmax: their logits and differences live on the
/// stack (8·(N + 1) floats).
const CHUNK: usize = 8;

impl<const N: usize> GaussianMixture<'_, N> {
    /// `1/v` per dimension for component `c`, and `−½ Σ ln v` (0 when the std is shared).
    #[inline]
    fn inverse_variance(&self, c: &Component<N>, a2: f32, s2: f32) -> ([f32; N], f32) {
        let inv_var: [f32; N] = core::array::from_fn(|d| 1.0 / (a2 * c.std[d] * c.std[d] + s2));
        let log_det = if self.shared_std {
            0.0
        } else {
            0.5 * inv_var.iter().map(|&iv| math::ln(iv)).sum::<f32>()
        };
        (inv_var, log_det)
    }
}

impl<const N: usize> GaussianData<N> for GaussianMixture<'_, N> {
    /// `Σ_k r_k(x)·(αμ_k − x)/v_k` with responsibilities `r_k` from a log-sum-exp over chunks
    /// of 8 components: the logits of a chunk are computed first, then one exponential per
    /// component against the running maximum (rescaled when a later chunk exceeds it), so
    /// nothing overflows and no buffer grows with the number of components.
    fn perturbed_score(&self, x: &[f32; N], alpha: f32, sigma: f32) -> [f32; N] {
        let (a2, s2) = (alpha * alpha, sigma * sigma);
        let shared = self.inverse_variance(&self.components[0], a2, s2);
        let mut max_logit = f32::NEG_INFINITY;
        let mut denominator = 0.0f32;
        let mut numerator = [0.0f32; N];
        for chunk in self.components.chunks(CHUNK) {
            let mut logits = [f32::NEG_INFINITY; CHUNK];
            let mut pulls = [[0.0f32; N]; CHUNK];
            let mut chunk_max = f32::NEG_INFINITY;
            for ((logit, pull), c) in logits.iter_mut().zip(&mut pulls).zip(chunk) {
                let (inv_var, log_det) = if self.shared_std {
                    shared
                } else {
                    self.inverse_variance(c, a2, s2)
                };
                *logit = c.log_weight + log_det;
                for d in 0..N {
                    let diff = alpha * c.mean[d] - x[d];
                    pull[d] = diff * inv_var[d];
                    *logit -= 0.5 * diff * pull[d];
                }
                if *logit > chunk_max {
                    chunk_max = *logit;
                }
            }
            if chunk_max > max_logit {
                let rescale = math::exp(max_logit - chunk_max);
                denominator *= rescale;
                numerator.iter_mut().for_each(|n| *n *= rescale);
                max_logit = chunk_max;
            }
            for (logit, pull) in logits.iter().zip(&pulls).take(chunk.len()) {
                let weight = math::exp(logit - max_logit);
                denominator += weight;
                for d in 0..N {
                    numerator[d] += weight * pull[d];
                }
            }
        }
        // A NaN in x makes every logit NaN: the maximum stays −∞ and 0/0 returns NaN.
        numerator.map(|n| n / denominator)
    }
}

impl<const N: usize> Score<N> for GaussianMixture<'_, N> {
    fn score(&self, x: &[f32; N], _t: f32) -> [f32; N] {
        self.perturbed_score(x, 1.0, 0.0)
    }
}

/// The exact score of `data` diffused by the forward process `sde`:
/// `s(x, t) = ∇ log p_t(x)` with `p_t` the law of `α(t)X₀ + σ(t)Z`.
#[derive(Clone, Copy, Debug)]
pub struct Diffused<D, P> {
    /// The forward process.
    pub sde: D,
    /// The data distribution at `t = 0`.
    pub data: P,
}

impl<D, P> Diffused<D, P> {
    /// `data` diffused by `sde`.
    pub fn new(sde: D, data: P) -> Self {
        Diffused { sde, data }
    }
}

impl<D: LinearSde, P: GaussianData<N>, const N: usize> Score<N> for Diffused<D, P> {
    #[inline]
    fn score(&self, x: &[f32; N], t: f32) -> [f32; N] {
        self.data
            .perturbed_score(x, self.sde.alpha(t), self.sde.sigma(t))
    }
}

/// The double-well potential `U(x) = h(x₀² − 1)² + ½Σ_{d≥1} x_d²`: two modes at `x₀ = ±1`
/// separated by a barrier of height `h`; its score is `−∇U` (target density `e^{−U}`).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DoubleWell {
    barrier: f32,
}

impl DoubleWell {
    /// A double well with barrier height `barrier > 0`.
    pub fn new(barrier: f32) -> Result<Self, ParamError> {
        ParamError::positive(barrier, "barrier")?;
        Ok(DoubleWell { barrier })
    }
    /// The potential `U(x)`.
    pub fn potential<const N: usize>(&self, x: &[f32; N]) -> f32 {
        let Some((first, rest)) = x.split_first() else {
            return 0.0;
        };
        let well = first * first - 1.0;
        self.barrier * well * well + 0.5 * rest.iter().map(|v| v * v).sum::<f32>()
    }
}

impl<const N: usize> Score<N> for DoubleWell {
    fn score(&self, x: &[f32; N], _t: f32) -> [f32; N] {
        core::array::from_fn(|d| {
            if d == 0 {
                -4.0 * self.barrier * x[0] * (x[0] * x[0] - 1.0)
            } else {
                -x[d]
            }
        })
    }
}
