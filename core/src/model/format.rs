//! The `.tsm` byte layout, read and written: the one place that knows where each field and
//! section of a model file is (`docs/FORMAT.md` describes the same layout for people).
//!
//! A file is a 40-byte [`Header`], the payload and a CRC-32 trailer; every number is
//! little-endian. The payload is the normalisation (mean, std), the Fourier frequencies, then
//! the layers at the header's precision:
//! - f32: each layer's weights (outputs × inputs, row-major) and biases;
//! - int8: the input tensor's quantization, then each layer's weights (one byte each, or the
//!   packed layout of [`packed`](super::packed)), int32 biases and per-channel weight scales,
//!   and for a hidden layer its requantization multipliers and shifts, pre-activation
//!   quantization, SiLU table and post-activation quantization.
//!
//! [`Model::parse`](super::Model::parse) reads through [`Header::decode`] and the section
//! readers here; [`write_file`] writes the same sections for the host's writers, and
//! [`Header::encode`] serves the packer.

use super::crc32::{crc32, crc32_update};
use super::error::ModelError;
use super::quant::{QuantParams, Rounding, SILU16_ENTRIES};
use crate::error::ParamError;
use crate::noise::GaussianStream;
use crate::sde::{LinearSde, SubVpSde, VeSde, VpSde};
use rand_core::Rng;

/// The file's first four bytes.
pub const MAGIC: [u8; 4] = *b"TSMF";
/// The format version this build reads and writes.
pub const VERSION: u16 = 1;
/// Bytes of the fixed header.
pub const HEADER_LEN: usize = 40;
/// Bytes of the CRC-32 trailer.
pub const CHECKSUM_LEN: usize = 4;
/// Largest data dimension.
pub const MAX_DIM: u32 = 64;
/// Largest number of Fourier frequencies.
pub const MAX_FOURIER: u32 = 64;
/// Largest hidden width.
pub const MAX_HIDDEN: u32 = 256;
/// Largest number of hidden layers.
pub const MAX_LAYERS: u32 = 8;
/// Largest activation vector (max of the hidden width and the input width N + 2F), the
/// evaluators' scratch size.
pub const MAX_WIDTH: usize = 256;
/// Largest |bias| of an int8 layer: with it, no accumulator can overflow i32 (the weighted
/// sum is at most 256·128·255 < 2²³ in magnitude).
pub const MAX_INT8_BIAS: i32 = 1 << 30;
/// Largest |folded bias| of a packed file: an int8 bias (≤ 2³⁰) plus the folded terms
/// (`|z·Σw| + 127·|Σw_odd|` < 2²⁴ for 256 inputs; see [`packed`](super::packed)).
pub const MAX_PACKED_BIAS: i32 = (1 << 30) + (1 << 24);

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
    /// [`packed`](super::packed)): the same numbers, the same outputs, made by
    /// [`pack`](super::packed::pack).
    Int8Packed,
    /// int8 weights with int16 activations (code 3; TFLite's "16×8"): the sections of
    /// [`Precision::Int8`], with every activation tensor symmetric (zero point 0) in 16 bits
    /// and each SiLU an interpolated table of [`SILU16_ENTRIES`] int16 knots. The activations'
    /// rounding is 256 times finer, which the network's sharp small-time ε̂ needs. Parsed
    /// with the core's `int16x8` feature (on by default).
    #[cfg(feature = "int16x8")]
    Int16x8,
    /// The int16x8 network laid out for dual 16-bit multiply–accumulate (code 4; see
    /// [`packed`](super::packed)): the same numbers, the same outputs, made by
    /// [`pack`](super::packed::pack). Parsed with the core's `int16x8` feature.
    #[cfg(feature = "int16x8")]
    Int16x8Packed,
}

impl Precision {
    /// The header code.
    pub fn code(&self) -> u8 {
        match self {
            Precision::F32 => 0,
            Precision::Int8 => 1,
            Precision::Int8Packed => 2,
            #[cfg(feature = "int16x8")]
            Precision::Int16x8 => 3,
            #[cfg(feature = "int16x8")]
            Precision::Int16x8Packed => 4,
        }
    }
    /// Whether the file's activations are int16 ([`Precision::Int16x8`] and
    /// [`Precision::Int16x8Packed`]); false in a build without the `int16x8` feature, so that
    /// their code leaves it.
    #[inline(always)]
    pub fn has_int16_activations(&self) -> bool {
        #[cfg(feature = "int16x8")]
        return matches!(self, Precision::Int16x8 | Precision::Int16x8Packed);
        #[cfg(not(feature = "int16x8"))]
        return false;
    }
    /// Whether the file is laid out for dual 16-bit multiply–accumulate
    /// ([`Precision::Int8Packed`] and [`Precision::Int16x8Packed`]).
    #[inline(always)]
    pub fn is_packed(&self) -> bool {
        #[cfg(feature = "int16x8")]
        return matches!(self, Precision::Int8Packed | Precision::Int16x8Packed);
        #[cfg(not(feature = "int16x8"))]
        return *self == Precision::Int8Packed;
    }
    /// Whether the file has unpacked int8 layers with SiLU tables (int8 and int16x8).
    pub fn has_int8_tables(&self) -> bool {
        *self == Precision::Int8 || (self.has_int16_activations() && !self.is_packed())
    }
    /// The precision of header code `code`.
    pub fn from_code(code: u8) -> Result<Self, ModelError> {
        match code {
            0 => Ok(Precision::F32),
            1 => Ok(Precision::Int8),
            2 => Ok(Precision::Int8Packed),
            #[cfg(feature = "int16x8")]
            3 => Ok(Precision::Int16x8),
            #[cfg(feature = "int16x8")]
            4 => Ok(Precision::Int16x8Packed),
            #[cfg(not(feature = "int16x8"))]
            3 | 4 => Err(ModelError::LeftOut { feature: "int16x8" }),
            value => Err(ModelError::UnknownCode {
                field: "precision",
                value,
            }),
        }
    }
}

/// Whether an f32 file ends with the activation quantizations its quantization-aware
/// training fixed, and for which activation width it trained (header byte 19).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TrainedActivations {
    /// None (code 0): trained in float, or an int8-weight file.
    #[default]
    None,
    /// Trained through int8 activations (code 1).
    Int8,
    /// Trained through int16 activations (code 2), for [`Precision::Int16x8`].
    Int16,
}

impl TrainedActivations {
    /// The header code.
    pub fn code(&self) -> u8 {
        match self {
            TrainedActivations::None => 0,
            TrainedActivations::Int8 => 1,
            TrainedActivations::Int16 => 2,
        }
    }
    /// The value of header code `code`.
    pub fn from_code(code: u8) -> Result<Self, ModelError> {
        match code {
            0 => Ok(TrainedActivations::None),
            1 => Ok(TrainedActivations::Int8),
            2 => Ok(TrainedActivations::Int16),
            value => Err(ModelError::UnknownCode {
                field: "trained activations",
                value,
            }),
        }
    }
    /// Whether the file holds them.
    pub fn present(&self) -> bool {
        *self != TrainedActivations::None
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
    /// The output of header code `code`.
    pub fn from_code(code: u8) -> Result<Self, ModelError> {
        match code {
            0 => Ok(Output::Noise),
            1 => Ok(Output::GaussianResidual),
            value => Err(ModelError::UnknownCode {
                field: "output",
                value,
            }),
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

impl core::fmt::Display for ModelSde {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (a, b) = self.parameters();
        match self {
            ModelSde::Vp(_) => write!(f, "VP (β from {a} to {b})"),
            ModelSde::SubVp(_) => write!(f, "sub-VP (β from {a} to {b})"),
            ModelSde::Ve(_) => write!(f, "VE (σ from {a} to {b})"),
        }
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
        self.quantized_payload_len(SiluTable::INT8_BYTES)
    }
    /// Bytes of an int8-weight payload whose SiLU tables take `table_bytes` each.
    fn quantized_payload_len(&self, table_bytes: usize) -> usize {
        let layers: usize = (0..=self.layers)
            .map(|i| {
                let (inputs, outputs) = self.layer_shape(i);
                let dense = outputs * inputs + 8 * outputs;
                let activation = 5 * outputs + 8 + table_bytes + 8;
                dense + if i < self.layers { activation } else { 0 }
            })
            .sum();
        4 * (2 * self.dim as usize + self.fourier as usize) + 8 + layers
    }
    /// Bytes of the payload at `precision`.
    #[inline]
    pub fn payload_len(&self, precision: Precision) -> usize {
        match precision {
            Precision::F32 => self.f32_payload_len(),
            Precision::Int8 => self.int8_payload_len(),
            Precision::Int8Packed => self.int8_payload_len() + self.packed_widening(precision),
            #[cfg(feature = "int16x8")]
            Precision::Int16x8 => self.quantized_payload_len(SiluTable::INT16_BYTES),
            #[cfg(feature = "int16x8")]
            Precision::Int16x8Packed => {
                let padded = SiluTable::INT16_BYTES + SiluTable::INT16_PACKED_PADDING;
                self.quantized_payload_len(padded) + self.packed_widening(precision)
            }
        }
    }
    /// Bytes the weights of a packed file of `precision` take beyond one a weight.
    fn packed_widening(&self, precision: Precision) -> usize {
        (0..=self.layers)
            .map(|i| self.packed_weights_len(i, precision) - self.int8_weights_len(i))
            .sum()
    }
    /// Bytes of layer `i`'s int8 weights: one per weight.
    fn int8_weights_len(&self, i: u32) -> usize {
        let (inputs, outputs) = self.layer_shape(i);
        outputs * inputs
    }
    /// Bytes of layer `i`'s weights in a packed file of `precision`: its first
    /// [`Dims::packed_wide_inputs`] inputs in 16-bit pairs (four bytes a pair, the last pair
    /// padded); the rest (the first layer's time features) one byte each in an int8 file, in
    /// 16-bit pairs of their own in an int16x8 one.
    pub fn packed_weights_len(&self, i: u32, precision: Precision) -> usize {
        let (inputs, outputs) = self.layer_shape(i);
        let wide = self.packed_wide_inputs(i);
        let rest = inputs - wide;
        let rest_bytes = if precision.has_int16_activations() {
            4 * rest.div_ceil(2)
        } else {
            rest
        };
        outputs * (4 * wide.div_ceil(2) + rest_bytes)
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
    /// The length of a whole file with these dimensions at `precision`.
    pub fn file_len(&self, precision: Precision) -> usize {
        HEADER_LEN + self.payload_len(precision) + CHECKSUM_LEN
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
    /// How an int8 network requantizes (byte 18; [`Rounding::Double`] for f32 models).
    pub rounding: Rounding,
    /// Whether the f32 payload ends with the activation quantizations the network was trained
    /// with (quantization-aware training; byte 19), which quantizing it keeps, and at which
    /// width. Never for int8-weight files.
    pub trained_activations: TrainedActivations,
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

    /// Checks what the header says on its own: the dimensions, the end time within the SDE's
    /// span, the int8 fields only on int8 models and the trained activations only on f32 ones.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.dims.validate()?;
        ParamError::require(
            self.precision != Precision::F32 || self.rounding == Rounding::Double,
            "rounding of an f32 model (header byte 18)",
            "0",
        )?;
        ParamError::require(
            self.precision == Precision::F32 || !self.trained_activations.present(),
            "trained activations of an int8 model (header byte 19)",
            "0",
        )?;
        self.check_t_end()
    }

    /// The activation quantizations an f32 file with [`Header::trained_activations`] ends
    /// with: the input tensor's, then each hidden layer's pre- and post-activation tensors'.
    pub fn activation_count(&self) -> usize {
        if self.trained_activations.present() {
            1 + 2 * self.dims.layers as usize
        } else {
            0
        }
    }

    /// Bytes of the payload: [`Dims::payload_len`] and the trained activations.
    pub fn payload_len(&self) -> usize {
        self.dims.payload_len(self.precision) + 8 * self.activation_count()
    }

    /// Bytes of the whole file.
    pub fn file_len(&self) -> usize {
        HEADER_LEN + self.payload_len() + CHECKSUM_LEN
    }

    /// The end time is finite and in (0, T).
    fn check_t_end(&self) -> Result<(), ModelError> {
        ParamError::require(
            self.t_end.is_finite() && self.t_end > 0.0 && self.t_end < self.sde.t_max(),
            "t_end",
            "finite and in (0, T)",
        )?;
        Ok(())
    }

    /// The header's 40 bytes, with the payload length its dimensions imply.
    pub fn encode(&self) -> Result<[u8; HEADER_LEN], ModelError> {
        self.validate()?;
        let mut bytes = [0u8; HEADER_LEN];
        let (p0, p1) = self.sde.parameters();
        let payload_len = self.payload_len() as u32;
        let d = self.dims;
        let fields: [(usize, &[u8]); 13] = [
            (0, &MAGIC),
            (4, &VERSION.to_le_bytes()),
            (6, &[self.precision.code()]),
            (7, &[0]), // activation: SiLU
            (8, &(d.dim as u16).to_le_bytes()),
            (10, &(d.fourier as u16).to_le_bytes()),
            (12, &(d.hidden as u16).to_le_bytes()),
            (14, &(d.layers as u16).to_le_bytes()),
            (
                16,
                &[
                    self.sde.code(),
                    self.output.code(),
                    self.rounding.code(),
                    self.trained_activations.code(),
                ],
            ),
            (20, &p0.to_le_bytes()),
            (24, &p1.to_le_bytes()),
            (28, &self.t_end.to_le_bytes()),
            (32, &payload_len.to_le_bytes()),
        ];
        for (at, field) in fields {
            bytes[at..at + field.len()].copy_from_slice(field);
        }
        Ok(bytes)
    }

    /// Reads and checks the header at the start of `bytes` (a whole file: the length and
    /// checksum are checked first, as nothing else is trusted before them). Returns the
    /// header and the file's contents without the trailer.
    #[inline]
    pub fn decode(bytes: &[u8]) -> Result<(Header, &[u8]), ModelError> {
        let minimum = HEADER_LEN + CHECKSUM_LEN;
        if bytes.len() < minimum {
            return Err(ModelError::Truncated {
                needed: minimum,
                available: bytes.len(),
            });
        }
        let mut header = Cursor::new(bytes);
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
        let rounding_code = header.u8()?;
        let activations_code = header.u8()?;
        let (p0, p1, t_end) = (header.f32()?, header.f32()?, header.f32()?);
        let payload_len = header.u32()? as usize;
        let reserved_end = header.u32()?;

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

        ParamError::require(reserved_end == 0, "reserved header bytes 36..40", "0")?;
        let precision = Precision::from_code(precision_code)?;
        let output = Output::from_code(output_code)?;
        let rounding = Rounding::from_code(rounding_code).ok_or(ModelError::UnknownCode {
            field: "rounding",
            value: rounding_code,
        })?;
        let trained_activations = TrainedActivations::from_code(activations_code)?;
        if activation != 0 {
            return Err(ModelError::UnknownCode {
                field: "activation",
                value: activation,
            });
        }
        let header = Header {
            precision,
            dims,
            sde: ModelSde::from_code(sde_code, p0, p1)?,
            t_end,
            output,
            rounding,
            trained_activations,
        };
        header.validate()?;
        let expected = header.payload_len();
        if payload_len != expected {
            return Err(ModelError::InconsistentSize {
                expected,
                found: payload_len,
            });
        }
        Ok((header, contents))
    }
}

/// One f32 layer's values, as [`write_file`] takes them.
#[derive(Clone, Copy, Debug)]
pub struct F32LayerValues<'a> {
    /// Weights, outputs × inputs, row-major.
    pub weights: &'a [f32],
    /// Biases.
    pub bias: &'a [f32],
}

/// One int8 layer's values, as [`write_file`] takes them.
#[derive(Clone, Copy, Debug)]
pub struct Int8LayerValues<'a> {
    /// Weights, outputs × inputs, row-major.
    pub weights: &'a [i8],
    /// Biases at scale `s_in·weight_scale[o]`.
    pub bias: &'a [i32],
    /// Per-output-channel weight scale.
    pub weight_scale: &'a [f32],
    /// A hidden layer's requantization and SiLU; `None` for the output layer.
    pub activation: Option<Int8ActivationValues<'a>>,
}

/// A hidden int8 layer's requantization and SiLU table, as [`write_file`] takes them.
#[derive(Clone, Copy, Debug)]
pub struct Int8ActivationValues<'a> {
    /// Q31 multiplier per channel.
    pub multiplier: &'a [i32],
    /// Shift per channel.
    pub shift: &'a [i8],
    /// The pre-activation tensor's quantization.
    pub pre: QuantParams,
    /// The SiLU table, of the file's precision.
    pub lut: SiluTable<'a>,
    /// The post-activation tensor's quantization (the next layer's input).
    pub post: QuantParams,
}

/// A hidden layer's SiLU table, as [`write_file`] takes it.
#[derive(Clone, Copy, Debug)]
pub enum SiluTable<'a> {
    /// [`Precision::Int8`]: entry `q + 128` for pre-activation level `q`.
    Int8(&'a [i8; 256]),
    /// [`Precision::Int16x8`]: the knots [`silu_table_int16`](super::quant::silu_table_int16)
    /// makes.
    #[cfg(feature = "int16x8")]
    Int16(&'a [i16; SILU16_ENTRIES]),
}

impl SiluTable<'_> {
    /// Bytes of an int8 table.
    pub const INT8_BYTES: usize = 256;
    /// Bytes of an int16 table.
    pub const INT16_BYTES: usize = 2 * SILU16_ENTRIES;
    /// Zero bytes after each int16 table of a packed int16x8 file, which keep the next
    /// layer's weights word-aligned for the kernels.
    pub const INT16_PACKED_PADDING: usize =
        Self::INT16_BYTES.next_multiple_of(4) - Self::INT16_BYTES;

    /// The precision whose table this is.
    fn precision(&self) -> Precision {
        match self {
            SiluTable::Int8(_) => Precision::Int8,
            #[cfg(feature = "int16x8")]
            SiluTable::Int16(_) => Precision::Int16x8,
        }
    }
}

/// The layers of a file to write, at its precision.
#[derive(Clone, Copy, Debug)]
pub enum LayerValues<'a> {
    /// f32 layers.
    F32 {
        /// The layers, the output layer last.
        layers: &'a [F32LayerValues<'a>],
        /// The activation quantizations it was trained with (see
        /// [`Header::trained_activations`]), or none.
        activations: &'a [QuantParams],
    },
    /// int8 layers (one byte a weight; int8 or int16 activations, as the header's precision
    /// says), the output layer last, after the input tensor's quantization.
    Int8 {
        /// The input tensor's quantization.
        input: QuantParams,
        /// The layers.
        layers: &'a [Int8LayerValues<'a>],
    },
}

/// What a model file holds besides its header.
#[derive(Clone, Copy, Debug)]
pub struct Payload<'a> {
    /// The data mean per dimension.
    pub mean: &'a [f32],
    /// The data standard deviation per dimension.
    pub std: &'a [f32],
    /// The Fourier frequencies.
    pub fourier: &'a [f32],
    /// The layers.
    pub layers: LayerValues<'a>,
}

/// Writes the file of `header` and `payload` to `sink`, a piece at a time, checking every
/// section's length against the header's dimensions first (a file is written whole or not at
/// all). Packed files are made from an unpacked file by [`pack`](super::packed::pack).
pub fn write_file(
    header: &Header,
    payload: &Payload<'_>,
    mut sink: impl FnMut(&[u8]),
) -> Result<(), ModelError> {
    check_lengths(header, payload)?;
    let head = header.encode()?;
    let mut crc = 0;
    let mut put = |bytes: &[u8]| {
        crc = crc32_update(crc, bytes);
        sink(bytes);
    };
    put(&head);
    let put_f32s = |put: &mut dyn FnMut(&[u8]), values: &[f32]| {
        values.iter().for_each(|v| put(&v.to_le_bytes()))
    };
    let put_params = |put: &mut dyn FnMut(&[u8]), q: QuantParams| {
        put(&q.scale.to_le_bytes());
        put(&q.zero_point.to_le_bytes());
    };
    put_f32s(&mut put, payload.mean);
    put_f32s(&mut put, payload.std);
    put_f32s(&mut put, payload.fourier);
    match payload.layers {
        LayerValues::F32 {
            layers,
            activations,
        } => {
            for layer in layers {
                put_f32s(&mut put, layer.weights);
                put_f32s(&mut put, layer.bias);
            }
            for &q in activations {
                put_params(&mut put, q);
            }
        }
        LayerValues::Int8 { input, layers } => {
            put_params(&mut put, input);
            for layer in layers {
                layer.weights.iter().for_each(|&w| put(&[w as u8]));
                layer.bias.iter().for_each(|b| put(&b.to_le_bytes()));
                put_f32s(&mut put, layer.weight_scale);
                if let Some(a) = &layer.activation {
                    a.multiplier.iter().for_each(|m| put(&m.to_le_bytes()));
                    a.shift.iter().for_each(|&s| put(&[s as u8]));
                    put_params(&mut put, a.pre);
                    match a.lut {
                        SiluTable::Int8(lut) => lut.iter().for_each(|&v| put(&[v as u8])),
                        #[cfg(feature = "int16x8")]
                        SiluTable::Int16(lut) => lut.iter().for_each(|v| put(&v.to_le_bytes())),
                    }
                    put_params(&mut put, a.post);
                }
            }
        }
    }
    sink(&crc.to_le_bytes());
    Ok(())
}

/// Every section of `payload` has the length `header`'s dimensions imply, at its precision.
fn check_lengths(header: &Header, payload: &Payload<'_>) -> Result<(), ModelError> {
    let dims = header.dims;
    let n = dims.dim as usize;
    let mismatch = |expected: usize, found: usize| ModelError::InconsistentSize { expected, found };
    for (values, expected) in [
        (payload.mean, n),
        (payload.std, n),
        (payload.fourier, dims.fourier as usize),
    ] {
        if values.len() != expected {
            return Err(mismatch(expected, values.len()));
        }
    }
    let layer_count = dims.layers as usize + 1;
    let shapes = (0..=dims.layers).map(|i| dims.layer_shape(i));
    match (header.precision, payload.layers) {
        (
            Precision::F32,
            LayerValues::F32 {
                layers,
                activations,
            },
        ) => {
            if layers.len() != layer_count {
                return Err(mismatch(layer_count, layers.len()));
            }
            if activations.len() != header.activation_count() {
                return Err(mismatch(header.activation_count(), activations.len()));
            }
            ParamError::require(
                activations.iter().all(|q| {
                    q.scale.is_finite() && q.scale > 0.0 && (-128..=127).contains(&q.zero_point)
                }),
                "trained activation quantization",
                "a finite scale > 0 and a zero point in -128..=127",
            )?;
            for (layer, (inputs, outputs)) in layers.iter().zip(shapes) {
                for (found, expected) in [
                    (layer.weights.len(), inputs * outputs),
                    (layer.bias.len(), outputs),
                ] {
                    if found != expected {
                        return Err(mismatch(expected, found));
                    }
                }
            }
        }
        (precision, LayerValues::Int8 { input, layers }) if precision.has_int8_tables() => {
            if layers.len() != layer_count {
                return Err(mismatch(layer_count, layers.len()));
            }
            ParamError::require(
                layers
                    .iter()
                    .filter_map(|l| l.activation)
                    .all(|a| a.lut.precision() == precision),
                "SiLU table",
                "of the header's precision",
            )?;
            if precision.has_int16_activations() {
                let activations = layers.iter().filter_map(|l| l.activation);
                ParamError::require(
                    core::iter::once(input)
                        .chain(activations.flat_map(|a| [a.pre, a.post]))
                        .all(|q| q.zero_point == 0),
                    "int16 activation quantization",
                    "zero point 0",
                )?;
            }
            for (i, (layer, (inputs, outputs))) in layers.iter().zip(shapes).enumerate() {
                let hidden = i < dims.layers as usize;
                ParamError::require(
                    layer.activation.is_some() == hidden,
                    "int8 layer",
                    "an activation exactly on the hidden layers",
                )?;
                let activation = layer
                    .activation
                    .map_or((outputs, outputs), |a| (a.multiplier.len(), a.shift.len()));
                for (found, expected) in [
                    (layer.weights.len(), inputs * outputs),
                    (layer.bias.len(), outputs),
                    (layer.weight_scale.len(), outputs),
                    (activation.0, outputs),
                    (activation.1, outputs),
                ] {
                    if found != expected {
                        return Err(mismatch(expected, found));
                    }
                }
            }
        }
        _ => ParamError::require(
            false,
            "payload",
            "layers of the header's precision (f32, int8 or int16x8)",
        )?,
    }
    Ok(())
}

/// The little-endian f32 in a 4-byte chunk (any other length reads as 0, which the parser
/// makes impossible).
#[inline]
pub(crate) fn f32_at(bytes: &[u8]) -> f32 {
    f32::from_le_bytes(bytes.try_into().unwrap_or_default())
}

/// Entry `i` of a little-endian i32 array (0 beyond its end).
#[inline]
pub(crate) fn i32_at(bytes: &[u8], i: usize) -> i32 {
    let start = i.saturating_mul(4);
    bytes
        .get(start..start.saturating_add(4))
        .map_or(0, |c| i32::from_le_bytes(c.try_into().unwrap_or_default()))
}

/// Reads consecutive sections of a byte slice, failing instead of panicking.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, position: 0 }
    }
    /// A cursor at the payload of a file's `contents` (header and payload).
    pub(crate) fn payload(contents: &'a [u8]) -> Self {
        Cursor {
            bytes: contents,
            position: HEADER_LEN,
        }
    }
    /// The next `len` bytes.
    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], ModelError> {
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
    pub(crate) fn quant_params(&mut self) -> Result<QuantParams, ModelError> {
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
    pub(crate) fn i32s_in(
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
    pub(crate) fn finite_f32s(&mut self, count: usize) -> Result<&'a [u8], ModelError> {
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

/// One f32 layer's sections, borrowed from the file.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct F32Layer<'a> {
    inputs: usize,
    weights: &'a [u8],
    bias: &'a [u8],
    /// A hidden layer's trained activation ranges, pre- then post-SiLU (see
    /// [`Header::trained_activations`]), which its values are clamped to.
    ranges: Option<[Interval; 2]>,
}

/// A closed interval `[lo, hi]` of reals.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Interval {
    pub(crate) lo: f32,
    pub(crate) hi: f32,
}

impl Interval {
    /// The reals an int8 tensor of quantization `q` represents, from level −128 to 127.
    pub(crate) fn of(q: QuantParams) -> Interval {
        Interval {
            lo: q.dequantize(-128),
            hi: q.dequantize(127),
        }
    }
    /// The reals a tensor whose trained int8 quantization is `q` represents at the width it
    /// was `trained` for: [`Interval::of`] for int8, the symmetric int16 grid over it
    /// ([`QuantParams::int16_over`]) for int16, from level −32 768 to 32 767.
    pub(crate) fn trained(trained: TrainedActivations, q: QuantParams) -> Interval {
        match trained {
            TrainedActivations::Int16 => {
                let q = q.int16_over();
                Interval {
                    lo: q.scale * i16::MIN as f32,
                    hi: q.scale * i16::MAX as f32,
                }
            }
            TrainedActivations::None | TrainedActivations::Int8 => Interval::of(q),
        }
    }
    /// `v` clamped to the interval.
    #[inline(always)]
    pub(crate) fn clamp(&self, v: f32) -> f32 {
        v.max(self.lo).min(self.hi)
    }
}

impl<'a> F32Layer<'a> {
    /// Inputs of the layer.
    #[inline(always)]
    pub(crate) fn inputs(&self) -> usize {
        self.inputs
    }
    /// The weights, outputs × inputs little-endian f32s, row-major.
    #[inline(always)]
    pub(crate) fn weight_bytes(&self) -> &'a [u8] {
        self.weights
    }
    /// The biases, little-endian f32s.
    #[inline(always)]
    pub(crate) fn bias_bytes(&self) -> &'a [u8] {
        self.bias
    }
    /// A hidden layer's trained ranges, pre- then post-SiLU, if the model has them.
    #[inline(always)]
    pub(crate) fn ranges(&self) -> Option<[Interval; 2]> {
        self.ranges
    }
}

/// One int8 layer's sections, borrowed from the file. Hidden layers requantize the int32
/// accumulator to the pre-activation tensor and map it through the SiLU table; the output
/// layer is dequantized from the accumulator. In a packed file the weights are in the packed
/// layout and the biases folded ([`packed`](super::packed)).
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
    /// A [`Precision::Int16x8`] hidden layer's SiLU knots (little-endian i16s; empty
    /// otherwise).
    #[cfg(feature = "int16x8")]
    lut16: &'a [u8],
    post: QuantParams,
    /// Every shift ≤ −1, and every |bias| ≤ 2²⁹ (int8) or every row's sum below 2³⁰
    /// (int16x8): the range of an installed fused activation kernel
    /// ([`WideActivationKernel`](super::packed::WideActivationKernel) and its int16 twin).
    narrow_requantization: bool,
}

impl<'a> Int8Layer<'a> {
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
    /// Weight `[o][j]` (int8, zero point 0) of an unpacked layer.
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
        #[cfg(feature = "int16x8")]
        let knots = !self.lut16.is_empty();
        #[cfg(not(feature = "int16x8"))]
        let knots = false;
        (self.lut.is_some() || knots).then_some((self.pre, self.post))
    }
    /// The SiLU table entry for pre-activation level `q` (hidden layers of an int8 model; 0
    /// otherwise).
    #[inline(always)]
    pub fn silu(&self, q: i8) -> i8 {
        // Entry `q + 128`: q's byte with its sign bit flipped.
        self.lut
            .map_or(0, |lut| lut[(q as u8 ^ 0x80) as usize] as i8)
    }
    /// The weight section's bytes.
    #[inline(always)]
    pub(crate) fn weight_bytes(&self) -> &'a [u8] {
        self.weights
    }
    /// The bias section's bytes (little-endian i32s).
    #[inline(always)]
    pub(crate) fn bias_bytes(&self) -> &'a [u8] {
        self.bias
    }
    /// The weight scales' bytes (little-endian f32s).
    #[inline(always)]
    pub(crate) fn weight_scale_bytes(&self) -> &'a [u8] {
        self.weight_scale
    }
    /// The requantization multipliers' bytes (little-endian i32s; empty for the output layer).
    #[inline(always)]
    pub(crate) fn multiplier_bytes(&self) -> &'a [u8] {
        self.multiplier
    }
    /// The shifts' bytes (i8s; empty for the output layer).
    #[inline(always)]
    pub(crate) fn shift_bytes(&self) -> &'a [u8] {
        self.shift
    }
    /// The pre-activation zero point and the SiLU table, read once for all channels (a table
    /// of zeros for the output layer, which has none).
    #[inline(always)]
    pub(crate) fn activation_table(&self) -> (i32, &'a [u8; 256]) {
        (self.pre.zero_point, self.lut.unwrap_or(&[0; 256]))
    }
    /// A [`Precision::Int16x8`] hidden layer's SiLU knots (little-endian i16s; empty for
    /// other layers).
    #[cfg(feature = "int16x8")]
    #[inline(always)]
    pub(crate) fn silu_knots(&self) -> &'a [u8] {
        self.lut16
    }
    /// The post-activation zero point (0 for the output layer).
    #[inline(always)]
    pub(crate) fn post_zero_point(&self) -> i32 {
        self.post.zero_point
    }
    /// Whether the fused activation kernels take the layer (see the field).
    #[inline(always)]
    pub(crate) fn narrow_requantization(&self) -> bool {
        self.narrow_requantization
    }
}

/// The network's layers at the file's precision. Each variant is a fixed array of borrowed
/// sections, built once per parse and then only borrowed, so their size difference costs
/// nothing at evaluation.
#[derive(Clone, Copy, Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Layers<'a> {
    F32([F32Layer<'a>; MAX_LAYERS as usize + 1]),
    Int8([Int8Layer<'a>; MAX_LAYERS as usize + 1]),
    Int8Packed([Int8Layer<'a>; MAX_LAYERS as usize + 1]),
    #[cfg(feature = "int16x8")]
    Int16x8([Int8Layer<'a>; MAX_LAYERS as usize + 1]),
    #[cfg(feature = "int16x8")]
    Int16x8Packed([Int8Layer<'a>; MAX_LAYERS as usize + 1]),
}

/// A file's payload sections, borrowed from it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sections<'a> {
    pub(crate) mean: &'a [u8],
    pub(crate) std: &'a [u8],
    pub(crate) fourier: &'a [u8],
    pub(crate) layers: Layers<'a>,
    /// The trained activation quantizations, 8 bytes each (empty without them).
    pub(crate) activations: &'a [u8],
}

/// Reads and checks the payload of a file's `contents` (header and payload, as
/// [`Header::decode`] returns them).
#[inline]
pub(crate) fn read_sections<'a>(
    header: &Header,
    contents: &'a [u8],
) -> Result<Sections<'a>, ModelError> {
    let dims = &header.dims;
    let mut payload = Cursor::payload(contents);
    let n = dims.dim as usize;
    let mean = payload.finite_f32s(n)?;
    let std = payload.finite_f32s(n)?;
    ParamError::require(
        std.chunks_exact(4).all(|c| f32_at(c) > 0.0),
        "std",
        "> 0 in every dimension",
    )?;
    let fourier = payload.finite_f32s(dims.fourier as usize)?;
    let mut layers = match header.precision {
        Precision::F32 => Layers::F32(read_f32_layers(&mut payload, dims)?),
        Precision::Int8 => Layers::Int8(read_int8_layers(&mut payload, dims, Precision::Int8)?),
        Precision::Int8Packed => {
            Layers::Int8Packed(read_int8_layers(&mut payload, dims, Precision::Int8Packed)?)
        }
        #[cfg(feature = "int16x8")]
        Precision::Int16x8 => {
            Layers::Int16x8(read_int8_layers(&mut payload, dims, Precision::Int16x8)?)
        }
        #[cfg(feature = "int16x8")]
        Precision::Int16x8Packed => Layers::Int16x8Packed(read_int8_layers(
            &mut payload,
            dims,
            Precision::Int16x8Packed,
        )?),
    };
    let start = payload.position;
    if header.trained_activations.present() {
        payload.quant_params()?; // the input's, which `Model` reads when it evaluates
        for i in 0..dims.layers as usize {
            let ranges = [
                Interval::trained(header.trained_activations, payload.quant_params()?),
                Interval::trained(header.trained_activations, payload.quant_params()?),
            ];
            if let Layers::F32(layers) = &mut layers {
                if let Some(layer) = layers.get_mut(i) {
                    layer.ranges = Some(ranges);
                }
            }
        }
    }
    let activations = contents.get(start..payload.position).unwrap_or_default();
    Ok(Sections {
        mean,
        std,
        fourier,
        layers,
        activations,
    })
}

/// Reads the f32 layers.
fn read_f32_layers<'a>(
    payload: &mut Cursor<'a>,
    dims: &Dims,
) -> Result<[F32Layer<'a>; MAX_LAYERS as usize + 1], ModelError> {
    let mut layers = [F32Layer::default(); MAX_LAYERS as usize + 1];
    for (i, layer) in layers.iter_mut().enumerate().take(dims.layers as usize + 1) {
        let (inputs, outputs) = dims.layer_shape(i as u32);
        *layer = F32Layer {
            inputs,
            weights: payload.finite_f32s(outputs * inputs)?,
            bias: payload.finite_f32s(outputs)?,
            ranges: None,
        };
    }
    Ok(layers)
}

/// Reads the input quantization and layers of an int8-weight file of `precision` (int8,
/// packed or int16x8).
fn read_int8_layers<'a>(
    payload: &mut Cursor<'a>,
    dims: &Dims,
    precision: Precision,
) -> Result<[Int8Layer<'a>; MAX_LAYERS as usize + 1], ModelError> {
    let packed = precision.is_packed();
    let int16 = precision.has_int16_activations();
    // An int16x8 row is bounded as a whole below, which is what its sums need.
    let max_bias = match precision {
        Precision::Int8Packed => MAX_PACKED_BIAS,
        _ if int16 => i32::MAX,
        _ => MAX_INT8_BIAS,
    };
    let activation_params = |payload: &mut Cursor<'a>| {
        let q = payload.quant_params()?;
        ParamError::require(
            !int16 || q.zero_point == 0,
            "int16 activation zero point",
            "0",
        )?;
        Ok::<_, ModelError>(q)
    };
    let mut input = activation_params(payload)?;
    let mut layers = [Int8Layer::default(); MAX_LAYERS as usize + 1];
    for (i, layer) in layers.iter_mut().enumerate().take(dims.layers as usize + 1) {
        let (inputs, outputs) = dims.layer_shape(i as u32);
        let weights = if packed {
            payload.take(dims.packed_weights_len(i as u32, precision))?
        } else {
            payload.take(outputs * inputs)?
        };
        let bias = payload.i32s_in(
            outputs,
            -max_bias..=max_bias,
            "int8 bias",
            "|bias| <= 2^30 (2^30 + 2^24 packed; int16x8: see its row bound)",
        )?;
        let weight_scale = payload.finite_f32s(outputs)?;
        ParamError::require(
            weight_scale.chunks_exact(4).all(|c| f32_at(c) > 0.0),
            "int8 weight scale",
            "> 0",
        )?;
        // The largest sum a row can reach, int16 levels reaching ±2¹⁵ (int8 files are
        // bounded by their biases alone).
        let mut largest_sum = 0u64;
        if int16 {
            let wide = packed.then(|| dims.packed_wide_inputs(i as u32));
            for o in 0..outputs {
                let weight_sum = super::packed::row_magnitude(weights, (inputs, outputs), wide, o);
                let sum = weight_sum * (1 << 15) + i32_at(bias, o).unsigned_abs() as u64;
                largest_sum = largest_sum.max(sum);
            }
            ParamError::require(
                largest_sum <= i32::MAX as u64,
                "int16x8 layer",
                "|bias| + 2^15·Σ|w| < 2^31 on every row",
            )?;
        }
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
            layer.pre = activation_params(payload)?;
            if int16 {
                #[cfg(feature = "int16x8")]
                {
                    layer.lut16 = payload.take(SiluTable::INT16_BYTES)?;
                    if packed {
                        let padding = payload.take(SiluTable::INT16_PACKED_PADDING)?;
                        ParamError::require(
                            padding.iter().all(|&b| b == 0),
                            "int16 table padding",
                            "zero bytes",
                        )?;
                    }
                }
            } else {
                layer.lut = payload.take(SiluTable::INT8_BYTES)?.try_into().ok();
            }
            layer.post = activation_params(payload)?;
            // What the fused kernels need: a doubled sum still fits i32.
            let narrow_sums = if int16 {
                largest_sum < 1 << 30
            } else {
                (0..outputs).all(|o| layer.bias(o).unsigned_abs() <= 1 << 29)
            };
            layer.narrow_requantization =
                layer.shift.iter().all(|&s| (s as i8) <= -1) && narrow_sums;
            input = layer.post;
        }
    }
    Ok(layers)
}
