//! The int8-weight network's forward pass, integer-only between the input quantization and
//! the dequantization of ε̂, on `L` points at once, with int8 or int16 activations.
//!
//! The activations are held as offsets `q − zero_point` in i16 (in −255..=255 for int8; the
//! level itself for int16, whose zero point is 0), which is the TFLite formula
//! `Σ w·(q + input_offset)` with the offset applied once per input. Each sum is exact in i32
//! (the parser bounds the biases), so the order of the work never changes the bits.

use super::format::{Int8Layer, MAX_WIDTH};
use super::quant::{requantize_with, QuantParams, Rounding};
use super::{LayerObserver, Model};

/// Weight rows accumulated together (independent sums; each row's sum is exact).
const ROW_BLOCK: usize = 4;

/// A hidden layer's requantization target and SiLU table.
#[derive(Clone, Copy)]
pub(crate) struct Activation<'a> {
    pub(crate) pre: i32,
    pub(crate) lut: &'a [u8; 256],
    pub(crate) rounding: Rounding,
}

impl<'a> Activation<'a> {
    /// The activation of `layer`, read once for all its channels, rounding as the file says.
    #[inline(always)]
    pub(crate) fn of(layer: &Int8Layer<'a>, rounding: Rounding) -> Self {
        let (pre, lut) = layer.activation_table();
        Activation { pre, lut, rounding }
    }
    /// A channel's output level for accumulator `acc`: requantized with the channel's
    /// `(multiplier, shift)` to the pre-activation tensor, clamped to int8, SiLU by table.
    #[inline(always)]
    pub(crate) fn level(&self, acc: i32, multiplier: i32, shift: i32) -> i8 {
        let requantized = requantize_with(self.rounding, acc, multiplier, shift);
        // Saturating: a requantization that saturates (a positive shift) must clamp, not wrap.
        let level = requantized.saturating_add(self.pre).clamp(-128, 127);
        // Entry `level + 128`: the level's byte with its sign bit flipped.
        self.lut[(level as u8 ^ 0x80) as usize] as i8
    }
}

/// How a precision holds its activations: the offsets the dense layers multiply, made from
/// reals (the input) and from a hidden layer's accumulators.
pub(crate) trait Levels<'a> {
    /// A hidden layer's activation, read once for all its channels.
    fn of(layer: &Int8Layer<'a>, rounding: Rounding) -> Self;
    /// The offset of real `real` in tensor `q`.
    fn input(q: QuantParams, real: f32) -> i16;
    /// A channel's output offset for accumulator `acc`.
    fn offset(&self, acc: i32, multiplier: i32, shift: i32) -> i16;
}

/// int8 activations ([`Precision::Int8`](super::Precision::Int8)): SiLU by byte table.
pub(crate) struct ByteLevels<'a> {
    activation: Activation<'a>,
    post: i32,
}

impl<'a> Levels<'a> for ByteLevels<'a> {
    #[inline(always)]
    fn of(layer: &Int8Layer<'a>, rounding: Rounding) -> Self {
        ByteLevels {
            activation: Activation::of(layer, rounding),
            post: layer.post_zero_point(),
        }
    }
    #[inline(always)]
    fn input(q: QuantParams, real: f32) -> i16 {
        (q.quantize(real) as i32 - q.zero_point) as i16
    }
    #[inline(always)]
    fn offset(&self, acc: i32, multiplier: i32, shift: i32) -> i16 {
        (self.activation.level(acc, multiplier, shift) as i32 - self.post) as i16
    }
}

/// int16 activations ([`Precision::Int16x8`](super::Precision::Int16x8)): requantized to the
/// int16 range, SiLU by interpolated table; every zero point is 0.
#[cfg(feature = "int16x8")]
pub(crate) struct Int16Levels<'a> {
    knots: &'a [u8],
    rounding: Rounding,
}

#[cfg(feature = "int16x8")]
impl<'a> Levels<'a> for Int16Levels<'a> {
    #[inline(always)]
    fn of(layer: &Int8Layer<'a>, rounding: Rounding) -> Self {
        Int16Levels {
            knots: layer.silu_knots(),
            rounding,
        }
    }
    #[inline(always)]
    fn input(q: QuantParams, real: f32) -> i16 {
        q.quantize_int16(real)
    }
    #[inline(always)]
    fn offset(&self, acc: i32, multiplier: i32, shift: i32) -> i16 {
        let requantized = requantize_with(self.rounding, acc, multiplier, shift);
        let level = requantized.clamp(i16::MIN as i32, i16::MAX as i32) as i16;
        super::quant::silu_int16(self.knots, level)
    }
}

/// The levels of the time features, as `level` quantizes a real: `put(N + j, level(sin))`
/// and `put(N + F + j, level(cos))` for each frequency `j`, the places they take in the
/// network's input.
#[inline(always)]
pub(super) fn for_each_time_level<T>(
    model: &Model<'_>,
    t: f32,
    level: impl Fn(f32) -> T,
    mut put: impl FnMut(usize, T),
) {
    let n = model.header().dims.dim as usize;
    let f = model.fourier_count();
    model.for_each_time_feature(t, |j, sin, cos| {
        put(n + j, level(sin));
        put(n + f + j, level(cos));
    });
}

/// The int8-weight network on `L` lanes, its activations held as `A` says: `a[d][p]` holds
/// coordinate `d` of point `p` on entry; the dequantized output (ε̂ before the Gaussian part)
/// is written over the first N rows, which are returned. `observer` sees every layer's
/// accumulators.
#[cfg_attr(not(target_os = "none"), inline(always))]
pub(super) fn forward<'s, 'l, const L: usize, A: Levels<'l>>(
    model: &Model<'_>,
    layers: &[Int8Layer<'l>],
    a: &'s mut [[f32; L]; MAX_WIDTH],
    t: f32,
    observer: &mut impl LayerObserver,
) -> &'s [[f32; L]] {
    let dims = model.header().dims;
    let n = dims.dim as usize;
    let input = layers.first().map(|l| l.input()).unwrap_or_default();
    let mut x = [[0i16; L]; MAX_WIDTH];
    for (xd, ad) in x.iter_mut().zip(a.iter()).take(n) {
        for p in 0..L {
            xd[p] = A::input(input, ad[p]);
        }
    }
    for_each_time_level(model, t, |v| A::input(input, v), |i, q| x[i] = [q; L]);
    let mut y = [[0i16; L]; MAX_WIDTH];
    let last = dims.layers as usize;
    let rounding = model.header().rounding;
    for (i, layer) in layers.iter().enumerate().take(last) {
        let activation = A::of(layer, rounding);
        if i % 2 == 0 {
            dense_silu::<L, A>(i, layer, &activation, &x, &mut y, observer);
        } else {
            dense_silu::<L, A>(i, layer, &activation, &y, &mut x, observer);
        }
    }
    let hidden = if last % 2 == 0 { &x } else { &y };
    if let Some(output) = layers.get(last) {
        dense_dequantize::<L>(last, output, hidden, a, observer);
    }
    &a[..n]
}

/// The accumulators `bias_r + Σ_j w_r[j]·input[j]` of `R` int8 weight rows on `L` lanes.
/// Exact in i32: the parser bounds the bias so no sum overflows. The rows are walked by
/// zipped iterators with one accumulator per row, so the loop carries no bounds checks and
/// keeps its sums in registers even when optimised for size (as on a chip).
#[inline(always)]
fn accumulate<const L: usize, const R: usize>(
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
fn for_each_row<const L: usize>(
    layer: &Int8Layer<'_>,
    input: &[[i16; L]; MAX_WIDTH],
    mut finish: impl FnMut(usize, &[i32; L]),
) {
    let width = layer.inputs();
    if width == 0 {
        return;
    }
    let input = &input[..width.min(MAX_WIDTH)];
    let blocks = layer.weight_bytes().chunks_exact(ROW_BLOCK * width);
    let rest = blocks.remainder();
    let mut o = 0;
    for block in blocks {
        let rows: [&[u8]; ROW_BLOCK] = core::array::from_fn(|r| &block[r * width..(r + 1) * width]);
        let bias = core::array::from_fn(|r| layer.bias(o + r));
        for acc in &accumulate::<L, ROW_BLOCK>(rows, bias, input) {
            finish(o, acc);
            o += 1;
        }
    }
    for row in rest.chunks_exact(width) {
        let [acc] = accumulate::<L, 1>([row], [layer.bias(o)], input);
        finish(o, &acc);
        o += 1;
    }
}

/// Hidden layer `index`: accumulate, requantize to the pre-activation tensor, SiLU by table,
/// store as offsets from the post-activation zero point.
#[cfg_attr(target_os = "none", inline)]
#[cfg_attr(not(target_os = "none"), inline(always))]
fn dense_silu<'l, const L: usize, A: Levels<'l>>(
    index: usize,
    layer: &Int8Layer<'_>,
    activation: &A,
    input: &[[i16; L]; MAX_WIDTH],
    out: &mut [[i16; L]; MAX_WIDTH],
    observer: &mut impl LayerObserver,
) {
    for_each_row::<L>(layer, input, |o, acc| {
        observer.int8_accumulators(index, o, acc);
        let (multiplier, shift) = layer.requantization(o).unwrap_or_default();
        if let Some(out) = out.get_mut(o) {
            for p in 0..L {
                out[p] = activation.offset(acc[p], multiplier, shift);
            }
        }
    });
}

/// The output layer (`index`), dequantized from the accumulator: `ε̂ = acc·(s_in·s_w)`.
#[cfg_attr(target_os = "none", inline)]
#[cfg_attr(not(target_os = "none"), inline(always))]
fn dense_dequantize<const L: usize>(
    index: usize,
    layer: &Int8Layer<'_>,
    input: &[[i16; L]; MAX_WIDTH],
    out: &mut [[f32; L]; MAX_WIDTH],
    observer: &mut impl LayerObserver,
) {
    for_each_row::<L>(layer, input, |o, acc| {
        observer.int8_accumulators(index, o, acc);
        let scale = layer.input().scale * layer.weight_scale(o);
        if let Some(out) = out.get_mut(o) {
            for p in 0..L {
                out[p] = acc[p] as f32 * scale;
            }
        }
    });
}
