//! Training the score network by denoising score matching (ε-prediction), as score_sde does.
//!
//! With the default [`Output::GaussianResidual`] the model's ε̂ is the network's output plus
//! `c(t)·x_t`, `c = σ/(α² + σ²)`, so the network is fitted to the target `z − c·x_t`: the same
//! loss, the same gradient with respect to the network's output.
//!
//! Each step draws a batch of data points `x₀`, times `t ~ U(t_end, T)` and noise `z`, forms
//! `x_t = α(t)·x₀ + σ(t)·z`, and minimises the mean over the batch and the dimensions of
//! `(ε̂(x_t, t) − z)²` (score_sde's `reduce_mean` loss) with Adam: linear warm-up, cosine decay,
//! gradient clipping at global norm 1, and an exponential moving average of the weights, which
//! is what is saved. The products run on the `gemm` crate (faer's), except a thin output
//! layer's forward product and backward signal (at most 4 wide), which loops of
//! `kernels` run several times faster. The batch is split into one chunk per thread and
//! the chunks' gradients are summed in order, so a run is deterministic for a fixed seed and
//! thread count on a given kind of CPU (the products and SiLU take fused multiply–adds where
//! the CPU has them, which round differently). Every step's randomness comes from its own
//! stream of the seed, so a resumed run continues exactly as an uninterrupted one.
//!
//! The last [`TrainConfig::qat_steps`] are quantization-aware: when they begin, the activation
//! quantizations `quantize` would calibrate for the EMA network are fixed (and saved with it),
//! and from then on the forward pass runs through the integer grids at
//! [`TrainConfig::qat_activations`]' width — weights and biases by
//! [`fake_quantized_parameters`], the input and every activation by their quantizations,
//! SiLU through the int8 table or the int16 interpolated one
//! ([`kernels::bias_quantized_silu_with_slope`]) — with straight-through gradients applied
//! to the float weights. The saved network's weights and biases are those grids' values (the
//! EMA weights rounded as `quantize` rounds them), so the network `quantize` makes is the one
//! these steps trained, and the f32 model is that network in float.

pub mod kernels;

use crate::io::write_atomically;
use crate::model_file::Network;
use crate::points::Points;
use crate::quantize::{self, ActivationWidth};
use anyhow::{bail, ensure, Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use tinyscore::model::{Dims, Output, QuantParams};
use tinyscore::{particle_noise, LinearSde, ModelSde};

/// The largest batch `train` takes.
pub const MAX_BATCH: usize = 1 << 20;

/// Diffused training points on which the activation quantizations of the quantization-aware
/// steps are calibrated (as many as `tinyscore quantize` takes by default).
pub const QAT_CALIBRATION_POINTS: usize = 16_384;

/// What to train and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Hidden width H.
    pub hidden: u32,
    /// Hidden layers L.
    pub layers: u32,
    /// Fourier frequencies F.
    pub fourier: u32,
    /// Scale of the Gaussian Fourier frequencies.
    pub fourier_scale: f32,
    /// The forward process (in checkpoints `[code, p0, p1]`, as in the model file).
    #[serde(with = "sde_as_codes")]
    pub sde: ModelSde,
    /// Smallest training time (and where sampling stops).
    pub t_end: f32,
    /// What the network learns (in checkpoints its code; a checkpoint without one learns ε̂
    /// itself, code 0).
    #[serde(with = "output_as_code", default = "noise_output")]
    pub output: Output,
    /// Optimiser steps.
    pub steps: u64,
    /// Batch size.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f32,
    /// Steps of linear warm-up.
    pub warmup: u64,
    /// EMA decay of the saved weights.
    pub ema_decay: f32,
    /// Decoupled weight decay (AdamW), per unit of learning rate.
    pub weight_decay: f32,
    /// Seed.
    pub seed: u64,
    /// Threads (0: one per core); the result depends on it.
    pub threads: usize,
    /// The last of the `steps` that train through the int8 quantization (quantization-aware
    /// training, see [`fake_quantized_parameters`]); 0 for none, as in checkpoints written
    /// without it.
    #[serde(default)]
    pub qat_steps: u64,
    /// The activation width the quantization-aware steps train through (int8 in checkpoints
    /// written without it).
    #[serde(default)]
    pub qat_activations: ActivationWidth,
}

impl Default for TrainConfig {
    /// `tinyscore train`'s defaults: the 34→64→64→2 network on the VP-SDE, 10⁴ steps of
    /// batch 512 at a peak learning rate of 10⁻² with AdamW decay 0.02 and EMA 0.999.
    fn default() -> Self {
        TrainConfig {
            hidden: 64,
            layers: 2,
            fourier: 16,
            fourier_scale: 16.0,
            sde: ModelSde::Vp(tinyscore::VpSde::default()),
            t_end: 1e-3,
            output: Output::GaussianResidual,
            steps: 10_000,
            batch: 512,
            lr: 1e-2,
            warmup: 200,
            ema_decay: 0.999,
            weight_decay: 0.02,
            seed: 0,
            threads: 0,
            qat_steps: 6_000,
            qat_activations: ActivationWidth::Int8,
        }
    }
}

impl TrainConfig {
    /// The default hidden width for data of `dim` coordinates: 64, or 2·dim where that is
    /// more (up to the format's 256). A layer about as narrow as the data cannot carry the
    /// near-identity ε̂ ≈ σ·x through its SiLUs: at 64 dimensions, width 64 diverges where
    /// 128 samples as well as 2-D data does.
    pub fn default_hidden(dim: usize) -> u32 {
        (2 * dim as u32).clamp(TrainConfig::default().hidden, tinyscore::model::MAX_HIDDEN)
    }

    fn dims(&self, dim: usize) -> Dims {
        Dims {
            dim: dim as u32,
            fourier: self.fourier,
            hidden: self.hidden,
            layers: self.layers,
        }
    }
    fn check(&self) -> Result<()> {
        ensure!(self.steps > 0, "--steps must be at least 1");
        ensure!(
            self.qat_steps <= self.steps,
            "--qat-steps ({}) must be at most --steps ({}): they are the run's last steps",
            self.qat_steps,
            self.steps
        );
        ensure!(
            (1..=MAX_BATCH).contains(&self.batch),
            "--batch must be 1 to {MAX_BATCH} (a batch's activations and gradients are held in \
             memory: about 3 KiB an example for the default network)"
        );
        ensure!(
            self.lr.is_finite() && self.lr > 0.0,
            "--lr must be a finite number > 0"
        );
        ensure!(
            (0.0..1.0).contains(&self.ema_decay),
            "--ema must be in [0, 1)"
        );
        ensure!(
            self.fourier_scale.is_finite() && self.fourier_scale > 0.0,
            "--fourier-scale must be a finite number > 0"
        );
        ensure!(
            self.weight_decay.is_finite() && self.weight_decay >= 0.0,
            "--weight-decay must be a finite number ≥ 0 (it shrinks the weights; a negative one grows them)"
        );
        Ok(())
    }
}

/// Where each layer's weights and biases sit in the flat parameter vector.
#[derive(Clone, Debug)]
struct Layout {
    /// `(inputs, outputs, weight offset, bias offset)` per layer.
    layers: Vec<(usize, usize, usize, usize)>,
    len: usize,
}

impl Layout {
    fn new(dims: &Dims) -> Layout {
        let mut len = 0;
        let layers = (0..=dims.layers)
            .map(|i| {
                let (inputs, outputs) = dims.layer_shape(i);
                let w = len;
                let b = w + inputs * outputs;
                len = b + outputs;
                (inputs, outputs, w, b)
            })
            .collect();
        Layout { layers, len }
    }
}

/// The state of a run: everything a checkpoint holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainState {
    /// The configuration it was started with.
    pub config: TrainConfig,
    /// Steps done.
    pub step: u64,
    /// Data mean per dimension (the model's normalisation).
    pub mean: Vec<f32>,
    /// Data std per dimension.
    pub std: Vec<f32>,
    /// Fourier frequencies.
    pub fourier: Vec<f32>,
    /// Weights and biases, layer by layer.
    pub params: Vec<f32>,
    /// Adam's first moments.
    pub m: Vec<f32>,
    /// Adam's second moments.
    pub v: Vec<f32>,
    /// The moving average of the weights (what is saved).
    pub ema: Vec<f32>,
    /// Loss of the last step.
    pub last_loss: f32,
    /// A fingerprint of the training data ([`data_fingerprint`]), so that a run resumes only
    /// on the data it started with (empty in checkpoints written without one).
    #[serde(default)]
    pub data: String,
    /// The activation quantizations `(scale, zero point)` fixed when the quantization-aware
    /// steps began (the input tensor's, then each hidden layer's pre- and post-activation
    /// tensors'); empty before.
    #[serde(default)]
    pub activations: Vec<(f32, i32)>,
}

/// A fingerprint of a training set: its size and a 64-bit FNV-1a hash of its values' bits.
pub fn data_fingerprint(data: &Points) -> String {
    let hash = data.values.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
        v.to_bits()
            .to_le_bytes()
            .iter()
            .fold(h, |h, b| (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3))
    });
    format!(
        "{} points of {} coordinates, hash {hash:016x}",
        data.len(),
        data.dim
    )
}

impl TrainConfig {
    /// The settings in which `other` differs from this configuration, each as
    /// `name: this → other`.
    pub fn differences(&self, other: &TrainConfig) -> Vec<String> {
        let (a, b) = (serde_json::json!(self), serde_json::json!(other));
        let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
            return Vec::new();
        };
        a.iter()
            .filter(|(key, value)| b.get(*key) != Some(value))
            .map(|(key, value)| {
                let theirs = b.get(key).map_or("—".to_owned(), |v| v.to_string());
                format!("{key}: {value} → {theirs}")
            })
            .collect()
    }
}

impl TrainState {
    /// Checks that this checkpoint continues a run of `config` on `data`, naming what
    /// differs otherwise.
    pub fn check_resumes(&self, config: &TrainConfig, data: &Points) -> Result<()> {
        let differences = config.differences(&self.config);
        ensure!(
            differences.is_empty(),
            "the checkpoint was started with other settings (this run → the checkpoint's): {}",
            differences.join(", ")
        );
        let fingerprint = data_fingerprint(data);
        ensure!(
            self.data.is_empty() || self.data == fingerprint,
            "the checkpoint was trained on other data ({}; this run has {fingerprint})",
            self.data
        );
        Ok(())
    }

    /// A fresh run on `data`: normalisation from the data, PyTorch's `Linear` initialisation
    /// (uniform in ±1/√fan_in), Gaussian Fourier frequencies.
    pub fn new(config: TrainConfig, data: &Points) -> Result<TrainState> {
        config.check()?;
        ensure!(!data.is_empty(), "the training data is empty");
        let dim = data.dim;
        let dims = config.dims(dim);
        dims.validate()?;
        let count = data.len() as f64;
        let mean: Vec<f64> = (0..dim)
            .map(|d| data.rows().map(|r| r[d]).sum::<f64>() / count)
            .collect();
        let std: Vec<f64> = (0..dim)
            .map(|d| {
                let var = data.rows().map(|r| (r[d] - mean[d]).powi(2)).sum::<f64>() / count;
                var.sqrt()
            })
            .collect();
        ensure!(
            std.iter().all(|s| *s > 0.0 && s.is_finite()),
            "a data column is constant: it cannot be normalised"
        );
        let layout = Layout::new(&dims);
        let mut rng = particle_noise(config.seed, u64::MAX);
        let mut params = vec![0.0f32; layout.len];
        for &(inputs, outputs, w, b) in &layout.layers {
            let bound = 1.0 / (inputs as f32).sqrt();
            for p in &mut params[w..b + outputs] {
                let u = (rand_core::Rng::next_u32(rng.rng_mut()) >> 8) as f32 / (1 << 24) as f32;
                *p = bound * (2.0 * u - 1.0);
            }
        }
        let fourier = (0..config.fourier)
            .map(|_| config.fourier_scale * rng.sample())
            .collect();
        Ok(TrainState {
            step: 0,
            mean: mean.iter().map(|&m| m as f32).collect(),
            std: std.iter().map(|&s| s as f32).collect(),
            fourier,
            m: vec![0.0; layout.len],
            v: vec![0.0; layout.len],
            ema: params.clone(),
            params,
            last_loss: f32::NAN,
            data: data_fingerprint(data),
            activations: Vec::new(),
            config,
        })
    }

    /// The saved model: the EMA weights, on the integer grids once the quantization-aware
    /// steps have begun.
    pub fn network(&self) -> Result<Network> {
        let dims = self.config.dims(self.mean.len());
        let layout = Layout::new(&dims);
        let tensors = self.qat_tensors();
        let snapped;
        let weights = if tensors.is_empty() {
            &self.ema
        } else {
            snapped = fake_quantized_parameters(&dims, &self.ema, &tensors);
            &snapped
        };
        Ok(Network {
            dims,
            sde: self.config.sde,
            t_end: self.config.t_end,
            output: self.config.output,
            mean: self.mean.clone(),
            std: self.std.clone(),
            fourier: self.fourier.clone(),
            layers: layout
                .layers
                .iter()
                .map(|&(_, outputs, w, b)| {
                    (weights[w..b].to_vec(), weights[b..b + outputs].to_vec())
                })
                .collect(),
            activations: self.activation_quantizations(),
            activation_width: self.config.qat_activations,
        })
    }

    /// The tensors' quantizations at the width the quantization-aware steps train through
    /// (empty before them).
    fn qat_tensors(&self) -> Vec<QuantParams> {
        let width = self.config.qat_activations;
        let q = self.activation_quantizations();
        q.into_iter().map(|q| width.tensor(q)).collect()
    }

    /// The activation quantizations of the quantization-aware steps (empty before them).
    pub fn activation_quantizations(&self) -> Vec<QuantParams> {
        self.activations
            .iter()
            .map(|&(scale, zero_point)| QuantParams { scale, zero_point })
            .collect()
    }

    /// Fixes the activation quantizations for the quantization-aware steps: those `quantize`
    /// calibrates for the network as it is now (the EMA weights) on [`QAT_CALIBRATION_POINTS`]
    /// diffused training points.
    fn fix_activations(&mut self, data: &TrainingData) -> Result<()> {
        let network = self.network()?;
        let inputs = quantize::diffused_normalized_inputs(
            &network,
            &data.values,
            QAT_CALIBRATION_POINTS,
            self.config.seed,
            (network.t_end, network.sde.t_max()),
        );
        self.activations = quantize::calibrate(&network, &inputs)?
            .iter()
            .map(|q| (q.scale, q.zero_point))
            .collect();
        Ok(())
    }

    /// Writes the checkpoint atomically (JSON; floats round-trip exactly).
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomically(path, |w| Ok(serde_json::to_writer(w, self)?))
    }

    /// Reads a checkpoint.
    pub fn load(path: &Path) -> Result<TrainState> {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot read the checkpoint {}", path.display()))?;
        serde_json::from_reader(std::io::BufReader::new(file))
            .with_context(|| format!("{} is not a tinyscore checkpoint", path.display()))
    }
}

/// The training data, normalised with the run's statistics: row-major f32, `dim` columns.
#[derive(Clone, Debug)]
pub struct TrainingData {
    values: Vec<f32>,
    dim: usize,
}

impl TrainingData {
    /// `data` normalised with `state`'s mean and std.
    pub fn new(state: &TrainState, data: &Points) -> Result<TrainingData> {
        ensure!(
            data.dim == state.mean.len(),
            "the data has {} columns, the run {}",
            data.dim,
            state.mean.len()
        );
        let values = data
            .rows()
            .flat_map(|r| {
                r.iter()
                    .zip(state.mean.iter().zip(&state.std))
                    .map(|(v, (m, s))| ((*v as f32) - m) / s)
            })
            .collect();
        Ok(TrainingData {
            values,
            dim: data.dim,
        })
    }
}

/// One chunk's buffers for a step: its rows of the batch, each layer's output and SiLU
/// slope, the backward signal and the chunk's gradient. They live across steps, so a step
/// allocates nothing and clears nothing that the products overwrite anyway.
#[derive(Debug, Default)]
struct Workspace {
    /// Rows `[x_t, sin, cos]`, row-major.
    inputs: Vec<f32>,
    /// The noise each row's ε̂ should predict.
    targets: Vec<f32>,
    /// Each row's data point index, drawn before any data is read.
    points: Vec<usize>,
    /// Each row's time, α(t) and σ(t).
    times: Vec<f32>,
    alphas: Vec<f32>,
    sigmas: Vec<f32>,
    /// Layer i's output (after SiLU for hidden layers).
    outputs: Vec<Vec<f32>>,
    /// SiLU's derivative at each hidden layer's pre-activation.
    slopes: Vec<Vec<f32>>,
    /// ∂loss/∂(the current layer's output), and the one for the layer below.
    signal: Vec<f32>,
    signal_below: Vec<f32>,
    /// This chunk's gradient.
    grad: Vec<f32>,
    /// A layer's weight gradient in column-major order, as the GEMM writes it fastest.
    grad_w_columns: Vec<f32>,
    rows: usize,
}

/// The first `len` elements of `buffer`, whose values the caller overwrites: it grows
/// (zeroed) when needed and never shrinks, so buffers that trade places (`signal` and
/// `signal_below`) are not cleared again each step.
fn sized(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    &mut buffer[..len]
}

/// Asks the CPU to bring the start of `values` into the cache, without waiting for it.
#[inline]
fn prefetch(values: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(first) = values.first() {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch reads nothing into the program and never faults; the address
        // is a valid reference anyway.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((first as *const f32).cast()) };
    }
}

/// Draws rows `rows` of the batch of step `step` into `ws`. Each row draws its data point,
/// time and noise from its own stream of the seed, so chunks of a batch can be drawn in
/// parallel and a resumed run draws what an uninterrupted one would.
fn draw_rows(
    state: &TrainState,
    sde: &ModelSde,
    data: &TrainingData,
    step: u64,
    rows: std::ops::Range<usize>,
    ws: &mut Workspace,
) {
    let dim = data.dim;
    let data = &data.values;
    let config = &state.config;
    let f = state.fourier.len();
    let width = dim + 2 * f;
    let count = rows.len();
    let inputs = sized(&mut ws.inputs, count * width);
    let targets = sized(&mut ws.targets, count * dim);
    let points = (data.len() / dim) as u64;
    let (t0, t1) = (config.t_end, sde.t_max());
    // First every row's random numbers, then the schedule and the data reads in loops of
    // their own: the schedule's loop vectorises, and the reads, which miss the cache (the
    // points are drawn at random), overlap.
    ws.points.clear();
    ws.times.clear();
    for (r, row_index) in rows.enumerate() {
        let mut noise = particle_noise(config.seed, step * config.batch as u64 + row_index as u64);
        let k = (rand_core::Rng::next_u64(noise.rng_mut()) % points) as usize;
        let u = (rand_core::Rng::next_u32(noise.rng_mut()) >> 8) as f32 / (1 << 24) as f32;
        let t = t0 + (t1 - t0) * u;
        noise.fill(&mut targets[r * dim..(r + 1) * dim]);
        prefetch(&data[k * dim..]);
        ws.points.push(k);
        ws.times.push(t);
    }
    let alphas = sized(&mut ws.alphas, count);
    let sigmas = sized(&mut ws.sigmas, count);
    for ((alpha, sigma), &t) in alphas.iter_mut().zip(sigmas.iter_mut()).zip(&ws.times) {
        (*alpha, *sigma) = (sde.alpha(t), sde.sigma(t));
    }
    // A residual network learns z − c·x_t, so that ε̂ = network + c·x_t (c as the core's
    // `Header::gaussian_gain` computes it).
    let residual = config.output == Output::GaussianResidual;
    let draws = ws.points.iter().zip(alphas.iter().zip(sigmas.iter()));
    for ((row, z), (&k, (&alpha, &sigma))) in inputs
        .chunks_exact_mut(width)
        .zip(targets.chunks_exact_mut(dim))
        .zip(draws)
    {
        let gain = sigma / (alpha * alpha + sigma * sigma);
        for ((x, z), x0) in row.iter_mut().zip(z).zip(&data[k * dim..(k + 1) * dim]) {
            *x = alpha * x0 + sigma * *z;
            if residual {
                *z -= gain * *x;
            }
        }
    }
    kernels::time_features(inputs, width, dim, &ws.times, &state.fourier);
    ws.rows = count;
}

/// `c = a·bᵀ` for row-major `a` (m×k) and `b` (n×k): a layer's forward product.
fn matmul_abt(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    matmul(m, k, n, a, (k, 1), b, (1, k), c, (n, 1));
}

/// `c = A·B` for an m×k `A` and a k×n `B`, each matrix given by its slice and its (row,
/// column) strides; every access is checked to fall inside the slices.
#[allow(clippy::too_many_arguments)]
fn matmul(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    c: &mut [f32],
    (rsc, csc): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| {
        (rows.saturating_sub(1)) * rs + (cols.saturating_sub(1)) * cs
    };
    assert!(last(m, n, rsc, csc) < c.len());
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                c[i * rsc + j * csc] = 0.0;
            }
        }
        return;
    }
    assert!(last(m, k, rsa, csa) < a.len());
    assert!(last(k, n, rsb, csb) < b.len());
    // SAFETY: gemm only offers a raw-pointer interface; the asserts above keep every access
    // inside the slices, and `c` does not overlap `a` or `b` (it is borrowed mutably).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            csc as isize,
            rsc as isize,
            false, // c is overwritten, not read: c = 0·c + 1·A·B
            a.as_ptr(),
            csa as isize,
            rsa as isize,
            b.as_ptr(),
            csb as isize,
            rsb as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Loss and gradient of the chunk of rows drawn into `ws` (into `ws.grad`), with the loss
/// normalised by the whole batch (`total_rows`), so the chunks' gradients add up to the
/// batch's.
fn loss_and_gradient(
    layout: &Layout,
    params: &[f32],
    activations: &[QuantParams],
    width: ActivationWidth,
    total_rows: usize,
    ws: &mut Workspace,
) -> f32 {
    let rows = ws.rows;
    if let Some(input) = activations.first() {
        for v in &mut ws.inputs[..rows * layout.layers[0].0] {
            *v = width.round(*input, *v);
        }
    }
    let last = layout.layers.len() - 1;
    // A thin output layer (ε̂ of a low-dimensional point) runs its forward product and its
    // backward signal without the GEMM.
    let thin = last > 0 && layout.layers[last].1 <= kernels::THIN_OUTPUTS;
    ws.outputs.resize_with(last + 1, Vec::new);
    ws.slopes.resize_with(last, Vec::new);
    // Forward, keeping each layer's output, and SiLU's derivative at each hidden
    // pre-activation z: SiLU'(z) = σ(z)(1 + z(1 − σ(z))).
    for (i, &(inputs, outputs, w, b)) in layout.layers.iter().enumerate() {
        let (below, above) = ws.outputs.split_at_mut(i);
        let input = below.last().unwrap_or(&ws.inputs);
        let z = sized(&mut above[0], rows * outputs);
        let bias = &params[b..b + outputs];
        if i == last && thin {
            kernels::thin_forward(input, &params[w..b], bias, z);
            break;
        }
        matmul_abt(rows, inputs, outputs, input, &params[w..b], z);
        if i < last {
            let slope = sized(&mut ws.slopes[i], rows * outputs);
            match (activations.get(1 + 2 * i), activations.get(2 + 2 * i)) {
                (Some(pre), Some(post)) => {
                    kernels::bias_quantized_silu_with_slope(z, bias, *pre, *post, width, slope)
                }
                _ => kernels::bias_silu_with_slope(z, bias, slope),
            }
        } else {
            for row in z.chunks_exact_mut(outputs) {
                for (v, bias) in row.iter_mut().zip(bias) {
                    *v += bias;
                }
            }
        }
    }
    let dim = layout.layers[last].1;
    let scale = 1.0 / (total_rows * dim) as f32;
    let mut loss = 0.0f32;
    let signal = sized(&mut ws.signal, rows * dim);
    for ((g, o), t) in signal.iter_mut().zip(&ws.outputs[last]).zip(&ws.targets) {
        let d = o - t;
        loss += d * d;
        *g = 2.0 * d * scale;
    }
    // Backward.
    let grad = sized(&mut ws.grad, layout.len);
    for i in (0..=last).rev() {
        let (inputs, outputs, w, b) = layout.layers[i];
        let input = if i == 0 {
            &ws.inputs
        } else {
            &ws.outputs[i - 1]
        };
        let g = &ws.signal[..rows * outputs];
        // dW = gᵀ·a (outputs × inputs). The GEMM's micro-kernels cover 16 rows of the
        // result at a time, so where the outputs outnumber the inputs it is written column
        // by column and stored row-major after (31 µs instead of 41 for the first layer's
        // 64 × 34, measured alone); a thin layer's dW, 2 × 64, is written as it is.
        let by_columns = outputs > inputs;
        let (dw, strides) = if by_columns {
            let columns = sized(&mut ws.grad_w_columns, outputs * inputs);
            (columns, (1, outputs))
        } else {
            (&mut grad[w..b], (inputs, 1))
        };
        matmul(
            outputs,
            rows,
            inputs,
            g,
            (1, outputs),
            input,
            (inputs, 1),
            dw,
            strides,
        );
        if by_columns {
            let columns = ws.grad_w_columns.chunks_exact(outputs);
            for (o, row) in grad[w..b].chunks_exact_mut(inputs).enumerate() {
                for (v, column) in row.iter_mut().zip(columns.clone()) {
                    *v = column[o];
                }
            }
        }
        let db = &mut grad[b..b + outputs];
        db.fill(0.0);
        for row in g.chunks_exact(outputs) {
            for (d, v) in db.iter_mut().zip(row) {
                *d += v;
            }
        }
        if i > 0 {
            // dA = g·W (rows × inputs), then through SiLU: SiLU'(z) = σ(z)(1 + z(1 − σ(z))).
            let da = sized(&mut ws.signal_below, rows * inputs);
            if i == last && thin {
                kernels::thin_backward(g, outputs, &params[w..b], &ws.slopes[i - 1], da);
            } else {
                matmul(
                    rows,
                    outputs,
                    inputs,
                    g,
                    (outputs, 1),
                    &params[w..b],
                    (inputs, 1),
                    da,
                    (inputs, 1),
                );
                for (d, slope) in da.iter_mut().zip(&ws.slopes[i - 1]) {
                    *d *= slope;
                }
            }
            std::mem::swap(&mut ws.signal, &mut ws.signal_below);
        }
    }
    loss * scale
}

/// The parameters as the integer network holds them, for a quantization-aware step's forward
/// pass and the saved network: each output channel's weights rounded to its symmetric int8
/// grid (the scale `quantize` computes from them) and its bias to the accumulator's grid
/// `s_in·s_w`, where `s_in` is the layer's input quantization in `activations` (the tensors'
/// at the width trained). The gradient with respect to these is applied to the parameters
/// themselves (straight-through).
pub fn fake_quantized_parameters(
    dims: &Dims,
    params: &[f32],
    activations: &[QuantParams],
) -> Vec<f32> {
    let layout = Layout::new(dims);
    let mut quantized = params.to_vec();
    for (i, &(inputs, outputs, w, b)) in layout.layers.iter().enumerate() {
        let s_in = activations.get(2 * i).map_or(1.0, |q| q.scale);
        let (weights, rest) = quantized[w..].split_at_mut(b - w);
        for (row, bias) in weights.chunks_exact_mut(inputs).zip(&mut rest[..outputs]) {
            let s_w = quantize::weight_scale(row);
            for v in row.iter_mut() {
                *v = quantize::weight_level(*v, s_w) as f32 * s_w;
            }
            let largest = quantize::MAX_BIAS_LEVEL;
            let level = quantize::bias_level(*bias, s_in, s_w).clamp(-largest, largest);
            *bias = (level * s_in as f64 * s_w as f64) as f32;
        }
    }
    quantized
}

/// Loss and gradient of step `step`'s batch, drawn and computed in one chunk per workspace
/// (in parallel when there are several) whose gradients are summed in order; through the
/// integer quantization where `activations` (the tensors' at the width trained) are given.
#[allow(clippy::too_many_arguments)]
fn batch_gradient(
    state: &TrainState,
    layout: &Layout,
    params: &[f32],
    activations: &[QuantParams],
    data: &TrainingData,
    step: u64,
    workspaces: &mut [Workspace],
    grad: &mut [f32],
) -> Result<f32> {
    let sde = state.config.sde;
    let quantized;
    let params = if activations.is_empty() {
        params
    } else {
        quantized = fake_quantized_parameters(&state.config.dims(data.dim), params, activations);
        &quantized
    };
    let total = state.config.batch;
    let per = total.div_ceil(workspaces.len().max(1));
    let chunk = |(c, ws): (usize, &mut Workspace)| {
        let rows = (c * per).min(total)..(c * per + per).min(total);
        draw_rows(state, &sde, data, step, rows, ws);
        loss_and_gradient(
            layout,
            params,
            activations,
            state.config.qat_activations,
            total,
            ws,
        )
    };
    let losses: Vec<f32> = if workspaces.len() == 1 {
        workspaces.iter_mut().enumerate().map(chunk).collect()
    } else {
        workspaces.par_iter_mut().enumerate().map(chunk).collect()
    };
    grad.fill(0.0);
    for ws in workspaces.iter() {
        for (a, b) in grad.iter_mut().zip(&ws.grad) {
            *a += b;
        }
    }
    Ok(losses.iter().sum())
}

/// The learning rate at `step`: linear warm-up, then cosine decay to 0 at the last step.
pub fn learning_rate(config: &TrainConfig, step: u64) -> f32 {
    let warm = ((step + 1) as f32 / config.warmup.max(1) as f32).min(1.0);
    let progress = step as f32 / config.steps as f32;
    config.lr * warm * 0.5 * (1.0 + (std::f32::consts::PI * progress).cos())
}

/// Largest global gradient norm an update uses (score_sde's `grad_clip`).
const GRAD_CLIP: f32 = 1.0;

/// Runs `state` to its configured number of steps on `data`, calling `progress(step, loss)`
/// after each step and `checkpoint(state)` every `checkpoint_every` steps. Stops early, with
/// the state intact, when `stop` is set.
pub fn train(
    state: &mut TrainState,
    data: &TrainingData,
    checkpoint_every: u64,
    stop: &AtomicBool,
    mut progress: impl FnMut(u64, f32),
    mut checkpoint: impl FnMut(&TrainState) -> Result<()>,
) -> Result<()> {
    let config = state.config.clone();
    let layout = Layout::new(&config.dims(data.dim));
    ensure!(
        state.params.len() == layout.len,
        "the state does not fit the network"
    );
    let threads = if config.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        config.threads
    };
    let pool = crate::sampling::thread_pool(threads)?;
    // One chunk per thread, none of them empty.
    let chunks = config
        .batch
        .div_ceil(config.batch.div_ceil(threads.max(1)).max(1))
        .max(1);
    let mut workspaces: Vec<Workspace> = (0..chunks).map(|_| Workspace::default()).collect();
    let mut grad = vec![0.0f32; layout.len];
    let (beta1, beta2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let mut activations = state.qat_tensors();
    while state.step < config.steps {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let step = state.step;
        if step >= config.steps - config.qat_steps && activations.is_empty() {
            state.fix_activations(data)?;
            activations = state.qat_tensors();
        }
        let mut gradient = || {
            let params = &state.params;
            batch_gradient(
                state,
                &layout,
                params,
                &activations,
                data,
                step,
                &mut workspaces,
                &mut grad,
            )
        };
        // One chunk runs on this thread: handing each step to a pool thread costs more than
        // the step's smallest products.
        let loss = if chunks == 1 {
            gradient()
        } else {
            pool.install(gradient)
        }?;
        if !loss.is_finite() {
            bail!("the loss diverged at step {step} (try a smaller --lr)");
        }
        let norm = sum_of_squares(&grad).sqrt();
        let clip = if norm > GRAD_CLIP {
            GRAD_CLIP / norm
        } else {
            1.0
        };
        let lr = learning_rate(&config, step);
        let t = (step + 1) as i32;
        // Adam's bias corrections, as factors: a multiplication per weight, not a division.
        let (c1, c2) = (1.0 / (1.0 - beta1.powi(t)), 1.0 / (1.0 - beta2.powi(t)));
        let decay = config.ema_decay.min((1 + step) as f32 / (10 + step) as f32);
        let moments = state.m.iter_mut().zip(state.v.iter_mut());
        let weights = state.params.iter_mut().zip(state.ema.iter_mut());
        for ((g, (m, v)), (p, ema)) in grad.iter().zip(moments).zip(weights) {
            let g = g * clip;
            *m = beta1 * *m + (1.0 - beta1) * g;
            *v = beta2 * *v + (1.0 - beta2) * g * g;
            let update = (*m * c1) / ((*v * c2).sqrt() + eps);
            *p -= lr * (update + config.weight_decay * *p);
            *ema = decay * *ema + (1.0 - decay) * *p;
        }
        state.step += 1;
        state.last_loss = loss;
        progress(state.step, loss);
        if checkpoint_every > 0 && state.step.is_multiple_of(checkpoint_every) {
            checkpoint(state)?;
        }
    }
    Ok(())
}

/// `Σ vᵢ²` in sixteen interleaved partial sums: the loop vectorises, where a single running
/// sum would wait on every addition.
fn sum_of_squares(values: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut partial = [0.0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (p, v) in partial.iter_mut().zip(chunk) {
            *p += v * v;
        }
    }
    partial.iter().sum::<f32>() + rest.iter().map(|v| v * v).sum::<f32>()
}

/// The mean loss and the analytic gradient of one batch, for the gradient check.
pub fn batch_loss_and_gradient(
    state: &TrainState,
    data: &TrainingData,
    step: u64,
    params: &[f32],
) -> Result<(f32, Vec<f32>)> {
    let layout = Layout::new(&state.config.dims(data.dim));
    let mut grad = vec![0.0f32; layout.len];
    let mut workspace = [Workspace::default()];
    let loss = batch_gradient(
        state,
        &layout,
        params,
        &state.activation_quantizations(),
        data,
        step,
        &mut workspace,
        &mut grad,
    )?;
    Ok((loss, grad))
}

/// A checkpoint's SDE as the model file codes it, `[code, p0, p1]`.
mod sde_as_codes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use tinyscore::ModelSde;

    pub fn serialize<S: Serializer>(sde: &ModelSde, s: S) -> Result<S::Ok, S::Error> {
        let (p0, p1) = sde.parameters();
        (sde.code(), p0, p1).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ModelSde, D::Error> {
        let (code, p0, p1) = <(u8, f32, f32)>::deserialize(d)?;
        ModelSde::from_code(code, p0, p1).map_err(serde::de::Error::custom)
    }
}

/// A checkpoint's network output as the model file codes it.
mod output_as_code {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use tinyscore::model::Output;

    pub fn serialize<S: Serializer>(output: &Output, s: S) -> Result<S::Ok, S::Error> {
        output.code().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Output, D::Error> {
        Output::from_code(u8::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// What a checkpoint without an output code learnt.
fn noise_output() -> Output {
    Output::Noise
}
