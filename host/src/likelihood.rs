//! Log-likelihoods of data points by the probability-flow ODE, for a model file or the exact
//! score of a Gaussian mixture: the core's [`Likelihood`] run on every point, in parallel,
//! each point with its own noise stream (for Hutchinson's probes), so a point's result is the
//! same bits whatever the threads.
//!
//! A model's density is in the data's units: the network sees `z = (x − mean)/std`, so
//! `log p(x) = log p_z(z) − Σ_d ln std_d`. At `T` the model adds the N(0, I) prior; the exact
//! mixture adds its own density diffused to `T`, so its result is exact up to the solver.

use crate::data::Mixture;
use crate::points::Points;
use crate::progress::Progress;
use crate::sampling::thread_pool;
use anyhow::{anyhow, ensure, Result};
use rayon::prelude::*;
use tinyscore::likelihood::{
    gaussian_log_density, Divergence, Encoded, Likelihood, NetworkJacobian,
};
use tinyscore::{
    particle_noise, DefaultRng, Dopri5, GaussianMixture, GaussianStream, LinearSde, Model,
    ModelSde, SampleError,
};

/// The solver's settings and the divergence.
#[derive(Clone, Copy, Debug)]
pub struct LikelihoodOptions {
    /// Relative tolerance.
    pub rtol: f32,
    /// Absolute tolerance.
    pub atol: f32,
    /// The most steps per point.
    pub max_steps: u32,
    /// Hutchinson probes per point (`None`: the exact divergence).
    pub hutchinson: Option<u32>,
    /// Seed of the probes: point i draws from stream i.
    pub seed: u64,
    /// Threads (0: one per core).
    pub threads: usize,
}

impl LikelihoodOptions {
    /// The core's likelihood for these settings.
    pub fn likelihood(&self) -> Result<Likelihood> {
        let solver = Dopri5::new(self.rtol, self.atol, self.max_steps)
            .map_err(|e| anyhow!("{e} (--rtol, --atol, --max-steps)"))?;
        let divergence = match self.hutchinson {
            None => Divergence::Exact,
            Some(probes) => Divergence::Hutchinson { probes },
        };
        Likelihood::new(solver, divergence).map_err(|e| anyhow!("--hutchinson: {e}"))
    }
}

/// One point's result.
#[derive(Clone, Debug, PartialEq)]
pub struct PointLikelihood {
    /// `log p(x)` in nats, in the data's units.
    pub log_p: f64,
    /// The point's latent `x(T)` (the model's normalised coordinates for a model).
    pub latent: Vec<f32>,
    /// Evaluations of the score (with its divergence) the point took.
    pub nfe: u32,
}

/// The log-likelihood of each of `points` (data units) under `model` (an f32 network).
pub fn model_likelihood(
    model: Model<'_>,
    points: &Points,
    options: &LikelihoodOptions,
    progress: &Progress,
) -> Result<Vec<PointLikelihood>> {
    let dim = model.header().dims.dim as usize;
    ensure!(
        points.dim == dim,
        "the data have {} coordinates, the model {dim}",
        points.dim
    );
    crate::with_dim!(dim, model_likelihood_in(model, points, options, progress))
}

fn model_likelihood_in<const N: usize>(
    model: Model<'_>,
    points: &Points,
    options: &LikelihoodOptions,
    progress: &Progress,
) -> Result<Vec<PointLikelihood>> {
    let score = NetworkJacobian::<N>::padded(model)
        .map_err(|e| anyhow!("{e}: the likelihood needs the f32 model"))?;
    let header = *model.header();
    let dim = header.dims.dim as usize;
    let likelihood = options.likelihood()?;
    each_point(points, options, progress, |x, noise| {
        let z = model.normalize(x);
        let encoded = likelihood.encode(&header.sde, &score, &z, header.t_end, dim, noise)?;
        let end = model_end_log_density(&model, &encoded.latent[..dim]);
        Ok((encoded, end))
    })
}

/// What a model adds at the end of a point's path: the prior's log-density at its latent, less
/// the standardisation's `Σ_d ln std_d` (the density in data units). A point's log-likelihood
/// is this plus its log-density change (as f64), on the host and for the chip's results.
pub fn model_end_log_density(model: &Model<'_>, latent: &[f32]) -> f64 {
    let log_jacobian: f64 = (0..latent.len())
        .map(|d| (model.normalization(d).1 as f64).ln())
        .sum();
    let prior = gaussian_log_density(latent, model.header().sde.prior_std());
    prior as f64 - log_jacobian
}

/// The log-likelihood of each of `points` under the exact score of `mixture` diffused by
/// `sde`, from `t_end`, with the mixture's exact density at `T`.
pub fn exact_likelihood(
    mixture: &Mixture,
    sde: ModelSde,
    t_end: f32,
    points: &Points,
    options: &LikelihoodOptions,
    progress: &Progress,
) -> Result<Vec<PointLikelihood>> {
    ensure!(
        points.dim == mixture.dim(),
        "the data have {} coordinates, the mixture {}",
        points.dim,
        mixture.dim()
    );
    crate::with_dim!(
        mixture.dim(),
        exact_likelihood_in(mixture, sde, t_end, points, options, progress)
    )
}

fn exact_likelihood_in<const N: usize>(
    mixture: &Mixture,
    sde: ModelSde,
    t_end: f32,
    points: &Points,
    options: &LikelihoodOptions,
    progress: &Progress,
) -> Result<Vec<PointLikelihood>> {
    let components = mixture.components::<N>()?;
    let dim = mixture.dim();
    let data = GaussianMixture::new(&components)?.with_coordinates(dim);
    let score = tinyscore::Diffused::new(sde, data);
    let t_max = sde.t_max();
    let likelihood = options.likelihood()?;
    each_point(points, options, progress, |x, noise| {
        let encoded = likelihood.encode(&sde, &score, x, t_end, dim, noise)?;
        let latent = &encoded.latent[..dim];
        let end = mixture_log_density(mixture, latent, sde.alpha(t_max), sde.sigma(t_max));
        Ok((encoded, end))
    })
}

/// `log p(x)` of `mixture` pushed to `(α, σ)`: the mixture of `N(αμ_k, α²s_k² + σ²)`, in f64.
pub fn mixture_log_density(mixture: &Mixture, x: &[f32], alpha: f32, sigma: f32) -> f64 {
    let (alpha, sigma) = (alpha as f64, sigma as f64);
    let total: f64 = mixture.weights.iter().map(|&w| w as f64).sum();
    let logs: Vec<f64> = (0..mixture.weights.len())
        .map(|k| {
            let mut log = (mixture.weights[k] as f64 / total).ln();
            for (d, &v) in x.iter().enumerate() {
                let s = mixture.stds[k][d] as f64;
                let var = alpha * alpha * s * s + sigma * sigma;
                let diff = v as f64 - alpha * mixture.means[k][d] as f64;
                log -= 0.5 * (diff * diff / var + var.ln() + (2.0 * std::f64::consts::PI).ln());
            }
            log
        })
        .collect();
    let max = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max + logs.iter().map(|l| (l - max).exp()).sum::<f64>().ln()
}

/// The noise stream of one point (its Hutchinson probes).
type PointNoise = GaussianStream<DefaultRng>;

/// Runs `encode` on every point, in parallel, point i with noise stream i of the seed;
/// `encode` returns the point's encoding and the log-density to add at its end (the density
/// at `T`, and the change of units). A point that fails stops the run, named by its line.
fn each_point<const N: usize, F>(
    points: &Points,
    options: &LikelihoodOptions,
    progress: &Progress,
    encode: F,
) -> Result<Vec<PointLikelihood>>
where
    F: Fn(&[f32; N], &mut PointNoise) -> Result<(Encoded<N>, f64), SampleError> + Sync,
{
    let dim = points.dim;
    thread_pool(options.threads)?.install(|| {
        (0..points.len())
            .into_par_iter()
            .map(|i| {
                let row = points.row(i);
                let x: [f32; N] = core::array::from_fn(|d| row.get(d).map_or(0.0, |&v| v as f32));
                let mut noise = particle_noise(options.seed, i as u64).with_coordinates(dim);
                let (encoded, end) = encode(&x, &mut noise)
                    .map_err(|e| anyhow!("point {} (data line {}): {e}", i + 1, i + 2))?;
                progress.advance(1);
                Ok(PointLikelihood {
                    log_p: end + encoded.delta_log_p as f64,
                    latent: encoded.latent[..dim].to_vec(),
                    nfe: encoded.stats.nfe,
                })
            })
            .collect()
    })
}
