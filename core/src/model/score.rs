//! A model as a [`Score`]: `s(x, t) = −ε̂(x, t)/σ(t)` with σ from the model's SDE, in the
//! model's normalised coordinates.
//!
//! [`NeuralScore`] runs any precision; [`Int8Score`] and [`PackedScore`] run one each, so
//! that firmware links only the evaluator its model needs.

use super::format::{Layers, MAX_WIDTH};
use super::{int8, packed, Model, ModelError, ModelSde};
use crate::error::ParamError;
use crate::observe::NullObserver;
use crate::score::Score;
use crate::sde::LinearSde;

/// Points the network evaluates together in a batch.
pub const LANES: usize = 16;

/// `eps` with the Gaussian part `gain·x` added back, if the model has one.
#[inline(always)]
pub(super) fn with_gaussian(eps: f32, gain: Option<f32>, x: f32) -> f32 {
    match gain {
        Some(c) => eps + c * x,
        None => eps,
    }
}

/// A lane buffer as the packed evaluation's [`packed::Points`]: point `p` is column `p`.
pub(super) struct Lanes<'a, const L: usize>(pub(super) &'a mut [[f32; L]; MAX_WIDTH]);

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

/// `−ε̂/σ(t)` for every point of `xs` into `out` when `model` is packed (which shares the
/// time features' work between the points, without a lane buffer); false otherwise.
fn packed_scores<const N: usize>(
    model: &Model<'_>,
    xs: &[[f32; N]],
    t: f32,
    out: &mut [[f32; N]],
) -> bool {
    let header = model.header();
    let mut points = ScorePoints {
        xs,
        out,
        sigma: header.sde.sigma(t),
        gain: header.gaussian_gain(t),
    };
    match model.layers() {
        Layers::Int8Packed(layers) => {
            packed::forward::<packed::Int8Activations>(model, layers, t, &mut points)
        }
        #[cfg(feature = "int16x8")]
        Layers::Int16x8Packed(layers) => {
            packed::forward::<packed::Int16Activations>(model, layers, t, &mut points)
        }
        _ => return false,
    }
    true
}

/// A packed model ([`Precision::Int8Packed`](super::Precision::Int8Packed), or
/// `Int16x8Packed` with the `int16x8` feature) as a [`Score`] on `[f32; N]`: the bits
/// [`NeuralScore`] gives for it, with only the packed evaluator reachable, so that firmware
/// running a packed model leaves the f32 and unpacked evaluators out of its flash.
#[derive(Clone, Copy, Debug)]
pub struct PackedScore<'a, const N: usize> {
    model: Model<'a>,
}

impl<'a, const N: usize> PackedScore<'a, N> {
    /// The score of `model`, which must be packed and of dimension `N`.
    pub fn new(model: Model<'a>) -> Result<Self, ModelError> {
        NeuralScore::<N>::new(model)?;
        ParamError::require(
            model.header().precision.is_packed(),
            "model",
            "a packed model (precision 2 or 4)",
        )?;
        Ok(PackedScore { model })
    }
    /// The model's SDE.
    pub fn sde(&self) -> ModelSde {
        self.model.header().sde
    }
}

impl<const N: usize> Score<N> for PackedScore<'_, N> {
    fn score(&self, x: &[f32; N], t: f32) -> [f32; N] {
        let mut out = [[0.0f32; N]; 1];
        packed_scores(&self.model, core::slice::from_ref(x), t, &mut out);
        out[0]
    }

    fn score_batch(&self, xs: &[[f32; N]], t: f32, out: &mut [[f32; N]]) {
        packed_scores(&self.model, xs, t, out);
    }
}

/// An unpacked int8 model ([`Precision::Int8`](super::Precision::Int8) or `Int16x8`) as a
/// [`Score`] on `[f32; N]`: the bits [`NeuralScore`] gives for it, with only the integer
/// evaluator reachable, so that firmware running such a model leaves the f32 and packed
/// evaluators out of its flash.
#[derive(Clone, Copy, Debug)]
pub struct Int8Score<'a, const N: usize> {
    score: NeuralScore<'a, N>,
}

impl<'a, const N: usize> Int8Score<'a, N> {
    /// The score of `model`, which must be int8 (unpacked) or int16x8 and of dimension `N`.
    pub fn new(model: Model<'a>) -> Result<Self, ModelError> {
        let score = NeuralScore::<N>::new(model)?;
        ParamError::require(
            model.header().precision.has_int8_tables(),
            "model",
            "an int8 model (precision 1) or an int16x8 one (precision 3)",
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
                match model.layers() {
                    Layers::Int8(layers) => {
                        int8::forward::<1, int8::ByteLevels>(
                            model,
                            layers,
                            a,
                            t,
                            &mut NullObserver,
                        );
                    }
                    #[cfg(feature = "int16x8")]
                    Layers::Int16x8(layers) => {
                        int8::forward::<1, int8::Int16Levels>(
                            model,
                            layers,
                            a,
                            t,
                            &mut NullObserver,
                        );
                    }
                    _ => {}
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
        let dim = model.header().dims.dim;
        if dim as usize != N {
            return Err(ModelError::DimensionMismatch {
                model: dim,
                expected: N as u32,
            });
        }
        Ok(NeuralScore { model, lanes: None })
    }
    /// The score of `model` on a state padded to `N` coordinates beyond the model's
    /// dimension: the data's coordinates get the bits [`NeuralScore::new`] gives a state of
    /// the model's dimension, the padding a score of 0 (and a padded state keeps it at 0; see
    /// [`GaussianStream::with_coordinates`](crate::GaussianStream::with_coordinates)). Hosts
    /// only.
    #[cfg(not(target_os = "none"))]
    pub fn padded(model: Model<'a>) -> Result<Self, ModelError> {
        let dim = model.header().dims.dim;
        if dim as usize > N {
            return Err(ModelError::DimensionMismatch {
                model: dim,
                expected: N as u32,
            });
        }
        Ok(NeuralScore { model, lanes: None })
    }
    /// The coordinates the network gives: N, or the model's dimension in a padded state.
    #[inline(always)]
    fn outputs(&self) -> usize {
        #[cfg(target_os = "none")]
        return N;
        #[cfg(not(target_os = "none"))]
        return self.model.header().dims.dim as usize;
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
        self.model.header().sde
    }
    /// The noise prediction ε̂(x, t).
    pub fn predict_noise(&self, x: &[f32; N], t: f32) -> [f32; N] {
        let mut out = [0.0f32; N];
        // Cannot fail: N was checked against the model in `new`.
        let _ = self.model.predict_noise(x, t, &mut out);
        out
    }

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
        let header = self.model.header();
        let sigma = header.sde.sigma(t);
        let gain = header.gaussian_gain(t);
        forward(&mut a);
        let eps = &a[..self.outputs().min(N).min(MAX_WIDTH)];
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
        if packed_scores(&self.model, core::slice::from_ref(x), t, &mut out) {
            return out[0];
        }
        self.score_lanes::<1>(core::slice::from_ref(x), t, &mut out, |a| {
            self.model.forward::<1>(a, t, &mut NullObserver);
        });
        out[0]
    }

    fn score_batch(&self, xs: &[[f32; N]], t: f32, out: &mut [[f32; N]]) {
        if packed_scores(&self.model, xs, t, out) {
            // The packed evaluation writes the model's coordinates only.
            #[cfg(not(target_os = "none"))]
            for o in out.iter_mut() {
                o[self.outputs().min(N)..].fill(0.0);
            }
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
                        self.model.forward::<LANES>(a, t, &mut NullObserver);
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
