//! Post-training int8 quantization of a float network, calibrated on diffused data.
//!
//! The calibration set is the data perturbed by the model's forward SDE, `x_t = α(t)·x₀ +
//! σ(t)·z`, at times evenly spread over `[t_end, T]` — the inputs the network meets while
//! sampling. The float network runs over it and records the range of every activation tensor:
//! the input `[x, sin, cos]`, and each hidden layer before and after SiLU. Then, in the
//! TFLite conventions the core's evaluator follows (`tinyscore::model::quant`):
//! - weights: symmetric int8 per output channel, `s_w = max|w|/127`;
//! - biases: int32 at scale `s_in·s_w`;
//! - activations: asymmetric int8 per tensor over the calibrated range (widened to hold 0);
//! - requantization: a Q31 multiplier and shift for `s_in·s_w/s_pre` per channel;
//! - SiLU: a 256-entry table from the pre- to the post-activation quantization;
//! - the output layer is dequantized from its accumulator, so ε̂ loses no extra bits.
//!
//! With [`ActivationWidth::Int16`] (TFLite's 16×8 mode) every activation tensor is instead
//! symmetric int16 over its trained range or, without one, its whole calibrated range
//! (unclipped), and each SiLU an interpolated table of 513 knots: the weights are the same
//! bytes, the activations' rounding 256 times finer.

use crate::model_file::{encode_file, Network};
use crate::points::Points;
use crate::progress::Progress;
use anyhow::{ensure, Result};
use rayon::slice::ParallelSliceMut;
use serde::{Deserialize, Serialize};
use std::fmt;
use tinyscore::model::format::{
    Int8ActivationValues, Int8LayerValues, LayerValues, Payload, SiluTable,
};
use tinyscore::model::quant::{
    quantize_multiplier, silu_lut, silu_table_int16, QuantParams, SILU16_ENTRIES,
};
use tinyscore::model::LayerObserver;
use tinyscore::model::{Header, Output, Precision, Rounding, TrainedActivations};
use tinyscore::{particle_noise, LinearSde, Model};

/// One int8 layer, ready to write.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedLayer {
    /// Weights, outputs × inputs, row-major.
    pub weights: Vec<i8>,
    /// Biases at scale `s_in·weight_scale[o]`.
    pub bias: Vec<i32>,
    /// Per-output-channel weight scale.
    pub weight_scale: Vec<f32>,
    /// Hidden layers: the requantization and SiLU; `None` for the output layer.
    pub activation: Option<QuantizedActivation>,
}

/// How wide the activations of a quantized network are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivationWidth {
    /// int8, asymmetric per tensor (TFLite's int8 models).
    #[default]
    Int8,
    /// int16, symmetric per tensor (TFLite's 16×8 models): 256 times finer, for the sharp ε̂
    /// at small t; the same weights.
    Int16,
}

impl ActivationWidth {
    /// The header's record of activations trained at this width.
    pub fn trained(self) -> TrainedActivations {
        match self {
            ActivationWidth::Int8 => TrainedActivations::Int8,
            ActivationWidth::Int16 => TrainedActivations::Int16,
        }
    }
    /// The width a header's trained activations are for (int8 without them).
    pub fn of_trained(trained: TrainedActivations) -> ActivationWidth {
        match trained {
            TrainedActivations::Int16 => ActivationWidth::Int16,
            TrainedActivations::None | TrainedActivations::Int8 => ActivationWidth::Int8,
        }
    }
    /// The file precision of a network with these activations.
    pub fn precision(self) -> Precision {
        match self {
            ActivationWidth::Int8 => Precision::Int8,
            ActivationWidth::Int16 => Precision::Int16x8,
        }
    }
    /// The quantization of a tensor whose int8 quantization (calibrated or trained) is `q`:
    /// `q` itself, or the symmetric int16 one covering the same range.
    pub fn tensor(self, q: QuantParams) -> QuantParams {
        match self {
            ActivationWidth::Int8 => q,
            ActivationWidth::Int16 => q.int16_over(),
        }
    }
    /// `real` rounded to its level in tensor `q` at this width, as a real (what quantizing it
    /// keeps).
    pub fn round(self, q: QuantParams, real: f32) -> f32 {
        match self {
            ActivationWidth::Int8 => q.dequantize(q.quantize(real)),
            ActivationWidth::Int16 => q.scale * q.quantize_int16(real) as f32,
        }
    }
    /// The reals a tensor of quantization `q` at this width covers, lowest level to highest.
    pub fn covers(self, q: QuantParams) -> (f32, f32) {
        match self {
            ActivationWidth::Int8 => (q.dequantize(-128), q.dequantize(127)),
            ActivationWidth::Int16 => (q.scale * i16::MIN as f32, q.scale * i16::MAX as f32),
        }
    }
}

/// A hidden layer's SiLU table, at the network's activation width.
#[derive(Clone, Debug, PartialEq)]
pub enum SiluLut {
    /// int8: entry `q + 128` for pre-activation level `q`.
    Int8(Box<[i8; 256]>),
    /// int16: the interpolated table's knots.
    Int16(Box<[i16; SILU16_ENTRIES]>),
}

/// The requantization and SiLU table of a hidden layer.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedActivation {
    /// Q31 multiplier per channel.
    pub multiplier: Vec<i32>,
    /// Shift per channel.
    pub shift: Vec<i8>,
    /// The pre-activation tensor's quantization.
    pub pre: QuantParams,
    /// The SiLU table.
    pub lut: SiluLut,
    /// The post-activation tensor's quantization (the next layer's input).
    pub post: QuantParams,
}

/// An int8 network, ready to write.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedNetwork {
    /// The float network it came from (dimensions, SDE, normalisation, frequencies).
    pub float: Network,
    /// The input tensor's quantization.
    pub input: QuantParams,
    /// The layers, the output layer last.
    pub layers: Vec<QuantizedLayer>,
    /// How the requantization rounds.
    pub rounding: Rounding,
    /// How wide the activations are.
    pub width: ActivationWidth,
}

impl QuantizedNetwork {
    /// The `.tsm` bytes (int8 or int16x8 precision; layout in `docs/FORMAT.md`).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let f = &self.float;
        let layers: Vec<Int8LayerValues<'_>> = self
            .layers
            .iter()
            .map(|layer| Int8LayerValues {
                weights: &layer.weights,
                bias: &layer.bias,
                weight_scale: &layer.weight_scale,
                activation: layer.activation.as_ref().map(|a| Int8ActivationValues {
                    multiplier: &a.multiplier,
                    shift: &a.shift,
                    pre: a.pre,
                    lut: match &a.lut {
                        SiluLut::Int8(lut) => SiluTable::Int8(lut),
                        SiluLut::Int16(lut) => SiluTable::Int16(lut),
                    },
                    post: a.post,
                }),
            })
            .collect();
        encode_file(
            &Header {
                rounding: self.rounding,
                ..f.header(self.width.precision())
            },
            &Payload {
                mean: &f.mean,
                std: &f.std,
                fourier: &f.fourier,
                layers: LayerValues::Int8 {
                    input: self.input,
                    layers: &layers,
                },
            },
        )
    }
}

/// The range of one activation tensor over the calibration set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    /// Smallest value seen.
    pub min: f32,
    /// Largest value seen.
    pub max: f32,
}

/// One activation tensor: what calibration saw and how it is quantized.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorReport {
    /// Its name, e.g. `layer 1 pre`.
    pub name: String,
    /// Smallest and largest values over the calibration set.
    pub observed: Range,
    /// The fractions of calibration values its range clips at the low and high ends.
    pub clipped: (f64, f64),
    /// Its quantization.
    pub quant: QuantParams,
    /// The reals its lowest and highest levels stand for.
    pub covers: (f32, f32),
    /// For a hidden layer's pre-activation: how far the bias correction moved its channels'
    /// sums, the mean |shift| in int8 steps of this tensor.
    pub bias_shift: Option<f64>,
}

/// What quantization did: the calibrated ranges and the error of ε̂ against the float model.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizationReport {
    /// Calibration inputs.
    pub calibration_points: usize,
    /// Whether the activation quantizations are the ones the model was trained with (kept),
    /// rather than calibrated.
    pub trained_activations: bool,
    /// The activations' width.
    pub width: ActivationWidth,
    /// The input tensor, then each hidden layer's pre- and post-activation tensors.
    pub tensors: Vec<TensorReport>,
    /// Evaluation inputs (fresh draws, not the calibration set).
    pub eval_points: usize,
    /// `‖ε̂_int8 − ε̂_f32‖ / ‖ε̂_f32‖` over the evaluation inputs (root mean squares).
    pub relative_rms_error: f64,
    /// The same over as many inputs at times in `[t_end, SMALL_T]` ([`SMALL_T`]), where the
    /// data's fine structure is resolved and int8's input grid is coarsest against it.
    pub small_t_relative_rms_error: f64,
    /// Largest |ε̂_int8 − ε̂_f32| over all evaluation coordinates.
    pub max_abs_error: f64,
    /// How far out the int8 ε̂ follows the f32 one near the prior ([`faithful_radius`]), in
    /// marginal standard deviations.
    pub faithful_radius: f64,
    /// The prior's mass beyond [`QuantizationReport::faithful_radius`].
    pub prior_mass_beyond: f64,
    /// What the network's output is (which decides what a stray beyond that radius does).
    pub output: Output,
}

impl fmt::Display for QuantizationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "calibration: {} diffused data points, t spread over [t_end, T]; activation ranges {}; \
             {} activations",
            self.calibration_points,
            if self.trained_activations {
                "as trained (quantization-aware), kept"
            } else {
                "calibrated"
            },
            match self.width {
                ActivationWidth::Int8 => "int8",
                ActivationWidth::Int16 => "int16",
            }
        )?;
        writeln!(
            f,
            "  {:<14} {:>20}  {:>15}  {:>20}  {:>9}  {:>4}",
            "tensor", "observed", "clipped", "levels cover", "scale", "zero"
        )?;
        for t in &self.tensors {
            let q = t.quant;
            let (lo, hi) = t.covers;
            writeln!(
                f,
                "  {:<14} [{:>8.4}, {:>8.4}]  {:>6.3}%,{:>6.3}%  [{:>8.4}, {:>8.4}]  {:>9.3e}  {:>4}",
                t.name,
                t.observed.min,
                t.observed.max,
                100.0 * t.clipped.0,
                100.0 * t.clipped.1,
                lo,
                hi,
                q.scale,
                q.zero_point
            )?;
        }
        let shifts: Vec<String> = self
            .tensors
            .iter()
            .filter_map(|t| Some(format!("{} {:.3}", t.name, t.bias_shift?)))
            .collect();
        if !shifts.is_empty() {
            writeln!(
                f,
                "bias correction, mean |shift| of the hidden sums in int8 steps: {}",
                shifts.join(", ")
            )?;
        }
        writeln!(
            f,
            "ε̂ quantized vs f32 over {} fresh points: relative RMS error {:.3}%, max abs error {:.4}; \
             at t ≤ {SMALL_T}: {:.3}%",
            self.eval_points,
            100.0 * self.relative_rms_error,
            self.max_abs_error,
            100.0 * self.small_t_relative_rms_error,
        )?;
        writeln!(
            f,
            "near the prior, the quantized ε̂ follows f32 out to radius {:.2} (marginal std); the prior's \
             mass beyond: {:.1e}{}",
            self.faithful_radius,
            self.prior_mass_beyond,
            match (self.prior_mass_beyond > 1e-6, self.output) {
                (false, _) => "",
                (true, Output::Noise) => {
                    " — a particle that strays there can run away, so check large int8 runs \
                     for outliers"
                }
                (true, Output::GaussianResidual) => {
                    " — the Gaussian part of ε̂ still pulls a particle that strays there \
                     inward, but it may end off the data, so check large int8 runs for outliers"
                }
            }
        )
    }
}

/// Network inputs `(x_t, t)` drawn as in sampling: the data normalised with the model's
/// statistics, diffused by its SDE to `n` times evenly spread over `[t_end, T]` (the midpoints
/// of `n` equal cells), with noise from `seed`; the data rows are used in turn.
pub fn diffused_inputs(
    network: &Network,
    data: &Points,
    n: usize,
    seed: u64,
) -> Result<Vec<(Vec<f32>, f32)>> {
    diffused_inputs_over(network, data, n, seed, (network.t_end, network.sde.t_max()))
}

/// [`diffused_inputs`] at times spread over `times` instead.
pub fn diffused_inputs_over(
    network: &Network,
    data: &Points,
    n: usize,
    seed: u64,
    times: (f32, f32),
) -> Result<Vec<(Vec<f32>, f32)>> {
    let dim = network.dims.dim as usize;
    ensure!(!data.is_empty(), "the calibration data is empty");
    ensure!(
        data.row(0).len() == dim,
        "the calibration data has {} columns, the model {dim}",
        data.row(0).len()
    );
    let normalized: Vec<f32> = data
        .rows()
        .flat_map(|row| {
            row.iter()
                .zip(network.mean.iter().zip(&network.std))
                .map(|(v, (mean, std))| (*v as f32 - mean) / std)
        })
        .collect();
    Ok(diffused_normalized_inputs(
        network,
        &normalized,
        n,
        seed,
        times,
    ))
}

/// [`diffused_inputs_over`] of data already normalised with the model's statistics
/// (row-major, the model's dimension per row, at least one row).
pub fn diffused_normalized_inputs(
    network: &Network,
    normalized: &[f32],
    n: usize,
    seed: u64,
    (t0, t1): (f32, f32),
) -> Vec<(Vec<f32>, f32)> {
    let dim = network.dims.dim as usize;
    let rows = normalized.len() / dim.max(1);
    let sde = network.sde;
    (0..n)
        .map(|k| {
            let mut noise = particle_noise(seed, k as u64);
            let t = t0 + (t1 - t0) * ((k as f32 + 0.5) / n as f32);
            let row = &normalized[(k % rows.max(1)) * dim..][..dim];
            let (alpha, sigma) = (sde.alpha(t), sde.sigma(t));
            let x = row
                .iter()
                .map(|x0| alpha * x0 + sigma * noise.sample())
                .collect();
            (x, t)
        })
        .collect()
}

/// Collects what the core's forward pass shows of a network on one point at a time (see
/// [`LayerObserver`]): the f32 network's tensors in the order of [`Calibration`] (the input,
/// then each hidden layer's pre- and post-activation), or one int8 layer's accumulators.
#[derive(Default)]
struct Recorder {
    /// The f32 tensors' values, appended point after point.
    tensors: Vec<Vec<f32>>,
    /// The int8 layer whose accumulators are kept, and what they were.
    int8_layer: Option<usize>,
    accumulators: Vec<i32>,
}

impl Recorder {
    fn tensor(&mut self, k: usize) -> &mut Vec<f32> {
        if self.tensors.len() <= k {
            self.tensors.resize(k + 1, Vec::new());
        }
        &mut self.tensors[k]
    }
}

impl LayerObserver for Recorder {
    fn input(&mut self, _feature: usize, values: &[f32]) {
        self.tensor(0).extend_from_slice(values);
    }
    fn f32_hidden(&mut self, layer: usize, _channel: usize, pre: &[f32], post: &[f32]) {
        self.tensor(1 + 2 * layer).extend_from_slice(pre);
        self.tensor(2 + 2 * layer).extend_from_slice(post);
    }
    fn int8_accumulators(&mut self, layer: usize, _channel: usize, accumulators: &[i32]) {
        if self.int8_layer == Some(layer) {
            self.accumulators.extend_from_slice(accumulators);
        }
    }
}

/// Inputs between two advances of the progress.
const PROGRESS_CHUNK: usize = 4096;

/// Runs the model `bytes` on every input with `recorder` watching, advancing `progress` by one
/// per input.
fn record(
    bytes: &[u8],
    inputs: &[(Vec<f32>, f32)],
    recorder: &mut Recorder,
    progress: &Progress,
) -> Result<()> {
    let model = Model::parse(bytes)?;
    let mut out = vec![0.0f32; model.header().dims.dim as usize];
    for chunk in inputs.chunks(PROGRESS_CHUNK) {
        for (x, t) in chunk {
            model.predict_noise_observed(x, *t, &mut out, recorder)?;
        }
        progress.advance(chunk.len() as u64);
    }
    Ok(())
}

/// The activation values of every tensor over the calibration set, each sorted: the input,
/// then each hidden layer's pre- and post-activation tensors.
struct Calibration {
    tensors: Vec<Vec<f32>>,
}

impl Calibration {
    /// The sorted tensors of what `recorded` saw of a network with `layers` hidden layers,
    /// advancing `progress` by `inputs` over the sorting.
    fn new(recorded: &Recorder, layers: u32, inputs: usize, progress: &Progress) -> Calibration {
        let mut tensors = recorded.tensors.clone();
        tensors.resize(1 + 2 * layers as usize, Vec::new());
        let count = tensors.len();
        for (k, tensor) in tensors.iter_mut().enumerate() {
            // Values equal under `total_cmp` have the same bits, so an unstable sort is as good.
            tensor.par_sort_unstable_by(f32::total_cmp);
            progress.advance(((k + 1) * inputs / count - k * inputs / count) as u64);
        }
        Calibration { tensors }
    }

    /// Tensor `k`'s range without the fractions `tails = (low, high)` of its values at
    /// either end.
    fn range(&self, k: usize, (low, high): (f64, f64)) -> Range {
        let sorted = &self.tensors[k];
        let last = sorted.len().saturating_sub(1);
        let index = |fraction: f64| ((fraction * last as f64).round() as usize).min(last);
        Range {
            min: sorted.get(index(low)).copied().unwrap_or(0.0),
            max: sorted.get(last - index(high)).copied().unwrap_or(0.0),
        }
    }

    /// The fractions of tensor `k`'s values below and above the range `covers` of levels
    /// `scale` apart (by more than half a step).
    fn clipped(&self, k: usize, (lo, hi): (f32, f32), scale: f32) -> (f64, f64) {
        let sorted = &self.tensors[k];
        let half = 0.5 * scale;
        let (lo, hi) = (lo - half, hi + half);
        let below = sorted.partition_point(|v| *v < lo);
        let above = sorted.len() - sorted.partition_point(|v| *v <= hi);
        let n = sorted.len().max(1) as f64;
        (below as f64 / n, above as f64 / n)
    }
}

/// The fractions of a pre-activation tensor's lowest calibration values that may fall below
/// its int8 range. SiLU maps a long negative tail to within a step of 0, so clipping it buys
/// resolution for every other value at almost no cost.
pub const LOW_TAILS: [f64; 12] = [
    0.0, 1e-6, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.2, 0.3,
];

/// The fraction of the highest calibration values clipped off each post-activation tensor
/// but the last hidden layer's. SiLU passes its input's long upper tail through (layer 1 of a
/// moons model reaches 10.9), so a few extreme values set the grid step for all the others;
/// clipping the top 0.01 % and correcting the next layer's bias for the mean this moves (the
/// bias correction in `quantize`) took the int8 model's sw2 from 1.00–1.45× the f32 model's
/// to 0.94–1.26× over ten training seeds. The last hidden layer's top is kept: it carries
/// the large ε̂ that pull far-off particles back, and clipping it too let samples stray.
pub const HIGH_TAIL: f64 = 1e-4;

/// The most calibration (or evaluation) points `quantize` takes.
pub const MAX_POINTS: usize = 1 << 20;

/// Values per tensor the clipping search looks at (an even subsample of the sorted values).
const SEARCH_VALUES: usize = 1 << 16;

/// The int8 activation quantizations calibration picks from what `float` saw of `network`: each
/// activation range is the calibration min/max (the input is never clipped: an input clipped
/// at small noise levels moves ε̂ by ~|Δx|/σ(t); and an end-to-end search over clippings was
/// found to fit the calibration set's outliers rather than the data), except the low end of
/// each pre-activation tensor — of [`LOW_TAILS`], the clipping with the least
/// `E[(SiLU(v) − SiLU(Q(v)))²]` over its calibration values — and the top [`HIGH_TAIL`] of
/// the hidden post-activation tensors but the last.
fn calibrated_quantizations(network: &Network, calibration: &Calibration) -> Vec<QuantParams> {
    let silu = |v: f32| v / (1.0 + (-v).exp());
    let silu_error = |k: usize, low_tail: f64| -> f64 {
        let sorted = &calibration.tensors[k];
        let r = calibration.range(k, (low_tail, 0.0));
        let q = QuantParams::covering(r.min, r.max);
        let step = (sorted.len() / SEARCH_VALUES).max(1);
        sorted
            .iter()
            .step_by(step)
            .map(|&v| (silu(v) - silu(q.dequantize(q.quantize(v)))) as f64)
            .map(|d| d * d)
            .sum()
    };
    let hidden = network.dims.layers as usize;
    (0..calibration.tensors.len())
        .map(|k| {
            let is_pre_activation = k % 2 == 1;
            let low = LOW_TAILS
                .iter()
                .copied()
                .filter(|_| is_pre_activation)
                .min_by(|a, b| silu_error(k, *a).total_cmp(&silu_error(k, *b)))
                .unwrap_or(0.0);
            // Post-activation tensors are k = 2, 4, …; the last hidden layer's is k = 2·hidden.
            let clips_high = k % 2 == 0 && k > 0 && k < 2 * hidden;
            let r = calibration.range(k, (low, if clips_high { HIGH_TAIL } else { 0.0 }));
            QuantParams::covering(r.min, r.max)
        })
        .collect()
}

/// The activation quantizations [`quantize`] would calibrate for `network` on `inputs` (the
/// input tensor's, then each hidden layer's pre- and post-activation tensors'): what
/// quantization-aware training fixes before its steps.
pub fn calibrate(network: &Network, inputs: &[(Vec<f32>, f32)]) -> Result<Vec<QuantParams>> {
    ensure!(!inputs.is_empty(), "no calibration inputs");
    let progress = Progress::silent();
    let mut float = Recorder::default();
    record(&network.to_bytes()?, inputs, &mut float, &progress)?;
    let calibration = Calibration::new(&float, network.dims.layers, inputs.len(), &progress);
    Ok(calibrated_quantizations(network, &calibration))
}

/// Quantizes `network` with the calibration `inputs`: weights per channel, and activations of
/// `width` over the ranges the network was trained with ([`Network::activations`]) or,
/// without them, calibrated on `inputs` (as [`calibrate`] does for int8; int16 takes each
/// tensor's whole observed range), after which the hidden
/// layers' biases are corrected for the mean error of their integer sums (bias correction; a
/// network trained with its quantization needs none). Returns the quantized network and what
/// calibration saw of each tensor (input, then each hidden layer's pre- and post-activation).
///
/// `progress` advances by [`quantize_units`] in all.
pub fn quantize(
    network: &Network,
    inputs: &[(Vec<f32>, f32)],
    width: ActivationWidth,
    rounding: Rounding,
    progress: &Progress,
) -> Result<(QuantizedNetwork, Vec<TensorReport>)> {
    ensure!(!inputs.is_empty(), "no calibration inputs");
    // The float network's activations on the calibration inputs, point after point: sorted
    // for the ranges and the report, and as they are for the bias correction.
    let mut float = Recorder::default();
    record(&network.to_bytes()?, inputs, &mut float, progress)?;
    let calibration = Calibration::new(&float, network.dims.layers, inputs.len(), progress);
    let trained = !network.activations.is_empty();
    let activations = match (trained, width) {
        (true, _) => network.activations.clone(),
        (false, ActivationWidth::Int8) => calibrated_quantizations(network, &calibration),
        // int16 steps are fine enough that clipping a tail buys nothing: the whole range.
        (false, ActivationWidth::Int16) => (0..calibration.tensors.len())
            .map(|k| {
                let r = calibration.range(k, (0.0, 0.0));
                QuantParams::covering(r.min, r.max)
            })
            .collect(),
    };
    let activations: Vec<QuantParams> = activations.into_iter().map(|q| width.tensor(q)).collect();
    let mut quantized = quantize_with_activations(network, &activations, width, rounding)?;
    let shifts = if trained {
        progress.advance(inputs.len() as u64 * network.dims.layers as u64);
        Vec::new()
    } else {
        correct_hidden_biases(&mut quantized, &float, inputs, progress)?
    };
    let tensors = tensor_reports(&quantized, &calibration, &shifts);
    Ok((quantized, tensors))
}

/// Bias correction, in its empirical form (Nagel et al., "Data-Free Quantization Through
/// Weight Equalization and Bias Correction", 2019), against `reference`, the float network's
/// activations on `inputs`: hidden layer by hidden layer, each
/// channel's int32 bias moves by the mean difference between its int8 pre-activation (after
/// the int8 layers before it, already corrected) and the float network's, over the
/// calibration inputs. Rounding a wide post-SiLU tensor to its grid, and clipping its top,
/// shift the next layer's sums by a mean that this takes out. The output layer keeps its
/// bias: its error depends on t (largest at small t), which one constant per coordinate
/// cannot follow, and correcting it was measured to make samples worse. Returns, per hidden
/// layer, the mean |shift| of its sums in steps of its pre-activation tensor.
fn correct_hidden_biases(
    quantized: &mut QuantizedNetwork,
    reference: &Recorder,
    inputs: &[(Vec<f32>, f32)],
    progress: &Progress,
) -> Result<Vec<f64>> {
    let hidden = quantized.layers.len().saturating_sub(1);
    let mut shifts = Vec::with_capacity(hidden);
    for layer in 0..hidden {
        let s_in = match layer {
            0 => quantized.input.scale,
            _ => quantized.layers[layer - 1]
                .activation
                .as_ref()
                .map_or(1.0, |a| a.post.scale),
        } as f64;
        // The int8 accumulators with the layers before this one corrected.
        let mut int8 = Recorder {
            int8_layer: Some(layer),
            ..Recorder::default()
        };
        record(&quantized.to_bytes()?, inputs, &mut int8, progress)?;
        let channels = quantized.layers[layer].bias.len();
        let float_pre = reference
            .tensors
            .get(1 + 2 * layer)
            .map_or(&[][..], Vec::as_slice);
        let mut mean_error = vec![0.0f64; channels];
        for (acc, float) in int8
            .accumulators
            .chunks_exact(channels)
            .zip(float_pre.chunks_exact(channels))
        {
            for (((e, acc), float), s_w) in mean_error
                .iter_mut()
                .zip(acc)
                .zip(float)
                .zip(&quantized.layers[layer].weight_scale)
            {
                // In bias units, s_in·s_w: the accumulator's own.
                let unit = s_in * *s_w as f64;
                *e += (*acc as f64 - *float as f64 / unit) / inputs.len() as f64;
            }
        }
        let largest = MAX_BIAS_LEVEL as i64;
        let l = &mut quantized.layers[layer];
        let pre_step = l.activation.as_ref().map_or(1.0, |a| a.pre.scale) as f64;
        let mut moved = 0.0;
        for ((b, e), s_w) in l.bias.iter_mut().zip(&mean_error).zip(&l.weight_scale) {
            let shift = e.round() as i64;
            *b = (*b as i64 - shift).clamp(-largest, largest) as i32;
            moved += (shift as f64 * s_in * *s_w as f64 / pre_step).abs();
        }
        shifts.push(moved / l.bias.len().max(1) as f64);
    }
    Ok(shifts)
}

/// Each activation tensor's observed range, clipping and quantization.
fn tensor_reports(
    quantized: &QuantizedNetwork,
    calibration: &Calibration,
    bias_shifts: &[f64],
) -> Vec<TensorReport> {
    let report = |name: String, k: usize, quant: QuantParams| {
        let covers = quantized.width.covers(quant);
        TensorReport {
            name,
            observed: calibration.range(k, (0.0, 0.0)),
            clipped: calibration.clipped(k, covers, quant.scale),
            quant,
            covers,
            bias_shift: None,
        }
    };
    let mut tensors = vec![report("input".into(), 0, quantized.input)];
    let activations = quantized
        .layers
        .iter()
        .filter_map(|l| l.activation.as_ref());
    for (i, a) in activations.enumerate() {
        let mut pre = report(format!("layer {} pre", i + 1), 1 + 2 * i, a.pre);
        pre.bias_shift = bias_shifts.get(i).copied();
        tensors.push(pre);
        tensors.push(report(format!("layer {} silu", i + 1), 2 + 2 * i, a.post));
    }
    tensors
}

/// `(relative RMS, max abs)` error of the second model's ε̂ against the first's on `inputs`,
/// both evaluated by the core as a sampler would.
fn noise_error(
    reference: &[u8],
    other: &[u8],
    inputs: &[(Vec<f32>, f32)],
    progress: &Progress,
) -> Result<(f64, f64)> {
    let (reference, other) = (Model::parse(reference)?, Model::parse(other)?);
    let dim = reference.header().dims.dim as usize;
    let (mut diff2, mut ref2, mut max_abs) = (0.0f64, 0.0f64, 0.0f64);
    let (mut a, mut b) = (vec![0.0f32; dim], vec![0.0f32; dim]);
    for chunk in inputs.chunks(PROGRESS_CHUNK) {
        for (x, t) in chunk {
            reference.predict_noise(x, *t, &mut a)?;
            other.predict_noise(x, *t, &mut b)?;
            for (u, v) in a.iter().zip(&b) {
                let d = (*u as f64) - (*v as f64);
                diff2 += d * d;
                ref2 += (*u as f64) * (*u as f64);
                max_abs = max_abs.max(d.abs());
            }
        }
        progress.advance(chunk.len() as u64);
    }
    Ok(((diff2 / ref2.max(f64::MIN_POSITIVE)).sqrt(), max_abs))
}

/// The units of progress [`quantize`] reports for `inputs` calibration inputs and a network of
/// `layers` hidden layers: the float network's pass, the sorting of what it saw, and one int8
/// pass per hidden layer's bias correction, each counted in inputs.
pub fn quantize_units(inputs: usize, layers: u32) -> u64 {
    inputs as u64 * (2 + layers as u64)
}

/// The symmetric int8 scale of one output channel's weights `row`: `max|w|/127` (1 for a
/// channel of zeros).
pub fn weight_scale(row: &[f32]) -> f32 {
    let largest = row.iter().fold(0.0f32, |m, w| m.max(w.abs()));
    if largest > 0.0 {
        largest / 127.0
    } else {
        1.0
    }
}

/// The int8 level of weight `w` in a channel of scale `scale`.
pub fn weight_level(w: f32, scale: f32) -> i8 {
    (w / scale).round().clamp(-127.0, 127.0) as i8
}

/// The largest |bias level| the int8 format holds.
pub const MAX_BIAS_LEVEL: f64 = (1u32 << 30) as f64;

/// The int32 level of bias `b` at the accumulator's scale `s_in·s_w` (not yet bounded by
/// [`MAX_BIAS_LEVEL`]).
pub fn bias_level(b: f32, s_in: f32, s_w: f32) -> f64 {
    (b as f64 / (s_in as f64 * s_w as f64)).round()
}

/// The network for the given activation quantizations of `width` (the input tensor's, then
/// each hidden layer's pre- and post-activation tensors').
fn quantize_with_activations(
    network: &Network,
    activations: &[QuantParams],
    width: ActivationWidth,
    rounding: Rounding,
) -> Result<QuantizedNetwork> {
    ensure!(
        activations.len() == 1 + 2 * network.dims.layers as usize,
        "{} activation quantizations for a network of {} hidden layers (1 + 2 per layer expected)",
        activations.len(),
        network.dims.layers
    );
    let covering = |k: usize| activations[k];
    let input = covering(0);
    let mut s_in = input.scale;
    let last = network.layers.len() - 1;
    let mut layers = Vec::with_capacity(network.layers.len());
    for (i, (weights, bias)) in network.layers.iter().enumerate() {
        let (inputs, _) = network.dims.layer_shape(i as u32);
        let weight_scale: Vec<f32> = weights.chunks_exact(inputs).map(weight_scale).collect();
        let q_weights: Vec<i8> = weights
            .chunks_exact(inputs)
            .zip(&weight_scale)
            .flat_map(|(row, s)| row.iter().map(move |w| weight_level(*w, *s)))
            .collect();
        let q_bias: Vec<i32> = bias
            .iter()
            .zip(&weight_scale)
            .map(|(b, s)| {
                let level = bias_level(*b, s_in, *s);
                ensure!(
                    level.abs() <= MAX_BIAS_LEVEL,
                    "layer {}: a bias does not fit the int8 format's range",
                    i + 1
                );
                Ok(level as i32)
            })
            .collect::<Result<_>>()?;
        if width == ActivationWidth::Int16 {
            let rows = q_weights.chunks_exact(inputs.max(1));
            ensure!(
                rows.zip(&q_bias).all(|(row, b)| {
                    let weights: u64 = row.iter().map(|w| w.unsigned_abs() as u64).sum();
                    weights * (1 << 15) + b.unsigned_abs() as u64 <= i32::MAX as u64
                }),
                "layer {}: a channel's sum can overflow 32 bits with int16 activations \
                 (|bias| + 2^15·Σ|w| must stay below 2^31); use int8 activations",
                i + 1
            );
        }
        let activation = (i < last).then(|| {
            let (pre, post) = (covering(1 + 2 * i), covering(2 + 2 * i));
            let (multiplier, shift) = weight_scale
                .iter()
                .map(|s| {
                    let (m, shift) =
                        quantize_multiplier(s_in as f64 * *s as f64 / pre.scale as f64);
                    (m, shift as i8)
                })
                .unzip();
            let lut = match width {
                ActivationWidth::Int8 => SiluLut::Int8(Box::new(silu_lut(pre, post))),
                ActivationWidth::Int16 => SiluLut::Int16(Box::new(silu_table_int16(pre, post))),
            };
            QuantizedActivation {
                multiplier,
                shift,
                pre,
                lut,
                post,
            }
        });
        if let Some(a) = &activation {
            s_in = a.post.scale;
        }
        layers.push(QuantizedLayer {
            weights: q_weights,
            bias: q_bias,
            weight_scale,
            activation,
        });
    }
    Ok(QuantizedNetwork {
        float: network.clone(),
        input,
        layers,
        rounding,
        width,
    })
}

/// The largest time of [`QuantizationReport::small_t_relative_rms_error`]'s inputs.
pub const SMALL_T: f32 = 0.02;

/// Compares the int8 model with the float one on `eval` inputs and on `small_t_eval` inputs
/// (at times up to [`SMALL_T`]), and lists each activation tensor's calibrated range and
/// quantization; `progress` advances by one per input.
pub fn report(
    float: &[u8],
    quantized: &QuantizedNetwork,
    tensors: Vec<TensorReport>,
    calibration_points: usize,
    eval: &[(Vec<f32>, f32)],
    small_t_eval: &[(Vec<f32>, f32)],
    progress: &Progress,
) -> Result<QuantizationReport> {
    let int8 = quantized.to_bytes()?;
    let (relative_rms_error, max_abs_error) = noise_error(float, &int8, eval, progress)?;
    let (small_t_relative_rms_error, _) = noise_error(float, &int8, small_t_eval, progress)?;
    let faithful_radius = faithful_radius(float, &int8)?;
    Ok(QuantizationReport {
        calibration_points,
        trained_activations: !quantized.float.activations.is_empty(),
        width: quantized.width,
        tensors,
        eval_points: eval.len(),
        relative_rms_error,
        small_t_relative_rms_error,
        max_abs_error,
        faithful_radius,
        prior_mass_beyond: gaussian_tail_mass(quantized.float.dims.dim as usize, faithful_radius),
        output: quantized.float.output,
    })
}

/// Fraction of the f32 model's ε̂ (its component along the probe direction) the int8 model
/// must keep for [`faithful_radius`].
pub const FAITHFUL_FRACTION: f32 = 0.8;

/// How far from the origin the int8 model's ε̂ keeps following the f32 model's where the
/// prior dominates, in standard deviations of the marginal at `t`: the smallest radius `r`
/// (from 1 in steps of 0.05, up to 10) at which, for `t` in `{0.8, 0.9, 0.95, 1}·T` and a
/// direction `u` among ± each axis and 16 fixed random ones, `ε̂_int8(r·s(t)·u)·u` falls
/// below [`FAITHFUL_FRACTION`] of `ε̂_f32·u` (`s(t)² = α² + σ²`, the data having unit
/// variance). Beyond it the int8 network's calibrated ranges saturate, ε̂ stops growing with
/// `x`, and the reverse SDE's drift `+½β·x` is no longer cancelled: a particle that gets
/// there can run away (seen: one particle of 5000 ending at x = 146 with a model whose radius
/// was 4.2, where the f32 model's samples were fine). With [`Output::GaussianResidual`] only
/// the residual saturates; the Gaussian part, exact in f32, keeps the drift inward.
pub fn faithful_radius(float: &[u8], int8: &[u8]) -> Result<f64> {
    let (float, int8) = (Model::parse(float)?, Model::parse(int8)?);
    let header = float.header();
    let n = header.dims.dim as usize;
    let mut noise = particle_noise(0xFA17, 0);
    let mut directions: Vec<Vec<f32>> = (0..2 * n)
        .map(|k| {
            let mut u = vec![0.0f32; n];
            u[k / 2] = if k % 2 == 0 { 1.0 } else { -1.0 };
            u
        })
        .collect();
    for _ in 0..16 {
        let v: Vec<f32> = (0..n).map(|_| noise.sample()).collect();
        let norm = v
            .iter()
            .map(|x| x * x)
            .sum::<f32>()
            .sqrt()
            .max(f32::MIN_POSITIVE);
        directions.push(v.iter().map(|x| x / norm).collect());
    }
    let (mut a, mut b) = (vec![0.0f32; n], vec![0.0f32; n]);
    let mut radius = 10.0f64;
    for fraction in [0.8f32, 0.9, 0.95, 1.0] {
        let t = fraction * header.sde.t_max();
        let (alpha, sigma) = (header.sde.alpha(t), header.sde.sigma(t));
        let spread = (alpha * alpha + sigma * sigma).sqrt();
        for u in &directions {
            // Steps of 0.05 from 1: only radii below the best so far can lower it.
            for step in 0..((radius - 1.0) / 0.05).round() as usize {
                let r = 1.0 + 0.05 * step as f32;
                let x: Vec<f32> = u.iter().map(|c| r * spread * c).collect();
                float.predict_noise(&x, t, &mut a)?;
                int8.predict_noise(&x, t, &mut b)?;
                let along = |e: &[f32]| e.iter().zip(u).map(|(e, c)| e * c).sum::<f32>();
                if along(&b) < FAITHFUL_FRACTION * along(&a) {
                    radius = r as f64;
                    break;
                }
            }
        }
    }
    Ok(radius)
}

/// `P(‖z‖ > r)` for `z ~ N(0, I_n)`: the regularized upper incomplete gamma `Q(n/2, r²/2)`,
/// summed in closed form from `Q(1, x) = e^{−x}` (even `n`) or `Q(1/2, x) = erfc(√x)` (odd)
/// with `Q(a + 1, x) = Q(a, x) + x^a·e^{−x}/Γ(a + 1)`.
pub fn gaussian_tail_mass(n: usize, r: f64) -> f64 {
    let x = r * r / 2.0;
    let (mut q, mut a, mut term) = if n.is_multiple_of(2) {
        (0.0, 0.0, (-x).exp())
    } else {
        let gamma_3_2 = std::f64::consts::PI.sqrt() / 2.0;
        (libm::erfc(x.sqrt()), 0.5, x.sqrt() * (-x).exp() / gamma_3_2)
    };
    // Invariant: q = Q(a, x), term = x^a·e^{−x}/Γ(a + 1).
    while a + 1.0 <= n as f64 / 2.0 {
        q += term;
        term *= x / (a + 1.0);
        a += 1.0;
    }
    q
}

/// Quantizes the float model at `input` with `calibration_points` diffused points of `data`
/// to activations of `width` (by default the width it was trained for, else int8), writes the quantized model to `out` (atomically) and reports
/// the error over `eval_points` fresh diffused points. `rounding` is the requantization's,
/// recorded in the file.
#[allow(clippy::too_many_arguments)]
pub fn quantize_file(
    input: &std::path::Path,
    data: &Points,
    calibration_points: usize,
    eval_points: usize,
    seed: u64,
    width: Option<ActivationWidth>,
    rounding: Rounding,
    out: &std::path::Path,
) -> Result<QuantizationReport> {
    use anyhow::Context;
    ensure!(
        (1..=MAX_POINTS).contains(&calibration_points) && (1..=MAX_POINTS).contains(&eval_points),
        "--calib-points and --eval-points must be 1 to {MAX_POINTS} (calibration holds every \
         activation of every point in memory)"
    );
    crate::io::ensure_not_an_input(out, &[input])?;
    let float = std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    let model = Model::parse(&float).with_context(|| format!("{}", input.display()))?;
    ensure!(
        model.header().precision == Precision::F32,
        "{} is already quantized",
        input.display()
    );
    let network = Network::from_model(&model)?;
    let width = width.unwrap_or(network.activation_width);
    let calibration = diffused_inputs(&network, data, calibration_points, seed)?;
    let eval = diffused_inputs(&network, data, eval_points, seed.wrapping_add(0x5eed))?;
    let small_t = (network.t_end, SMALL_T.max(network.t_end));
    let small_t_eval = diffused_inputs_over(
        &network,
        data,
        eval_points,
        seed.wrapping_add(0x5eed),
        small_t,
    )?;
    let units = quantize_units(calibration.len(), network.dims.layers) + 2 * eval.len() as u64;
    let progress = Progress::new("quantize", units, "points");
    let (quantized, tensors) = quantize(&network, &calibration, width, rounding, &progress)?;
    let int8 = quantized.to_bytes()?;
    let report = report(
        &float,
        &quantized,
        tensors,
        calibration.len(),
        &eval,
        &small_t_eval,
        &progress,
    )?;
    progress.finish();
    crate::io::write_atomically(out, |w| Ok(w.write_all(&int8)?))?;
    Ok(report)
}
