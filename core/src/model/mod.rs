//! The model file (`.tsm`) and the tiny score network it carries.
//!
//! The network is an MLP that predicts the noise: `h₀ = [x, sin(2πtW), cos(2πtW)]`, `L` hidden
//! layers of width `H` with SiLU, a linear output of size `N`; [`NeuralScore`] turns it into
//! the score `−ε̂/σ(t)` of the model's SDE, so every sampler takes it unchanged.
//!
//! The module is cut by job:
//! - [`format`]: the byte layout, read ([`Model::parse`]) and written ([`format::write_file`]);
//! - `f32`, `int8` and [`packed`]: the three forward passes, one per precision (the packed
//!   one is the int8 network's arithmetic in the layout of the Cortex-M4's SMLAD kernels);
//! - [`quant`]: the integer arithmetic the int8 passes share;
//! - `score`: the [`Score`](crate::Score) adapters ([`NeuralScore`], [`Int8Score`],
//!   [`PackedScore`]).
//!
//! [`Model::parse`] checks everything before returning — length, magic, version, checksum,
//! codes, dimensions, section sizes, that every float is finite — so evaluation never meets a
//! surprise, and no input panics the parser. The weights are not copied: the model borrows the
//! file's bytes (from flash on a chip) and reads each little-endian float in place, so the
//! bytes need no alignment.

mod crc32;
mod error;
mod f32;
pub mod format;
mod int8;
pub mod packed;
pub mod quant;
mod score;

pub use crc32::crc32;
pub use error::ModelError;
pub use format::{
    Dims, Header, Int8Layer, ModelSde, Output, Precision, TrainedActivations, CHECKSUM_LEN,
    HEADER_LEN, MAGIC, MAX_DIM, MAX_FOURIER, MAX_HIDDEN, MAX_LAYERS, MAX_WIDTH, VERSION,
};
pub use quant::{QuantParams, Rounding};
pub use score::{Int8Score, LanesForward, NeuralScore, PackedScore, LANES};

use crate::error::ParamError;
use crate::observe::NullObserver;
use format::{f32_at, Layers, Sections};
use quant::time_feature;

/// What a forward pass shows of each layer as it runs: the f32 network's input features and
/// hidden layers before and after SiLU, the int8 network's accumulators. Calibration
/// (`tinyscore quantize`) measures the network through it, so there is one forward pass per
/// precision. Each call carries one row (a feature or a channel) for every point of the pass.
///
/// Every method does nothing by default; [`NullObserver`] observes nothing, and its calls
/// compile to nothing. The packed evaluator, whose kernels fuse the accumulation with the
/// activation, reports nothing.
pub trait LayerObserver {
    /// Input feature `feature` (coordinates, then the sines, then the cosines) of the f32
    /// network, one value per point.
    #[inline(always)]
    fn input(&mut self, feature: usize, values: &[f32]) {
        let _ = (feature, values);
    }
    /// Channel `channel` of the f32 network's hidden layer `layer` (from 0): its
    /// pre-activation and its SiLU, one value per point.
    #[inline(always)]
    fn f32_hidden(&mut self, layer: usize, channel: usize, pre: &[f32], post: &[f32]) {
        let _ = (layer, channel, pre, post);
    }
    /// Channel `channel` of the int8 network's layer `layer` (hidden layers from 0, then the
    /// output layer): its int32 accumulator (bias included), one value per point.
    #[inline(always)]
    fn int8_accumulators(&mut self, layer: usize, channel: usize, accumulators: &[i32]) {
        let _ = (layer, channel, accumulators);
    }
}

impl LayerObserver for NullObserver {}

/// A parsed model: the header and its sections, borrowing the file's bytes.
#[derive(Clone, Copy, Debug)]
pub struct Model<'a> {
    header: Header,
    sections: Sections<'a>,
    kernels: packed::Kernels,
}

impl<'a> Model<'a> {
    /// Parses and checks a model file.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ModelError> {
        let (header, contents) = Header::decode(bytes)?;
        let sections = format::read_sections(&header, contents)?;
        Ok(Model {
            header,
            sections,
            kernels: packed::Kernels::PORTABLE,
        })
    }

    /// The model with `kernels` running a packed model ([`Precision::is_packed`]); other
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
        (
            read(self.sections.mean),
            read(self.sections.std).max(f32::MIN_POSITIVE),
        )
    }

    /// The Fourier frequencies W.
    pub fn frequencies(&self) -> impl Iterator<Item = f32> + 'a {
        self.sections.fourier.chunks_exact(4).map(f32_at)
    }

    /// The activation quantizations an f32 network was trained with
    /// ([`Header::trained_activations`]): the input tensor's, then each hidden layer's pre- and
    /// post-activation tensors'; none for other models.
    pub fn trained_activations(&self) -> impl Iterator<Item = QuantParams> + 'a {
        self.sections
            .activations
            .chunks_exact(8)
            .map(|q| QuantParams {
                scale: f32_at(&q[..4]),
                zero_point: format::i32_at(&q[4..], 0),
            })
    }

    /// The range an f32 network with trained activations clamps its data coordinates to: the
    /// reals its input quantization represents at the width it was trained for (as the
    /// integer network clamps them).
    #[inline(always)]
    fn trained_input_range(&self) -> Option<format::Interval> {
        let trained = self.header.trained_activations;
        match self.sections.layers {
            Layers::F32(_) => self
                .trained_activations()
                .next()
                .map(|q| format::Interval::trained(trained, q)),
            _ => None,
        }
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
        let layer = match &self.sections.layers {
            Layers::F32(layers) => layers.get(i as usize).copied().unwrap_or_default(),
            _ => Default::default(),
        };
        (
            layer.weight_bytes().chunks_exact(4).map(f32_at),
            layer.bias_bytes().chunks_exact(4).map(f32_at),
        )
    }

    /// Layer `i` of an int8 or int16x8 model; `None` for f32 and packed models and beyond
    /// the last layer.
    pub fn int8_layer(&self, i: u32) -> Option<Int8Layer<'a>> {
        match &self.sections.layers {
            Layers::Int8(layers) if i <= self.header.dims.layers => layers.get(i as usize).copied(),
            #[cfg(feature = "int16x8")]
            Layers::Int16x8(layers) if i <= self.header.dims.layers => {
                layers.get(i as usize).copied()
            }
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
        self.predict_noise_observed(x, t, out, &mut NullObserver)
    }

    /// [`Model::predict_noise`], with `observer` shown each layer as the network runs (f32
    /// and int8 models; see [`LayerObserver`]).
    pub fn predict_noise_observed(
        &self,
        x: &[f32],
        t: f32,
        out: &mut [f32],
        observer: &mut impl LayerObserver,
    ) -> Result<(), ModelError> {
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
        let h = self.forward::<1>(&mut a, t, observer);
        for ((o, row), x) in out.iter_mut().zip(h).zip(x) {
            *o = score::with_gaussian(row[0], gain, *x);
        }
        Ok(())
    }

    /// ε̂(x, t) and its derivatives along `L` directions (forward-mode, exact up to f32
    /// rounding): returns ε̂ and, for each direction `v_l`, `(∂ε̂/∂x)·v_l`. ε̂ has the bits of
    /// [`Model::predict_noise`]. `N` may exceed the model's dimension (a padded state): the
    /// padding's outputs are 0. Only an f32 network has derivatives: an int8 one is refused.
    pub fn predict_noise_jvp<const N: usize, const L: usize>(
        &self,
        x: &[f32; N],
        t: f32,
        directions: &[[f32; N]; L],
    ) -> Result<([f32; N], [[f32; N]; L]), ModelError> {
        let n = self.header.dims.dim as usize;
        if n > N {
            return Err(ModelError::DimensionMismatch {
                model: n as u32,
                expected: N as u32,
            });
        }
        let Layers::F32(layers) = &self.sections.layers else {
            return Err(ParamError {
                parameter: "model",
                requirement: "an f32 network (an int8 network has no derivative)",
            }
            .into());
        };
        let mut a = [[0.0f32; 1]; MAX_WIDTH];
        let mut tangents = [[0.0f32; L]; MAX_WIDTH];
        for d in 0..n.min(MAX_WIDTH) {
            a[d][0] = x[d];
            for (l, direction) in directions.iter().enumerate() {
                tangents[d][l] = direction[d];
            }
        }
        f32::tangent_forward::<L>(self, layers, &mut a, &mut tangents, t);
        let gain = self.header.gaussian_gain(t);
        let mut eps = [0.0f32; N];
        let mut derivatives = [[0.0f32; N]; L];
        for d in 0..n.min(MAX_WIDTH) {
            eps[d] = score::with_gaussian(a[d][0], gain, x[d]);
            for (l, derivative) in derivatives.iter_mut().enumerate() {
                derivative[d] = score::with_gaussian(tangents[d][l], gain, directions[l][d]);
            }
        }
        Ok((eps, derivatives))
    }

    /// Runs the network on `L` points at once (one time `t`): `a[d][p]` holds coordinate `d`
    /// of point `p` on entry; returns the output rows. Each weight is read once for all lanes
    /// and the loops over lanes are innermost, so they vectorise; every lane's arithmetic is
    /// the same as with `L = 1`.
    ///
    /// Never inlined: it does not depend on the data dimension, so the samplers of every
    /// dimension share one copy.
    #[inline(never)]
    fn forward<'s, const L: usize>(
        &self,
        a: &'s mut [[f32; L]; MAX_WIDTH],
        t: f32,
        observer: &mut impl LayerObserver,
    ) -> &'s [[f32; L]] {
        self.forward_inline(a, t, observer)
    }

    /// The network on [`LANES`] points at once, as the batched score runs it: on entry
    /// `a[d][p]` holds coordinate `d` of point `p`, on return `a[d][p]` holds ε̂'s coordinate
    /// `d` for point `p`. Always inlined, so that a caller compiled for other vector
    /// instructions (a `#[target_feature]` function) gets its own copy of the whole network;
    /// see [`NeuralScore::with_lanes`]. The arithmetic is the same scalar f32 and integer
    /// operations whatever the instructions, so the bits are too.
    #[inline(always)]
    pub fn forward_lanes(&self, a: &mut [[f32; LANES]; MAX_WIDTH], t: f32) {
        self.forward_inline(a, t, &mut NullObserver);
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
        observer: &mut impl LayerObserver,
    ) -> &'s [[f32; L]] {
        match &self.sections.layers {
            Layers::F32(layers) => f32::forward(self, layers, a, t, observer),
            Layers::Int8(layers) => {
                int8::forward::<L, int8::ByteLevels>(self, layers, a, t, observer)
            }
            #[cfg(feature = "int16x8")]
            Layers::Int16x8(layers) => {
                int8::forward::<L, int8::Int16Levels>(self, layers, a, t, observer)
            }
            Layers::Int8Packed(layers) => {
                packed::forward::<packed::Int8Activations>(self, layers, t, &mut score::Lanes(a));
                let n = (self.header.dims.dim as usize).min(MAX_WIDTH);
                &a[..n]
            }
            #[cfg(feature = "int16x8")]
            Layers::Int16x8Packed(layers) => {
                packed::forward::<packed::Int16Activations>(self, layers, t, &mut score::Lanes(a));
                let n = (self.header.dims.dim as usize).min(MAX_WIDTH);
                &a[..n]
            }
        }
    }

    /// Calls `feature(j, sin(2πtWⱼ), cos(2πtWⱼ))` for each frequency `j` that fits the scratch
    /// space (all of them in a parsed model; the bound only keeps indexing provably in range).
    #[inline(always)]
    fn for_each_time_feature(&self, t: f32, mut feature: impl FnMut(usize, f32, f32)) {
        let f = self.fourier_count();
        for (j, w) in self.sections.fourier.chunks_exact(4).take(f).enumerate() {
            let (sin, cos) = time_feature(t, f32_at(w));
            feature(j, sin, cos);
        }
    }

    /// The number of Fourier frequencies that fit the scratch space.
    #[inline(always)]
    fn fourier_count(&self) -> usize {
        let n = self.header.dims.dim as usize;
        (self.header.dims.fourier as usize).min((MAX_WIDTH - n) / 2)
    }

    /// The layers at the file's precision.
    #[inline(always)]
    fn layers(&self) -> &Layers<'a> {
        &self.sections.layers
    }

    /// The kernels a packed model runs.
    #[inline(always)]
    fn kernels(&self) -> &packed::Kernels {
        &self.kernels
    }
}
