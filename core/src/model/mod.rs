//! The model file (`.tsm`) and the tiny score network it carries.
//!
//! The byte layout is documented in `docs/FORMAT.md`; in short, a 40-byte header (magic
//! `TSMF`, version, precision, activation, dimensions N, F, H, L, the SDE and its parameters,
//! the sampling end time, the payload length), the payload (normalisation, Fourier frequencies,
//! layers), and a CRC-32 trailer. All numbers are little-endian.
//!
//! [`Model::parse`] checks everything before returning — length, magic, version, checksum,
//! codes, dimensions, section sizes, that every float is finite — so evaluation never meets a
//! surprise, and no input panics the parser. The weights are not copied: the model borrows the
//! file's bytes (from flash on a chip) and reads each little-endian float in place, so the
//! bytes need no alignment.
//!
//! The network is an MLP that predicts the noise: `h₀ = [x, sin(2πtW), cos(2πtW)]`, `L` hidden
//! layers of width `H` with SiLU, a linear output of size `N`; [`NeuralScore`] turns it into
//! the score `−ε̂/σ(t)` of the model's SDE, so every sampler takes it unchanged.

mod crc32;
mod error;
pub mod packed;
pub mod quant;

pub use crc32::crc32;
pub use error::ModelError;
pub use quant::QuantParams;

use crate::error::ParamError;
use crate::math;
use crate::noise::GaussianStream;
use crate::score::Score;
use crate::sde::{LinearSde, SubVpSde, VeSde, VpSde};
use quant::{requantize_parsed, time_feature};
use rand_core::Rng;

/// The first four bytes of every model file.
pub const MAGIC: [u8; 4] = *b"TSMF";
/// The format version this build reads and writes.
pub const VERSION: u16 = 1;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 40;
/// Bytes of the CRC-32 trailer.
pub const CHECKSUM_LEN: usize = 4;
/// Largest data dimension N.
pub const MAX_DIM: u32 = 64;
/// Largest number of Fourier frequencies F.
pub const MAX_FOURIER: u32 = 64;
/// Largest hidden width H.
pub const MAX_HIDDEN: u32 = 256;
/// Largest number of hidden layers L.
pub const MAX_LAYERS: u32 = 8;
/// The widest activation vector: max(N + 2F, H) within the limits above. The evaluators'
/// scratch space is two vectors of this width, fixed at compile time.
pub const MAX_WIDTH: usize = 256;

/// How the weights are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Precision {
    /// 32-bit floats (code 0).
    F32,
    /// Integer-only int8 (code 1): weights symmetric per output channel, int32 biases,
    /// activations asymmetric per tensor, Q31 requantization, SiLU by table.
    Int8,
    /// The int8 network laid out for dual 16-bit multiply–accumulate (code 2; see
    /// [`packed`]): the same numbers, the same outputs, made by [`packed::pack_int8`].
    Int8Packed,
}

impl Precision {
    /// The header code.
    pub fn code(&self) -> u8 {
        match self {
            Precision::F32 => 0,
            Precision::Int8 => 1,
            Precision::Int8Packed => 2,
        }
    }
}

/// What the network's output is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Output {
    /// The noise prediction ε̂ itself (code 0).
    Noise,
    /// ε̂ less the noise prediction for unit-variance Gaussian data, `c(t)·x` with
    /// `c = σ/(α² + σ²)` (code 1): the model adds `c(t)·x` back in f32. The network learns
    /// only what the data adds to a Gaussian, which stays small far from the data, so ε̂
    /// keeps growing with `x` where the network's activations (or an int8 model's ranges)
    /// no longer do.
    GaussianResidual,
}

impl Output {
    /// The header code.
    pub fn code(&self) -> u8 {
        match self {
            Output::Noise => 0,
            Output::GaussianResidual => 1,
        }
    }
}

/// The forward process a model was trained with.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ModelSde {
    /// Variance preserving.
    Vp(VpSde),
    /// Sub-VP.
    SubVp(SubVpSde),
    /// Variance exploding.
    Ve(VeSde),
}

impl ModelSde {
    /// Its code in the header.
    pub fn code(&self) -> u8 {
        match self {
            ModelSde::Vp(_) => 0,
            ModelSde::SubVp(_) => 1,
            ModelSde::Ve(_) => 2,
        }
    }
    /// Its two parameters as stored: (β_min, β_max) or (σ_min, σ_max).
    pub fn parameters(&self) -> (f32, f32) {
        match self {
            ModelSde::Vp(s) => (s.beta_min(), s.beta_max()),
            ModelSde::SubVp(s) => (s.beta_min(), s.beta_max()),
            ModelSde::Ve(s) => (s.sigma_min(), s.sigma_max()),
        }
    }
    /// The SDE of `code` with parameters `(a, b)`.
    pub fn from_code(code: u8, a: f32, b: f32) -> Result<Self, ModelError> {
        Ok(match code {
            0 => ModelSde::Vp(VpSde::new(a, b)?),
            1 => ModelSde::SubVp(SubVpSde::new(a, b)?),
            2 => ModelSde::Ve(VeSde::new(a, b)?),
            value => {
                return Err(ModelError::UnknownCode {
                    field: "sde",
                    value,
                })
            }
        })
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            ModelSde::Vp($s) => $e,
            ModelSde::SubVp($s) => $e,
            ModelSde::Ve($s) => $e,
        }
    };
}

impl LinearSde for ModelSde {
    fn t_max(&self) -> f32 {
        dispatch!(self, s => s.t_max())
    }
    fn drift_coeff(&self, t: f32) -> f32 {
        dispatch!(self, s => s.drift_coeff(t))
    }
    fn diffusion_coeff(&self, t: f32) -> f32 {
        dispatch!(self, s => s.diffusion_coeff(t))
    }
    #[inline]
    fn alpha(&self, t: f32) -> f32 {
        dispatch!(self, s => s.alpha(t))
    }
    #[inline]
    fn sigma(&self, t: f32) -> f32 {
        dispatch!(self, s => s.sigma(t))
    }
    fn log_snr(&self, t: f32) -> f32 {
        dispatch!(self, s => s.log_snr(t))
    }
    fn time_at_log_snr(&self, lambda: f32) -> f32 {
        dispatch!(self, s => s.time_at_log_snr(lambda))
    }
    fn prior_std(&self) -> f32 {
        dispatch!(self, s => s.prior_std())
    }
    fn sample_prior<R: Rng, const N: usize>(&self, noise: &mut GaussianStream<R>) -> [f32; N] {
        dispatch!(self, s => s.sample_prior(noise))
    }
}

/// The dimensions of a network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Dims {
    /// Data dimension N (input and output).
    pub dim: u32,
    /// Fourier frequencies F (the time embedding has 2F features).
    pub fourier: u32,
    /// Hidden width H.
    pub hidden: u32,
    /// Hidden layers L.
    pub layers: u32,
}

impl Dims {
    /// Checks every dimension against the format's limits.
    pub fn validate(&self) -> Result<(), ModelError> {
        for (field, value, max) in [
            ("dim", self.dim, MAX_DIM),
            ("fourier", self.fourier, MAX_FOURIER),
            ("hidden", self.hidden, MAX_HIDDEN),
            ("layers", self.layers, MAX_LAYERS),
        ] {
            if value == 0 || value > max {
                return Err(ModelError::DimensionOutOfRange { field, value, max });
            }
        }
        Ok(())
    }
    /// The width of the input layer, N + 2F.
    pub fn input_width(&self) -> usize {
        (self.dim + 2 * self.fourier) as usize
    }
    /// `(inputs, outputs)` of dense layer `i` in `0..=L` (the last is the output layer).
    pub fn layer_shape(&self, i: u32) -> (usize, usize) {
        let inputs = if i == 0 {
            self.input_width()
        } else {
            self.hidden as usize
        };
        let outputs = if i == self.layers {
            self.dim as usize
        } else {
            self.hidden as usize
        };
        (inputs, outputs)
    }
    /// Bytes of the f32 payload: normalisation, frequencies, then each layer's weights and
    /// biases.
    pub fn f32_payload_len(&self) -> usize {
        let layers: usize = (0..=self.layers)
            .map(|i| {
                let (inputs, outputs) = self.layer_shape(i);
                outputs * inputs + outputs
            })
            .sum();
        4 * (2 * self.dim as usize + self.fourier as usize + layers)
    }
    /// Bytes of the int8 payload: normalisation, frequencies, the input quantization, then
    /// each layer (see `docs/FORMAT.md`).
    pub fn int8_payload_len(&self) -> usize {
        let layers: usize = (0..=self.layers)
            .map(|i| {
                let (inputs, outputs) = self.layer_shape(i);
                let dense = outputs * inputs + 8 * outputs;
                let activation = 5 * outputs + 8 + 256 + 8;
                dense + if i < self.layers { activation } else { 0 }
            })
            .sum();
        4 * (2 * self.dim as usize + self.fourier as usize) + 8 + layers
    }
    /// Bytes of the payload at `precision`.
    pub fn payload_len(&self, precision: Precision) -> usize {
        match precision {
            Precision::F32 => self.f32_payload_len(),
            Precision::Int8 => self.int8_payload_len(),
            Precision::Int8Packed => {
                let widened: usize = (0..=self.layers)
                    .map(|i| self.packed_weights_len(i) - self.int8_weights_len(i))
                    .sum();
                self.int8_payload_len() + widened
            }
        }
    }
    /// Bytes of layer `i`'s int8 weights: one per weight.
    fn int8_weights_len(&self, i: u32) -> usize {
        let (inputs, outputs) = self.layer_shape(i);
        outputs * inputs
    }
    /// Bytes of layer `i`'s packed weights: its first [`Dims::packed_wide_inputs`] inputs
    /// in 16-bit pairs (four bytes a pair, the last pair padded), the rest one byte each.
    pub fn packed_weights_len(&self, i: u32) -> usize {
        let (inputs, outputs) = self.layer_shape(i);
        let wide = self.packed_wide_inputs(i);
        outputs * (4 * wide.div_ceil(2) + (inputs - wide))
    }
    /// How many of layer `i`'s first inputs a packed model multiplies with 16-bit weights:
    /// the data coordinates for the first layer (its time features stay bytes, as their sums
    /// are made once for all points), every input for later layers.
    pub fn packed_wide_inputs(&self, i: u32) -> usize {
        if i == 0 {
            self.dim as usize
        } else {
            self.layer_shape(i).0
        }
    }
}

/// Everything in the header.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Header {
    /// Weight storage.
    pub precision: Precision,
    /// Network dimensions.
    pub dims: Dims,
    /// The forward process.
    pub sde: ModelSde,
    /// Where sampling should stop (the smallest training time), in (0, T).
    pub t_end: f32,
    /// What the network's output is.
    pub output: Output,
}

impl Header {
    /// The `c(t)` of [`Output::GaussianResidual`] (`None` for [`Output::Noise`]): ε̂ is the
    /// network's output plus `c(t)·x`.
    #[inline]
    pub fn gaussian_gain(&self, t: f32) -> Option<f32> {
        match self.output {
            Output::Noise => None,
            Output::GaussianResidual => {
                let (alpha, sigma) = (self.sde.alpha(t), self.sde.sigma(t));
                Some(sigma / (alpha * alpha + sigma * sigma))
            }
        }
    }
}

/// `eps` with the Gaussian part `gain·x` added back, if the model has one.
#[inline(always)]
fn with_gaussian(eps: f32, gain: Option<f32>, x: f32) -> f32 {
    match gain {
        Some(c) => eps + c * x,
        None => eps,
    }
}

/// One dense layer's bytes, borrowed from the file.
#[derive(Clone, Copy, Debug, Default)]
struct DenseF32<'a> {
    inputs: usize,
    weights: &'a [u8],
    bias: &'a [u8],
}

/// One int8 layer's sections, borrowed from the file. Hidden layers requantize the int32
/// accumulator to the pre-activation tensor and map it through the SiLU table; the output
/// layer is dequantized from the accumulator.
#[derive(Clone, Copy, Debug, Default)]
pub struct Int8Layer<'a> {
    inputs: usize,
    input: QuantParams,
    weights: &'a [u8],
    bias: &'a [u8],
    weight_scale: &'a [u8],
    multiplier: &'a [u8],
    shift: &'a [u8],
    pre: QuantParams,
    lut: Option<&'a [u8; 256]>,
    post: QuantParams,
    /// Every shift ≤ −1 and every |bias| ≤ 2²⁹: the range of an installed
    /// [`packed::ActivationKernel`].
    narrow_requantization: bool,
}

impl Int8Layer<'_> {
    /// Inputs of the layer.
    pub fn inputs(&self) -> usize {
        self.inputs
    }
    /// Outputs of the layer.
    pub fn outputs(&self) -> usize {
        self.bias.len() / 4
    }
    /// The quantization of the layer's input tensor.
    pub fn input(&self) -> QuantParams {
        self.input
    }
    /// Weight `[o][j]` (int8, zero point 0).
    pub fn weight(&self, o: usize, j: usize) -> i8 {
        let index = o.saturating_mul(self.inputs).saturating_add(j);
        self.weights.get(index).map_or(0, |&b| b as i8)
    }
    /// Bias `o` at scale `input.scale · weight_scale(o)`.
    pub fn bias(&self, o: usize) -> i32 {
        i32_at(self.bias, o)
    }
    /// The scale of output channel `o`'s weights.
    pub fn weight_scale(&self, o: usize) -> f32 {
        let start = o.saturating_mul(4);
        self.weight_scale
            .get(start..start.saturating_add(4))
            .map_or(0.0, f32_at)
    }
    /// Channel `o`'s Q31 requantization multiplier and shift (hidden layers; `None` for the
    /// output layer, which is dequantized instead).
    pub fn requantization(&self, o: usize) -> Option<(i32, i32)> {
        let shift = *self.shift.get(o)? as i8 as i32;
        Some((i32_at(self.multiplier, o), shift))
    }
    /// The pre-activation (requantized accumulator) and post-activation quantizations (hidden
    /// layers only).
    pub fn activation(&self) -> Option<(QuantParams, QuantParams)> {
        self.lut.map(|_| (self.pre, self.post))
    }
    /// The SiLU table entry for pre-activation level `q` (hidden layers; 0 otherwise).
    #[inline(always)]
    pub fn silu(&self, q: i8) -> i8 {
        // Entry `q + 128`: q's byte with its sign bit flipped.
        self.lut
            .map_or(0, |lut| lut[(q as u8 ^ 0x80) as usize] as i8)
    }
    /// The layer's activation, read once for all its channels (a table of zeros for the
    /// output layer, which has none).
    #[inline(always)]
    fn activation_table(&self) -> Activation<'_> {
        Activation {
            pre: self.pre.zero_point,
            lut: self.lut.unwrap_or(&[0; 256]),
        }
    }
}

/// A hidden layer's requantization target and SiLU table.
#[derive(Clone, Copy)]
pub(crate) struct Activation<'a> {
    pub(crate) pre: i32,
    pub(crate) lut: &'a [u8; 256],
}

impl Activation<'_> {
    /// A channel's output level for accumulator `acc`: requantized with the channel's
    /// `(multiplier, shift)` to the pre-activation tensor, clamped to int8, SiLU by table.
    #[inline(always)]
    pub(crate) fn level(&self, acc: i32, multiplier: i32, shift: i32) -> i8 {
        let level = (requantize_parsed(acc, multiplier, shift) + self.pre).clamp(-128, 127);
        // Entry `level + 128`: the level's byte with its sign bit flipped.
        self.lut[(level as u8 ^ 0x80) as usize] as i8
    }
}

/// The little-endian f32 in a 4-byte chunk (any other length reads as 0, which the parser
/// makes impossible).
#[inline]
fn f32_at(bytes: &[u8]) -> f32 {
    f32::from_le_bytes(bytes.try_into().unwrap_or_default())
}

/// Entry `i` of a little-endian i32 array (0 beyond its end).
#[inline]
fn i32_at(bytes: &[u8], i: usize) -> i32 {
    let start = i.saturating_mul(4);
    bytes
        .get(start..start.saturating_add(4))
        .map_or(0, |c| i32::from_le_bytes(c.try_into().unwrap_or_default()))
}

/// The network's layers at the file's precision. Both variants are fixed arrays of borrowed
/// sections, built once per parse and then only borrowed, so their size difference costs
/// nothing at evaluation.
#[derive(Clone, Copy, Debug)]
#[allow(clippy::large_enum_variant)]
enum Layers<'a> {
    F32([DenseF32<'a>; MAX_LAYERS as usize + 1]),
    Int8([Int8Layer<'a>; MAX_LAYERS as usize + 1]),
    Int8Packed([Int8Layer<'a>; MAX_LAYERS as usize + 1]),
}

/// A parsed model: the header and its sections, borrowing the file's bytes.
#[derive(Clone, Copy, Debug)]
pub struct Model<'a> {
    header: Header,
    mean: &'a [u8],
    std: &'a [u8],
    fourier: &'a [u8],
    layers: Layers<'a>,
    kernels: packed::Kernels,
}

/// Reads consecutive sections of a byte slice, failing instead of panicking.
struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], ModelError> {
        let end = self.position.saturating_add(len);
        let section = self
            .bytes
            .get(self.position..end)
            .ok_or(ModelError::Truncated {
                needed: end,
                available: self.bytes.len(),
            })?;
        self.position = end;
        Ok(section)
    }
    fn u8(&mut self) -> Result<u8, ModelError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ModelError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().unwrap_or_default(),
        ))
    }
    fn u32(&mut self) -> Result<u32, ModelError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    fn f32(&mut self) -> Result<f32, ModelError> {
        Ok(f32_at(self.take(4)?))
    }
    fn i32(&mut self) -> Result<i32, ModelError> {
        Ok(self.u32()? as i32)
    }
    /// An int8 tensor's scale (finite, > 0) and zero point (in −128..=127).
    fn quant_params(&mut self) -> Result<QuantParams, ModelError> {
        let scale = f32_at(self.finite_f32s(1)?);
        let zero_point = self.i32()?;
        ParamError::require(scale > 0.0, "int8 scale", "> 0")?;
        ParamError::require(
            (-128..=127).contains(&zero_point),
            "int8 zero point",
            "in -128..=127",
        )?;
        Ok(QuantParams { scale, zero_point })
    }
    /// `count` little-endian i32s, each in `range`.
    fn i32s_in(
        &mut self,
        count: usize,
        range: core::ops::RangeInclusive<i32>,
        parameter: &'static str,
        requirement: &'static str,
    ) -> Result<&'a [u8], ModelError> {
        let section = self.take(count.saturating_mul(4))?;
        let in_range = section
            .chunks_exact(4)
            .all(|c| range.contains(&i32::from_le_bytes(c.try_into().unwrap_or_default())));
        ParamError::require(in_range, parameter, requirement)?;
        Ok(section)
    }
    /// `count` floats, all of which must be finite.
    fn finite_f32s(&mut self, count: usize) -> Result<&'a [u8], ModelError> {
        let start = self.position;
        let section = self.take(count.saturating_mul(4))?;
        match section.chunks_exact(4).position(|c| !f32_at(c).is_finite()) {
            None => Ok(section),
            Some(i) => Err(ModelError::NonFinite {
                offset: start + 4 * i,
            }),
        }
    }
}

impl<'a> Model<'a> {
    /// Parses and checks a model file.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ModelError> {
        let minimum = HEADER_LEN + CHECKSUM_LEN;
        if bytes.len() < minimum {
            return Err(ModelError::Truncated {
                needed: minimum,
                available: bytes.len(),
            });
        }
        let mut header = Cursor { bytes, position: 0 };
        if header.take(4)? != MAGIC {
            return Err(ModelError::BadMagic);
        }
        let version = header.u16()?;
        if version != VERSION {
            return Err(ModelError::UnsupportedVersion { version });
        }
        let precision_code = header.u8()?;
        let activation = header.u8()?;
        let dims = Dims {
            dim: header.u16()? as u32,
            fourier: header.u16()? as u32,
            hidden: header.u16()? as u32,
            layers: header.u16()? as u32,
        };
        let sde_code = header.u8()?;
        let output_code = header.u8()?;
        header.take(2)?; // reserved
        let (p0, p1, t_end) = (header.f32()?, header.f32()?, header.f32()?);
        let payload_len = header.u32()? as usize;
        header.take(4)?; // reserved

        // Length and checksum first: nothing else is trusted before them.
        let needed = HEADER_LEN
            .saturating_add(payload_len)
            .saturating_add(CHECKSUM_LEN);
        if bytes.len() < needed {
            return Err(ModelError::Truncated {
                needed,
                available: bytes.len(),
            });
        }
        if bytes.len() > needed {
            return Err(ModelError::InconsistentSize {
                expected: needed,
                found: bytes.len(),
            });
        }
        let (contents, trailer) = bytes.split_at(needed - CHECKSUM_LEN);
        let stored = u32::from_le_bytes(trailer.try_into().unwrap_or_default());
        let computed = crc32(contents);
        if stored != computed {
            return Err(ModelError::ChecksumMismatch { stored, computed });
        }

        let precision = match precision_code {
            0 => Precision::F32,
            1 => Precision::Int8,
            2 => Precision::Int8Packed,
            value => {
                return Err(ModelError::UnknownCode {
                    field: "precision",
                    value,
                })
            }
        };
        let output = match output_code {
            0 => Output::Noise,
            1 => Output::GaussianResidual,
            value => {
                return Err(ModelError::UnknownCode {
                    field: "output",
                    value,
                })
            }
        };
        if activation != 0 {
            return Err(ModelError::UnknownCode {
                field: "activation",
                value: activation,
            });
        }
        dims.validate()?;
        let sde = ModelSde::from_code(sde_code, p0, p1)?;
        ParamError::require(
            t_end.is_finite() && t_end > 0.0 && t_end < sde.t_max(),
            "t_end",
            "finite and in (0, T)",
        )?;
        let expected = dims.payload_len(precision);
        if payload_len != expected {
            return Err(ModelError::InconsistentSize {
                expected,
                found: payload_len,
            });
        }

        let mut payload = Cursor {
            bytes: contents,
            position: HEADER_LEN,
        };
        let n = dims.dim as usize;
        let mean = payload.finite_f32s(n)?;
        let std = payload.finite_f32s(n)?;
        ParamError::require(
            std.chunks_exact(4).all(|c| f32_at(c) > 0.0),
            "std",
            "> 0 in every dimension",
        )?;
        let fourier = payload.finite_f32s(dims.fourier as usize)?;
        let layers = match precision {
            Precision::F32 => Layers::F32(parse_f32_layers(&mut payload, &dims)?),
            Precision::Int8 => Layers::Int8(parse_int8_layers(&mut payload, &dims, false)?),
            Precision::Int8Packed => {
                Layers::Int8Packed(parse_int8_layers(&mut payload, &dims, true)?)
            }
        };
        Ok(Model {
            header: Header {
                precision,
                dims,
                sde,
                t_end,
                output,
            },
            mean,
            std,
            fourier,
            layers,
            kernels: packed::Kernels::PORTABLE,
        })
    }

    /// The model with `kernels` running a packed model ([`Precision::Int8Packed`]); other
    /// precisions do not use them. They must compute what [`packed::Kernels::PORTABLE`]
    /// does, bit for bit.
    pub fn with_kernels(self, kernels: packed::Kernels) -> Self {
        Model { kernels, ..self }
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The data normalisation of dimension `d`: `(mean, std)`; samples in data units are
    /// `mean + std·x` for the model's `x`.
    pub fn normalization(&self, d: usize) -> (f32, f32) {
        let read = |s: &[u8]| s.chunks_exact(4).nth(d).map_or(0.0, f32_at);
        (read(self.mean), read(self.std).max(f32::MIN_POSITIVE))
    }

    /// The Fourier frequencies W.
    pub fn frequencies(&self) -> impl Iterator<Item = f32> + 'a {
        self.fourier.chunks_exact(4).map(f32_at)
    }

    /// Layer `i`'s f32 weights (row-major, outputs × inputs) and biases; empty beyond the
    /// last layer and for int8 models (see [`Model::int8_layer`]).
    pub fn layer(
        &self,
        i: u32,
    ) -> (
        impl Iterator<Item = f32> + 'a,
        impl Iterator<Item = f32> + 'a,
    ) {
        let layer = match &self.layers {
            Layers::F32(layers) => layers.get(i as usize).copied().unwrap_or_default(),
            Layers::Int8(_) | Layers::Int8Packed(_) => DenseF32::default(),
        };
        (
            layer.weights.chunks_exact(4).map(f32_at),
            layer.bias.chunks_exact(4).map(f32_at),
        )
    }

    /// Layer `i` of an int8 model; `None` for f32 and packed models and beyond the last
    /// layer.
    pub fn int8_layer(&self, i: u32) -> Option<Int8Layer<'a>> {
        match &self.layers {
            Layers::Int8(layers) if i <= self.header.dims.layers => layers.get(i as usize).copied(),
            _ => None,
        }
    }

    /// `x` mapped back to data units.
    pub fn denormalize<const N: usize>(&self, x: &[f32; N]) -> [f32; N] {
        core::array::from_fn(|d| {
            let (mean, std) = self.normalization(d);
            mean + std * x[d]
        })
    }

    /// `x` in data units mapped to the model's normalised coordinates (the inverse of
    /// [`Model::denormalize`]).
    pub fn normalize<const N: usize>(&self, x: &[f32; N]) -> [f32; N] {
        core::array::from_fn(|d| {
            let (mean, std) = self.normalization(d);
            (x[d] - mean) / std
        })
    }

    /// The network's noise prediction ε̂(x, t) for `x` and `out` of the model's dimension
    /// (other lengths are refused).
    pub fn predict_noise(&self, x: &[f32], t: f32, out: &mut [f32]) -> Result<(), ModelError> {
        let n = self.header.dims.dim as usize;
        for len in [x.len(), out.len()] {
            if len != n {
                return Err(ModelError::DimensionMismatch {
                    model: n as u32,
                    expected: len as u32,
                });
            }
        }
        let mut a = [[0.0f32; 1]; MAX_WIDTH];
        for (slot, v) in a.iter_mut().zip(x) {
            slot[0] = *v;
        }
        let gain = self.header.gaussian_gain(t);
        let h = self.forward::<1>(&mut a, t);
        for ((o, row), x) in out.iter_mut().zip(h).zip(x) {
            *o = with_gaussian(row[0], gain, *x);
        }
        Ok(())
    }

    /// Runs the network on `L` points at once (one time `t`): `a[d][p]` holds coordinate `d`
    /// of point `p` on entry; returns the output rows. Each weight is read once for all lanes
    /// and the loops over lanes are innermost, so they vectorise; every lane's arithmetic is
    /// the same as with `L = 1`.
    ///
    /// Never inlined: it does not depend on the data dimension, so the samplers of every
    /// dimension (the host dispatches 1 to 64) share one copy.
    #[inline(never)]
    fn forward<'s, const L: usize>(
        &self,
        a: &'s mut [[f32; L]; MAX_WIDTH],
        t: f32,
    ) -> &'s [[f32; L]] {
        self.forward_inline(a, t)
    }

    /// The network on [`LANES`] points at once, as the batched score runs it: on entry
    /// `a[d][p]` holds coordinate `d` of point `p`, on return `a[d][p]` holds ε̂'s coordinate
    /// `d` for point `p`. Always inlined, so that a caller compiled for other vector
    /// instructions (a `#[target_feature]` function) gets its own copy of the whole network;
    /// see [`NeuralScore::with_lanes`]. The arithmetic is the same scalar f32 and integer
    /// operations whatever the instructions, so the bits are too.
    #[inline(always)]
    pub fn forward_lanes(&self, a: &mut [[f32; LANES]; MAX_WIDTH], t: f32) {
        self.forward_inline(a, t);
    }

    /// The body of [`Model::forward`] and [`Model::forward_lanes`]. Off the chips
    /// (`target_os` other than `none`) its layer functions are inlined into it too, so that a
    /// vector copy of `forward_lanes` is one function; on a chip they stay calls, which
    /// keeps one copy of each layer in flash.
    #[inline(always)]
    fn forward_inline<'s, const L: usize>(
        &self,
        a: &'s mut [[f32; L]; MAX_WIDTH],
        t: f32,
    ) -> &'s [[f32; L]] {
        match &self.layers {
            Layers::F32(layers) => self.forward_f32(layers, a, t),
            Layers::Int8(layers) => self.forward_int8(layers, a, t),
            Layers::Int8Packed(layers) => {
                self.forward_packed(layers, t, &mut Lanes(a));
                let n = (self.header.dims.dim as usize).min(MAX_WIDTH);
                &a[..n]
            }
        }
    }

    /// The int8 levels of the time features in `input`'s quantization: `put(N + j, q(sin))`
    /// and `put(N + F + j, q(cos))` for each frequency `j`, the places they take in the
    /// network's input.
    fn for_each_time_level(&self, input: QuantParams, t: f32, mut put: impl FnMut(usize, i8)) {
        let n = self.header.dims.dim as usize;
        let f = self.fourier_count();
        for (j, w) in self.fourier.chunks_exact(4).take(f).enumerate() {
            let (sin, cos) = time_feature(t, f32_at(w));
            put(n + j, input.quantize(sin));
            put(n + f + j, input.quantize(cos));
        }
    }

    /// The number of Fourier frequencies that fit the scratch space (all of them in a parsed
    /// model; the bound only keeps indexing provably in range).
    fn fourier_count(&self) -> usize {
        let n = self.header.dims.dim as usize;
        (self.header.dims.fourier as usize).min((MAX_WIDTH - n) / 2)
    }

    #[cfg_attr(not(target_os = "none"), inline(always))]
    fn forward_f32<'s, const L: usize>(
        &self,
        layers: &[DenseF32<'_>],
        a: &'s mut [[f32; L]; MAX_WIDTH],
        t: f32,
    ) -> &'s [[f32; L]] {
        let n = self.header.dims.dim as usize;
        let f = self.fourier_count();
        for (j, w) in self.fourier.chunks_exact(4).take(f).enumerate() {
            let (sin, cos) = time_feature(t, f32_at(w));
            a[n + j] = [sin; L];
            a[n + f + j] = [cos; L];
        }
        let mut b = [[0.0f32; L]; MAX_WIDTH];
        let last = self.header.dims.layers as usize;
        for (i, layer) in layers.iter().enumerate().take(last + 1) {
            if i % 2 == 0 {
                dense::<L>(layer, a, &mut b, i < last);
            } else {
                dense::<L>(layer, &b, a, i < last);
            }
        }
        // L + 1 layers: the result is in `b` after an odd count of layers, in `a` otherwise.
        if last % 2 == 0 {
            a.copy_from_slice(&b);
        }
        &a[..n]
    }

    /// The int8 network on `L` lanes, integer-only between the input quantization and the
    /// dequantization of ε̂ (written over the first N rows of `a`). The activations are held as
    /// offsets `q − zero_point` (in −255..=255, so i16), which is the TFLite formula
    /// `Σ w·(q + input_offset)` with the offset applied once per input.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    fn forward_int8<'s, const L: usize>(
        &self,
        layers: &[Int8Layer<'_>],
        a: &'s mut [[f32; L]; MAX_WIDTH],
        t: f32,
    ) -> &'s [[f32; L]] {
        let n = self.header.dims.dim as usize;
        let input = layers.first().map(|l| l.input).unwrap_or_default();
        let offset = |q: i8| (q as i32 - input.zero_point) as i16;
        let mut x = [[0i16; L]; MAX_WIDTH];
        for (xd, ad) in x.iter_mut().zip(a.iter()).take(n) {
            for p in 0..L {
                xd[p] = offset(input.quantize(ad[p]));
            }
        }
        self.for_each_time_level(input, t, |i, q| x[i] = [offset(q); L]);
        let mut y = [[0i16; L]; MAX_WIDTH];
        let last = self.header.dims.layers as usize;
        for (i, layer) in layers.iter().enumerate().take(last) {
            if i % 2 == 0 {
                dense_int8_silu::<L>(layer, &x, &mut y);
            } else {
                dense_int8_silu::<L>(layer, &y, &mut x);
            }
        }
        let hidden = if last % 2 == 0 { &x } else { &y };
        if let Some(output) = layers.get(last) {
            dense_int8_dequantize::<L>(output, hidden, a);
        }
        &a[..n]
    }
}

/// Reads the f32 layers.
fn parse_f32_layers<'a>(
    payload: &mut Cursor<'a>,
    dims: &Dims,
) -> Result<[DenseF32<'a>; MAX_LAYERS as usize + 1], ModelError> {
    let mut layers = [DenseF32::default(); MAX_LAYERS as usize + 1];
    for (i, layer) in layers.iter_mut().enumerate().take(dims.layers as usize + 1) {
        let (inputs, outputs) = dims.layer_shape(i as u32);
        *layer = DenseF32 {
            inputs,
            weights: payload.finite_f32s(outputs * inputs)?,
            bias: payload.finite_f32s(outputs)?,
        };
    }
    Ok(layers)
}

/// Largest |bias| of an int8 layer: with it, no accumulator can overflow i32 (the weighted sum
/// is at most 256·128·255 < 2²³ in magnitude).
const MAX_INT8_BIAS: i32 = 1 << 30;

/// Reads the int8 input quantization and layers, `packed` or not (precision 2 or 1).
fn parse_int8_layers<'a>(
    payload: &mut Cursor<'a>,
    dims: &Dims,
    packed: bool,
) -> Result<[Int8Layer<'a>; MAX_LAYERS as usize + 1], ModelError> {
    let max_bias = if packed {
        packed::MAX_PACKED_BIAS
    } else {
        MAX_INT8_BIAS
    };
    let mut input = payload.quant_params()?;
    let mut layers = [Int8Layer::default(); MAX_LAYERS as usize + 1];
    for (i, layer) in layers.iter_mut().enumerate().take(dims.layers as usize + 1) {
        let (inputs, outputs) = dims.layer_shape(i as u32);
        let weights = if packed {
            payload.take(dims.packed_weights_len(i as u32))?
        } else {
            payload.take(outputs * inputs)?
        };
        let bias = payload.i32s_in(
            outputs,
            -max_bias..=max_bias,
            "int8 bias",
            "|bias| <= 2^30 (2^30 + 2^24 packed)",
        )?;
        let weight_scale = payload.finite_f32s(outputs)?;
        ParamError::require(
            weight_scale.chunks_exact(4).all(|c| f32_at(c) > 0.0),
            "int8 weight scale",
            "> 0",
        )?;
        *layer = Int8Layer {
            inputs,
            input,
            weights,
            bias,
            weight_scale,
            ..Int8Layer::default()
        };
        if i < dims.layers as usize {
            layer.multiplier = payload.i32s_in(
                outputs,
                0..=i32::MAX,
                "int8 multiplier",
                "0 or in 2^30..2^31",
            )?;
            ParamError::require(
                (0..outputs).all(|o| {
                    let m = i32_at(layer.multiplier, o);
                    m == 0 || m >= 1 << 30
                }),
                "int8 multiplier",
                "0 or in 2^30..2^31",
            )?;
            layer.shift = payload.take(outputs)?;
            ParamError::require(
                layer.shift.iter().all(|&s| (-31..=30).contains(&(s as i8))),
                "int8 shift",
                "in -31..=30",
            )?;
            layer.pre = payload.quant_params()?;
            layer.lut = payload.take(256)?.try_into().ok();
            layer.post = payload.quant_params()?;
            layer.narrow_requantization = layer.shift.iter().all(|&s| (s as i8) <= -1)
                && (0..outputs).all(|o| layer.bias(o).unsigned_abs() <= 1 << 29);
            input = layer.post;
        }
    }
    Ok(layers)
}

/// Weight rows accumulated together: independent sums that hide the latency of the adds
/// (each row's sum keeps its own order, so the bits do not depend on it).
const ROW_BLOCK: usize = 4;

/// `out = act(W·input + b)` for one layer on `L` lanes, reading the weights in place. Each
/// output is the sum over inputs in order, then the bias: the same arithmetic on every target,
/// for every lane count and row blocking.
#[cfg_attr(target_os = "none", inline)]
#[cfg_attr(not(target_os = "none"), inline(always))]
fn dense<const L: usize>(
    layer: &DenseF32<'_>,
    input: &[[f32; L]; MAX_WIDTH],
    out: &mut [[f32; L]; MAX_WIDTH],
    silu: bool,
) {
    let row_bytes = 4 * layer.inputs;
    if row_bytes == 0 {
        return;
    }
    let input = &input[..layer.inputs.min(MAX_WIDTH)];
    let finish = |acc: &[f32; L], bias: &[u8], o: &mut [f32; L]| {
        let bias = f32_at(bias);
        for p in 0..L {
            let v = acc[p] + bias;
            o[p] = if silu { v / (1.0 + math::exp(-v)) } else { v };
        }
    };
    let blocks = layer.weights.chunks_exact(ROW_BLOCK * row_bytes);
    let rest = blocks.remainder();
    let mut biases = layer.bias.chunks_exact(4);
    let mut outs = out.iter_mut();
    for block in blocks {
        let rows: [&[u8]; ROW_BLOCK] =
            core::array::from_fn(|r| &block[r * row_bytes..(r + 1) * row_bytes]);
        let acc = accumulate_f32::<L, ROW_BLOCK>(rows, input);
        for acc in &acc {
            if let (Some(bias), Some(o)) = (biases.next(), outs.next()) {
                finish(acc, bias, o);
            }
        }
    }
    for row in rest.chunks_exact(row_bytes) {
        let [acc] = accumulate_f32::<L, 1>([row], input);
        if let (Some(bias), Some(o)) = (biases.next(), outs.next()) {
            finish(&acc, bias, o);
        }
    }
}

/// `Σ_j w_r[j]·input[j]` for `R` weight rows (little-endian f32 bytes, one per input) on `L`
/// lanes, each sum in input order. Like [`accumulate_int8`], zipped iterators and one
/// accumulator per row keep the loop free of bounds checks.
#[inline(always)]
fn accumulate_f32<const L: usize, const R: usize>(
    rows: [&[u8]; R],
    input: &[[f32; L]],
) -> [[f32; L]; R] {
    let mut acc = [[0.0f32; L]; R];
    if let ([r0, r1, r2, r3], [a0, a1, a2, a3]) = (rows.as_slice(), acc.as_mut_slice()) {
        let weights = r0
            .chunks_exact(4)
            .zip(r1.chunks_exact(4))
            .zip(r2.chunks_exact(4))
            .zip(r3.chunks_exact(4));
        for ((((w0, w1), w2), w3), x) in weights.zip(input) {
            let (w0, w1, w2, w3) = (f32_at(w0), f32_at(w1), f32_at(w2), f32_at(w3));
            for p in 0..L {
                a0[p] += w0 * x[p];
                a1[p] += w1 * x[p];
                a2[p] += w2 * x[p];
                a3[p] += w3 * x[p];
            }
        }
        return acc;
    }
    for (row, acc) in rows.iter().zip(acc.iter_mut()) {
        for (w, x) in row.chunks_exact(4).zip(input) {
            let w = f32_at(w);
            for p in 0..L {
                acc[p] += w * x[p];
            }
        }
    }
    acc
}

/// The accumulators `bias_r + Σ_j w_r[j]·input[j]` of `R` int8 weight rows on `L` lanes.
/// Exact in i32: the parser bounds the bias so no sum overflows. The rows are walked by
/// zipped iterators with one accumulator per row, so the loop carries no bounds checks and
/// keeps its sums in registers even when optimised for size (as on a chip).
#[inline(always)]
fn accumulate_int8<const L: usize, const R: usize>(
    rows: [&[u8]; R],
    bias: [i32; R],
    input: &[[i16; L]],
) -> [[i32; L]; R] {
    let mut acc = bias.map(|b| [b; L]);
    if let ([r0, r1, r2, r3], [a0, a1, a2, a3]) = (rows.as_slice(), acc.as_mut_slice()) {
        let weights = r0.iter().zip(*r1).zip(*r2).zip(*r3);
        for ((((w0, w1), w2), w3), x) in weights.zip(input) {
            let (w0, w1, w2, w3) = (
                *w0 as i8 as i32,
                *w1 as i8 as i32,
                *w2 as i8 as i32,
                *w3 as i8 as i32,
            );
            for p in 0..L {
                let x = x[p] as i32;
                a0[p] += w0 * x;
                a1[p] += w1 * x;
                a2[p] += w2 * x;
                a3[p] += w3 * x;
            }
        }
        return acc;
    }
    for (row, acc) in rows.iter().zip(acc.iter_mut()) {
        for (w, x) in row.iter().zip(input) {
            let w = *w as i8 as i32;
            for p in 0..L {
                acc[p] += w * x[p] as i32;
            }
        }
    }
    acc
}

/// Runs `finish(o, accumulators)` for every output row of an int8 layer, `ROW_BLOCK` rows at
/// a time.
#[inline(always)]
fn for_each_int8_row<const L: usize>(
    layer: &Int8Layer<'_>,
    input: &[[i16; L]; MAX_WIDTH],
    mut finish: impl FnMut(usize, &[i32; L]),
) {
    let width = layer.inputs;
    if width == 0 {
        return;
    }
    let input = &input[..width.min(MAX_WIDTH)];
    let blocks = layer.weights.chunks_exact(ROW_BLOCK * width);
    let rest = blocks.remainder();
    let mut o = 0;
    for block in blocks {
        let rows: [&[u8]; ROW_BLOCK] = core::array::from_fn(|r| &block[r * width..(r + 1) * width]);
        let bias = core::array::from_fn(|r| layer.bias(o + r));
        for acc in &accumulate_int8::<L, ROW_BLOCK>(rows, bias, input) {
            finish(o, acc);
            o += 1;
        }
    }
    for row in rest.chunks_exact(width) {
        let [acc] = accumulate_int8::<L, 1>([row], [layer.bias(o)], input);
        finish(o, &acc);
        o += 1;
    }
}

/// A hidden int8 layer: accumulate, requantize to the pre-activation tensor, SiLU by table,
/// store as offsets from the post-activation zero point.
#[cfg_attr(target_os = "none", inline)]
#[cfg_attr(not(target_os = "none"), inline(always))]
fn dense_int8_silu<const L: usize>(
    layer: &Int8Layer<'_>,
    input: &[[i16; L]; MAX_WIDTH],
    out: &mut [[i16; L]; MAX_WIDTH],
) {
    let (activation, post) = (layer.activation_table(), layer.post.zero_point);
    for_each_int8_row::<L>(layer, input, |o, acc| {
        let (multiplier, shift) = layer.requantization(o).unwrap_or_default();
        if let Some(out) = out.get_mut(o) {
            for p in 0..L {
                out[p] = (activation.level(acc[p], multiplier, shift) as i32 - post) as i16;
            }
        }
    });
}

/// The int8 output layer, dequantized from the accumulator: `ε̂ = acc·(s_in·s_w)`.
#[cfg_attr(target_os = "none", inline)]
#[cfg_attr(not(target_os = "none"), inline(always))]
fn dense_int8_dequantize<const L: usize>(
    layer: &Int8Layer<'_>,
    input: &[[i16; L]; MAX_WIDTH],
    out: &mut [[f32; L]; MAX_WIDTH],
) {
    for_each_int8_row::<L>(layer, input, |o, acc| {
        let scale = layer.input.scale * layer.weight_scale(o);
        if let Some(out) = out.get_mut(o) {
            for p in 0..L {
                out[p] = acc[p] as f32 * scale;
            }
        }
    });
}

/// A lane buffer as the packed evaluation's [`packed::Points`]: point `p` is column `p`.
struct Lanes<'a, const L: usize>(&'a mut [[f32; L]; MAX_WIDTH]);

impl<const L: usize> packed::Points for Lanes<'_, L> {
    fn count(&self) -> usize {
        L
    }
    fn coordinate(&self, p: usize, d: usize) -> f32 {
        self.0.get(d).and_then(|row| row.get(p)).map_or(0.0, |v| *v)
    }
    fn put(&mut self, p: usize, d: usize, eps: f32) {
        if let Some(slot) = self.0.get_mut(d).and_then(|row| row.get_mut(p)) {
            *slot = eps;
        }
    }
}

/// Points of a score batch as the packed evaluation's [`packed::Points`], their scores
/// `−ε̂/σ` written straight to `out` (no lane buffer: a chip scores a batch in the stack
/// space of one point).
struct ScorePoints<'a, const N: usize> {
    xs: &'a [[f32; N]],
    out: &'a mut [[f32; N]],
    sigma: f32,
    gain: Option<f32>,
}

impl<const N: usize> packed::Points for ScorePoints<'_, N> {
    fn count(&self) -> usize {
        self.xs.len().min(self.out.len())
    }
    fn coordinate(&self, p: usize, d: usize) -> f32 {
        self.xs.get(p).and_then(|x| x.get(d)).map_or(0.0, |v| *v)
    }
    fn put(&mut self, p: usize, d: usize, eps: f32) {
        let x = self.coordinate(p, d);
        if let Some(slot) = self.out.get_mut(p).and_then(|s| s.get_mut(d)) {
            *slot = -with_gaussian(eps, self.gain, x) / self.sigma;
        }
    }
}

/// Points the network evaluates together in a batch.
pub const LANES: usize = 16;

/// A packed int8 model ([`Precision::Int8Packed`]) as a [`Score`] on `[f32; N]`: the bits
/// [`NeuralScore`] gives for it, with only the packed evaluator reachable, so that firmware
/// running a packed model leaves the f32 and int8 evaluators out of its flash.
#[derive(Clone, Copy, Debug)]
pub struct PackedScore<'a, const N: usize> {
    model: Model<'a>,
}

impl<'a, const N: usize> PackedScore<'a, N> {
    /// The score of `model`, which must be packed and of dimension `N`.
    pub fn new(model: Model<'a>) -> Result<Self, ModelError> {
        NeuralScore::<N>::new(model)?;
        ParamError::require(
            model.header.precision == Precision::Int8Packed,
            "model",
            "a packed int8 model (precision 2)",
        )?;
        Ok(PackedScore { model })
    }
    /// The model's SDE.
    pub fn sde(&self) -> ModelSde {
        self.model.header.sde
    }
}

impl<const N: usize> Score<N> for PackedScore<'_, N> {
    fn score(&self, x: &[f32; N], t: f32) -> [f32; N] {
        let mut out = [[0.0f32; N]; 1];
        self.model
            .packed_scores(core::slice::from_ref(x), t, &mut out);
        out[0]
    }

    fn score_batch(&self, xs: &[[f32; N]], t: f32, out: &mut [[f32; N]]) {
        self.model.packed_scores(xs, t, out);
    }
}

/// An unpacked int8 model ([`Precision::Int8`]) as a [`Score`] on `[f32; N]`: the bits
/// [`NeuralScore`] gives for it, with only the int8 evaluator reachable, so that firmware
/// running an int8 model on a core without the DSP extension leaves the f32 and packed
/// evaluators out of its flash.
#[derive(Clone, Copy, Debug)]
pub struct Int8Score<'a, const N: usize> {
    score: NeuralScore<'a, N>,
}

impl<'a, const N: usize> Int8Score<'a, N> {
    /// The score of `model`, which must be int8 (unpacked) and of dimension `N`.
    pub fn new(model: Model<'a>) -> Result<Self, ModelError> {
        let score = NeuralScore::<N>::new(model)?;
        ParamError::require(
            model.header.precision == Precision::Int8,
            "model",
            "an int8 model (precision 1)",
        )?;
        Ok(Int8Score { score })
    }
    /// The model's SDE.
    pub fn sde(&self) -> ModelSde {
        self.score.sde()
    }
}

impl<const N: usize> Score<N> for Int8Score<'_, N> {
    fn score(&self, x: &[f32; N], t: f32) -> [f32; N] {
        let mut out = [[0.0f32; N]; 1];
        let model = &self.score.model;
        self.score
            .score_lanes::<1>(core::slice::from_ref(x), t, &mut out, |a| {
                if let Layers::Int8(layers) = &model.layers {
                    model.forward_int8::<1>(layers, a, t);
                }
            });
        out[0]
    }
}

/// Runs the network on a batch of [`LANES`] points, as [`Model::forward_lanes`] does.
pub type LanesForward = fn(&Model<'_>, &mut [[f32; LANES]; MAX_WIDTH], f32);

/// A model as a [`Score`] on `[f32; N]`: `s(x, t) = −ε̂(x, t)/σ(t)` with σ from the model's
/// SDE (in the model's normalised coordinates).
#[derive(Clone, Copy, Debug)]
pub struct NeuralScore<'a, const N: usize> {
    model: Model<'a>,
    /// Runs full batches when set; else the baseline copy does. A chip (no stack for a lane
    /// batch) never reads it.
    #[cfg_attr(target_os = "none", allow(dead_code))]
    lanes: Option<LanesForward>,
}

impl<'a, const N: usize> NeuralScore<'a, N> {
    /// The score of `model`, whose data dimension must be `N`.
    pub fn new(model: Model<'a>) -> Result<Self, ModelError> {
        let dim = model.header.dims.dim;
        if dim as usize != N {
            return Err(ModelError::DimensionMismatch {
                model: dim,
                expected: N as u32,
            });
        }
        Ok(NeuralScore { model, lanes: None })
    }
    /// The same score with full batches of [`LANES`] points evaluated by `forward`, which
    /// must compute what [`Model::forward_lanes`] does (typically: call it from a function
    /// compiled for wider vectors, after checking the CPU has them).
    pub fn with_lanes(self, forward: LanesForward) -> Self {
        NeuralScore {
            lanes: Some(forward),
            ..self
        }
    }
    /// The model.
    pub fn model(&self) -> &Model<'a> {
        &self.model
    }
    /// The model's SDE.
    pub fn sde(&self) -> ModelSde {
        self.model.header.sde
    }
    /// The noise prediction ε̂(x, t).
    pub fn predict_noise(&self, x: &[f32; N], t: f32) -> [f32; N] {
        let mut out = [0.0f32; N];
        // Cannot fail: N was checked against the model in `new`.
        let _ = self.model.predict_noise(x, t, &mut out);
        out
    }
}

impl Model<'_> {
    /// `−ε̂/σ(t)` for every point of `xs` into `out` when the model is packed (which shares
    /// the time features' work between the points, without a lane buffer); false otherwise.
    fn packed_scores<const N: usize>(&self, xs: &[[f32; N]], t: f32, out: &mut [[f32; N]]) -> bool {
        let Layers::Int8Packed(layers) = &self.layers else {
            return false;
        };
        let sigma = self.header.sde.sigma(t);
        let gain = self.header.gaussian_gain(t);
        let mut points = ScorePoints {
            xs,
            out,
            sigma,
            gain,
        };
        self.forward_packed(layers, t, &mut points);
        true
    }
}

impl<const N: usize> NeuralScore<'_, N> {
    /// `−ε̂/σ(t)` for up to `L` points; `forward` runs the network on the lanes.
    fn score_lanes<const L: usize>(
        &self,
        xs: &[[f32; N]],
        t: f32,
        out: &mut [[f32; N]],
        forward: impl FnOnce(&mut [[f32; L]; MAX_WIDTH]),
    ) {
        let mut a = [[0.0f32; L]; MAX_WIDTH];
        for (p, x) in xs.iter().enumerate().take(L) {
            for (d, v) in x.iter().enumerate() {
                a[d][p] = *v;
            }
        }
        let sigma = self.model.header.sde.sigma(t);
        let gain = self.model.header.gaussian_gain(t);
        forward(&mut a);
        let eps = &a[..N.min(MAX_WIDTH)];
        for ((p, o), x) in out.iter_mut().enumerate().zip(xs).take(L) {
            for ((d, v), x) in o.iter_mut().enumerate().zip(x) {
                let eps = eps.get(d).map_or(0.0, |row| row[p]);
                *v = -with_gaussian(eps, gain, *x) / sigma;
            }
        }
    }
}

impl<const N: usize> Score<N> for NeuralScore<'_, N> {
    fn score(&self, x: &[f32; N], t: f32) -> [f32; N] {
        let mut out = [[0.0f32; N]; 1];
        if self
            .model
            .packed_scores(core::slice::from_ref(x), t, &mut out)
        {
            return out[0];
        }
        self.score_lanes::<1>(core::slice::from_ref(x), t, &mut out, |a| {
            self.model.forward::<1>(a, t);
        });
        out[0]
    }

    fn score_batch(&self, xs: &[[f32; N]], t: f32, out: &mut [[f32; N]]) {
        if self.model.packed_scores(xs, t, out) {
            return;
        }
        // A chip has no stack for a lane buffer of LANES points (16 KiB): it scores the other
        // precisions point by point.
        #[cfg(target_os = "none")]
        for (x, o) in xs.iter().zip(out) {
            *o = self.score(x, t);
        }
        #[cfg(not(target_os = "none"))]
        for (xs, out) in xs.chunks(LANES).zip(out.chunks_mut(LANES)) {
            if xs.len() == LANES {
                self.score_lanes::<LANES>(xs, t, out, |a| match self.lanes {
                    Some(forward) => forward(&self.model, a, t),
                    None => {
                        self.model.forward::<LANES>(a, t);
                    }
                });
            } else {
                for (x, o) in xs.iter().zip(out) {
                    *o = self.score(x, t);
                }
            }
        }
    }
}
