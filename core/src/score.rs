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

use crate::error::{ParamError, StepError};
use crate::math;
use crate::sde::LinearSde;

/// A score field `s(x, t) ≈ ∇ₓ log p_t(x)` on `[f32; N]`. Time-independent scores ignore `t`.
pub trait Score<const N: usize> {
    /// The score at `x` and time `t`.
    fn score(&self, x: &[f32; N], t: f32) -> [f32; N];

    /// The scores of all of `xs` at one time `t`, into `out[..xs.len()]`. Implementations
    /// override it to share the work that depends only on `t` and to vectorise across points,
    /// but must give the same bits as [`score`](Self::score) on each point.
    #[inline]
    fn score_batch(&self, xs: &[[f32; N]], t: f32, out: &mut [[f32; N]]) {
        for (x, s) in xs.iter().zip(out) {
            *s = self.score(x, t);
        }
    }
}

impl<S: Score<N> + ?Sized, const N: usize> Score<N> for &S {
    #[inline]
    fn score(&self, x: &[f32; N], t: f32) -> [f32; N] {
        (**self).score(x, t)
    }
    #[inline]
    fn score_batch(&self, xs: &[[f32; N]], t: f32, out: &mut [[f32; N]]) {
        (**self).score_batch(xs, t, out)
    }
}

/// A distribution whose image under `x ↦ αx + σz` (z standard normal) has a closed-form score.
pub trait GaussianData<const N: usize> {
    /// The score of the law of `α·X + σ·Z` at `x`, for `α > 0`, `σ ≥ 0`.
    fn perturbed_score(&self, x: &[f32; N], alpha: f32, sigma: f32) -> [f32; N];

    /// [`perturbed_score`](Self::perturbed_score) of every point of `xs` into
    /// `out[..xs.len()]`, with the same bits.
    #[inline]
    fn perturbed_score_batch(&self, xs: &[[f32; N]], alpha: f32, sigma: f32, out: &mut [[f32; N]]) {
        for (x, s) in xs.iter().zip(out) {
            *s = self.perturbed_score(x, alpha, sigma);
        }
    }
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
    /// The coordinates that are the data's (N but in a padded state; see
    /// [`GaussianMixture::with_coordinates`]).
    coordinates: usize,
    /// Scores full batches of [`LANES`] points when set; else the baseline copy does.
    lanes: Option<MixtureLanes<N>>,
}

/// Scores a batch of [`LANES`] points of the data diffused to `(α, σ)`, as
/// [`GaussianMixture::score_lanes`] does.
pub type MixtureLanes<const N: usize> =
    fn(&GaussianMixture<'_, N>, &[[f32; N]; LANES], f32, f32, &mut [[f32; N]; LANES]);

impl<'a, const N: usize> GaussianMixture<'a, N> {
    /// The mixture of `components` (weights need not sum to 1).
    pub fn new(components: &'a [Component<N>]) -> Result<Self, ParamError> {
        ParamError::require(!components.is_empty(), "components", "not empty")?;
        let shared_std = components.iter().all(|c| c.std == components[0].std);
        Ok(GaussianMixture {
            components,
            shared_std,
            coordinates: N,
            lanes: None,
        })
    }
    /// The same mixture with full batches of [`LANES`] points scored by `score`, which must
    /// compute what [`GaussianMixture::score_lanes`] does (typically: call it from a function
    /// compiled for wider vectors, after checking the CPU has them).
    pub fn with_lanes(self, score: MixtureLanes<N>) -> Self {
        GaussianMixture {
            lanes: Some(score),
            ..self
        }
    }
    /// The scores of [`LANES`] points of the data diffused to `(α, σ)`. Always inlined, so a
    /// caller compiled for other vector instructions gets its own copy; the arithmetic is the
    /// same scalar f32 operations whatever the instructions, so the bits are too.
    #[inline(always)]
    pub fn score_lanes(
        &self,
        xs: &[[f32; N]; LANES],
        alpha: f32,
        sigma: f32,
        out: &mut [[f32; N]; LANES],
    ) {
        self.score_points::<LANES>(xs, alpha, sigma, out);
    }
    /// The same mixture on a state padded beyond its first `coordinates` coordinates, whose
    /// components' means are 0 there (the padding then keeps a score of 0): the scores of the
    /// data's coordinates are the bits of the unpadded mixture's. (Only the log-determinants,
    /// summed over the data's coordinates, need to know.)
    pub fn with_coordinates(self, coordinates: usize) -> Self {
        GaussianMixture {
            coordinates,
            ..self
        }
    }
    /// The components.
    pub fn components(&self) -> &'a [Component<N>] {
        self.components
    }
}

/// Components handled per pass of the softmax: their logits live on the stack.
const CHUNK: usize = 8;
/// Points a mixture scores together: the loops over them are the innermost, so they
/// vectorise. 32, two AVX-512 registers, so that two independent chains of the softmax
/// overlap (1.05× the throughput of 16).
pub const LANES: usize = 32;

impl<const N: usize> GaussianMixture<'_, N> {
    /// `1/v` per dimension for component `c`, and `−½ Σ ln v` (0 when the std is shared).
    #[inline]
    fn inverse_variance(&self, c: &Component<N>, a2: f32, s2: f32) -> ([f32; N], f32) {
        let inv_var: [f32; N] = core::array::from_fn(|d| 1.0 / (a2 * c.std[d] * c.std[d] + s2));
        let log_det = if self.shared_std {
            0.0
        } else {
            0.5 * inv_var
                .iter()
                .take(self.coordinates)
                .map(|&iv| math::ln(iv))
                .sum::<f32>()
        };
        (inv_var, log_det)
    }

    /// The scores of up to `L` points (1 for a single point, [`LANES`] in batches): `Σ_k r_k(x)·(αμ_k − x)/v_k` with the
    /// responsibilities `r_k` from a log-sum-exp over chunks of 8 components — a chunk's
    /// logits first, then one exponential per component against the running maximum
    /// (rescaled when a later chunk exceeds it) — so nothing overflows and no buffer grows
    /// with the number of components. Each point's arithmetic is the same whatever the
    /// other points are.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    fn score_points<const L: usize>(
        &self,
        xs: &[[f32; N]],
        alpha: f32,
        sigma: f32,
        out: &mut [[f32; N]],
    ) {
        let lanes = xs.len().min(out.len()).min(L);
        // Dimension-major copies with fixed trip counts: the loops over lanes vectorise.
        let mut x_t = [[0.0f32; L]; N];
        for (p, x) in xs.iter().enumerate().take(lanes) {
            for d in 0..N {
                x_t[d][p] = x[d];
            }
        }
        let (a2, s2) = (alpha * alpha, sigma * sigma);
        let shared = self.inverse_variance(&self.components[0], a2, s2);
        let mut max_logit = [f32::NEG_INFINITY; L];
        let mut denominator = [0.0f32; L];
        let mut numerator = [[0.0f32; L]; N];
        for (index, chunk) in self.components.chunks(CHUNK).enumerate() {
            let mut logits = [[f32::NEG_INFINITY; L]; CHUNK];
            let mut new_max = max_logit;
            for (row, c) in logits.iter_mut().zip(chunk) {
                let (inv_var, log_det) = if self.shared_std {
                    shared
                } else {
                    self.inverse_variance(c, a2, s2)
                };
                *row = [c.log_weight + log_det; L];
                for d in 0..N {
                    let centre = alpha * c.mean[d];
                    for p in 0..L {
                        let diff = centre - x_t[d][p];
                        row[p] -= 0.5 * diff * (diff * inv_var[d]);
                    }
                }
                for p in 0..L {
                    new_max[p] = if row[p] > new_max[p] {
                        row[p]
                    } else {
                        new_max[p]
                    };
                }
            }
            // Rescale what was accumulated against the new maximum; the factor is exactly 1
            // where the maximum did not move (e⁰ = 1), so no branch per lane is needed. The
            // first chunk has nothing accumulated yet.
            if index > 0 {
                let mut rescale = [0.0f32; L];
                for p in 0..L {
                    rescale[p] = math::exp(max_logit[p] - new_max[p]);
                    denominator[p] *= rescale[p];
                }
                for n in numerator.iter_mut() {
                    for p in 0..L {
                        n[p] *= rescale[p];
                    }
                }
            }
            max_logit = new_max;
            for (row, c) in logits.iter().zip(chunk) {
                let inv_var = if self.shared_std {
                    shared.0
                } else {
                    self.inverse_variance(c, a2, s2).0
                };
                let mut weights = [0.0f32; L];
                for p in 0..L {
                    weights[p] = math::exp(row[p] - max_logit[p]);
                    denominator[p] += weights[p];
                }
                for d in 0..N {
                    let centre = alpha * c.mean[d];
                    for p in 0..L {
                        numerator[d][p] += weights[p] * ((centre - x_t[d][p]) * inv_var[d]);
                    }
                }
            }
        }
        // A NaN in x makes every logit NaN: the maximum stays −∞ and the weights NaN.
        let mut score_t = [[0.0f32; L]; N];
        for d in 0..N {
            for p in 0..L {
                score_t[d][p] = numerator[d][p] / denominator[p];
            }
        }
        for (p, o) in out.iter_mut().enumerate().take(lanes) {
            for d in 0..N {
                o[d] = score_t[d][p];
            }
        }
    }
}

impl<const N: usize> GaussianMixture<'_, N> {
    /// The score of the data diffused to `(α, σ)` at `x`, with its derivatives over the
    /// data's coordinates: `(s, (∂s/∂x)·v, ∇·s)` (the product is zero without `v`). With the
    /// responsibilities `w_k` and component scores `s_k = (αμ_k − x)/v_k`:
    /// `∂s/∂x = Σ_k w_k [s_k(s_k − s)ᵀ − diag(1/v_k)]`, so
    /// `∇·s = Σ_k w_k Σ_d (s_kd² − 1/v_kd) − |s|²`. The score has the bits of
    /// [`GaussianData::perturbed_score`].
    pub fn perturbed_derivatives(
        &self,
        x: &[f32; N],
        alpha: f32,
        sigma: f32,
        v: Option<&[f32; N]>,
    ) -> ([f32; N], [f32; N], f32) {
        let (a2, s2) = (alpha * alpha, sigma * sigma);
        let coordinates = self.coordinates.min(N);
        let logit = |c: &Component<N>| {
            let (inv_var, log_det) = self.inverse_variance(c, a2, s2);
            let mut logit = c.log_weight + log_det;
            for d in 0..N {
                let diff = alpha * c.mean[d] - x[d];
                logit -= 0.5 * diff * (diff * inv_var[d]);
            }
            (logit, inv_var)
        };
        let max = self
            .components
            .iter()
            .map(|c| logit(c).0)
            .fold(f32::NEG_INFINITY, f32::max);
        let zero = [0.0f32; N];
        let v = v.unwrap_or(&zero);
        let (mut total, mut mean_score, mut outer, mut curvature, mut spread) =
            (0.0f32, [0.0f32; N], [0.0f32; N], [0.0f32; N], 0.0f32);
        for c in self.components {
            let (logit, inv_var) = logit(c);
            let w = math::exp(logit - max);
            total += w;
            let s_k: [f32; N] = core::array::from_fn(|d| (alpha * c.mean[d] - x[d]) * inv_var[d]);
            let along: f32 = (0..coordinates).map(|d| s_k[d] * v[d]).sum();
            for d in 0..coordinates {
                mean_score[d] += w * s_k[d];
                outer[d] += w * s_k[d] * along;
                curvature[d] += w * v[d] * inv_var[d];
                spread += w * (s_k[d] * s_k[d] - inv_var[d]);
            }
        }
        let s: [f32; N] = core::array::from_fn(|d| mean_score[d] / total);
        let s_along: f32 = (0..coordinates).map(|d| s[d] * v[d]).sum();
        let mut jv = [0.0f32; N];
        for d in 0..coordinates {
            jv[d] = outer[d] / total - s[d] * s_along - curvature[d] / total;
        }
        let norm2: f32 = s.iter().take(coordinates).map(|v| v * v).sum();
        let divergence = spread / total - norm2;
        (self.perturbed_score(x, alpha, sigma), jv, divergence)
    }
}

impl<const N: usize> GaussianMixture<'_, N> {
    /// `log p(x)` of the data diffused to `(α, σ)`, the mixture of `N(αμ_k, α²s_k² + σ²)`
    /// over the data's coordinates with the weights normalised, in f32 (for drawing a
    /// density; `tinyscore likelihood` computes its references in f64).
    pub fn perturbed_log_density(&self, x: &[f32; N], alpha: f32, sigma: f32) -> f32 {
        let (a2, s2) = (alpha * alpha, sigma * sigma);
        let coordinates = self.coordinates.min(N);
        let ln_2pi = math::ln(2.0 * core::f32::consts::PI);
        let log_term = |c: &Component<N>| {
            let mut log = c.log_weight;
            for ((x, mean), std) in x.iter().zip(&c.mean).zip(&c.std).take(coordinates) {
                let var = a2 * std * std + s2;
                let diff = x - alpha * mean;
                log -= 0.5 * (diff * diff / var + math::ln(var) + ln_2pi);
            }
            log
        };
        log_sum_exp(self.components.iter().map(log_term))
            - log_sum_exp(self.components.iter().map(|c| c.log_weight))
    }
}

/// `ln Σ e^{l}` in one pass, against the running maximum (the sum is rescaled when a later
/// term exceeds it), so nothing overflows and nothing is stored.
fn log_sum_exp(logs: impl Iterator<Item = f32>) -> f32 {
    let (mut max, mut sum) = (f32::NEG_INFINITY, 0.0f32);
    for l in logs {
        if l > max {
            sum = sum * math::exp(max - l) + 1.0;
            max = l;
        } else {
            sum += math::exp(l - max);
        }
    }
    max + math::ln(sum)
}

impl<const N: usize> GaussianData<N> for GaussianMixture<'_, N> {
    fn perturbed_score(&self, x: &[f32; N], alpha: f32, sigma: f32) -> [f32; N] {
        let mut out = [[0.0f32; N]; 1];
        self.score_points::<1>(core::slice::from_ref(x), alpha, sigma, &mut out);
        out[0]
    }

    fn perturbed_score_batch(&self, xs: &[[f32; N]], alpha: f32, sigma: f32, out: &mut [[f32; N]]) {
        let len = xs.len().min(out.len());
        let mut full = xs[..len].chunks_exact(LANES);
        let mut full_out = out[..len].chunks_exact_mut(LANES);
        for (xs, out) in (&mut full).zip(&mut full_out) {
            // Exact chunks: the conversions to arrays always succeed.
            if let (Ok(xs), Ok(out)) = (xs.try_into(), out.try_into()) {
                match self.lanes {
                    Some(score) => score(self, xs, alpha, sigma, out),
                    None => self.score_lanes(xs, alpha, sigma, out),
                }
            }
        }
        // The partial chunk (or a single point on a chip): one lane at a time does no work
        // for empty lanes, and each point's bits are the same either way.
        for (x, o) in full.remainder().iter().zip(full_out.into_remainder()) {
            *o = self.perturbed_score(x, alpha, sigma);
        }
    }
}

impl<const N: usize> Score<N> for GaussianMixture<'_, N> {
    fn score(&self, x: &[f32; N], _t: f32) -> [f32; N] {
        self.perturbed_score(x, 1.0, 0.0)
    }
    fn score_batch(&self, xs: &[[f32; N]], _t: f32, out: &mut [[f32; N]]) {
        self.perturbed_score_batch(xs, 1.0, 0.0, out)
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
    #[inline]
    fn score_batch(&self, xs: &[[f32; N]], t: f32, out: &mut [[f32; N]]) {
        self.data
            .perturbed_score_batch(xs, self.sde.alpha(t), self.sde.sigma(t), out)
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

/// The scores of `xs` at `t` into the first `xs.len()` entries of `out`, or an error naming
/// the first particle whose score is not finite.
#[inline]
pub(crate) fn checked_scores<'o, S: Score<N>, const N: usize, const B: usize>(
    score: &S,
    xs: &[[f32; N]],
    t: f32,
    out: &'o mut [[f32; N]; B],
) -> Result<&'o [[f32; N]], StepError> {
    let out = &mut out[..xs.len().min(B)];
    score.score_batch(&xs[..out.len()], t, out);
    match crate::vector::first_non_finite(out) {
        None => Ok(out),
        Some(particle) => Err(StepError::NonFiniteScore { particle }),
    }
}
