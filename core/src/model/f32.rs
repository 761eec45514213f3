//! The f32 network's forward pass: `h₀ = [x, sin(2πtW), cos(2πtW)]`, dense layers with SiLU,
//! a linear output, on `L` points at once.
//!
//! Each output is the sum over inputs in order, then the bias: the same arithmetic on every
//! target, for every lane count and row blocking, so the bits are too.

use super::format::{f32_at, F32Layer, MAX_WIDTH};
use super::{LayerObserver, Model};
use crate::math;

/// Weight rows accumulated together: independent sums that hide the latency of the adds
/// (each row's sum keeps its own order, so the bits do not depend on it).
const ROW_BLOCK: usize = 4;

/// Weight rows the network's derivatives accumulate together: as many as the forward pass on
/// a host; one on a chip, whose registers do not hold four rows' sums for a point and its
/// tangents (measured on the Cortex-M4F: 4 rows take 1.5× the instructions of 1).
const TANGENT_ROW_BLOCK: usize = if cfg!(target_os = "none") {
    1
} else {
    ROW_BLOCK
};

/// The f32 network on `L` lanes: `a[d][p]` holds coordinate `d` of point `p` on entry;
/// returns the output rows (ε̂ before the Gaussian part). `observer` sees the input features
/// and every hidden layer.
#[cfg_attr(not(target_os = "none"), inline(always))]
pub(super) fn forward<'s, const L: usize>(
    model: &Model<'_>,
    layers: &[F32Layer<'_>],
    a: &'s mut [[f32; L]; MAX_WIDTH],
    t: f32,
    observer: &mut impl LayerObserver,
) -> &'s [[f32; L]] {
    let dims = model.header().dims;
    let n = dims.dim as usize;
    let f = model.fourier_count();
    model.for_each_time_feature(t, |j, sin, cos| {
        a[n + j] = [sin; L];
        a[n + f + j] = [cos; L];
    });
    if let Some(range) = model.trained_input_range() {
        for v in a.iter_mut().take(n).flatten() {
            *v = range.clamp(*v);
        }
    }
    for (j, row) in a.iter().enumerate().take(n + 2 * f) {
        observer.input(j, row);
    }
    let mut b = [[0.0f32; L]; MAX_WIDTH];
    let last = dims.layers as usize;
    for (i, layer) in layers.iter().enumerate().take(last + 1) {
        let hidden = (i < last).then_some(i);
        if i % 2 == 0 {
            dense::<L>(layer, a, &mut b, hidden, observer);
        } else {
            dense::<L>(layer, &b, a, hidden, observer);
        }
    }
    // L + 1 layers: the result is in `b` after an odd count of layers, in `a` otherwise.
    if last % 2 == 0 {
        a.copy_from_slice(&b);
    }
    &a[..n]
}

/// `out = act(W·input + b)` for one layer on `L` lanes, reading the weights in place; SiLU
/// for hidden layer `hidden`, which `observer` sees, and none for the output layer.
#[cfg_attr(target_os = "none", inline)]
#[cfg_attr(not(target_os = "none"), inline(always))]
fn dense<const L: usize>(
    layer: &F32Layer<'_>,
    input: &[[f32; L]; MAX_WIDTH],
    out: &mut [[f32; L]; MAX_WIDTH],
    hidden: Option<usize>,
    observer: &mut impl LayerObserver,
) {
    let inputs = layer.inputs();
    let row_bytes = 4 * inputs;
    if row_bytes == 0 {
        return;
    }
    let input = &input[..inputs.min(MAX_WIDTH)];
    let ranges = layer.ranges();
    let mut finish = |row: usize, acc: &[f32; L], bias: &[u8], o: &mut [f32; L]| {
        let bias = f32_at(bias);
        let mut pre = [0.0f32; L];
        // One loop per case, so a network without trained ranges runs the loop it always did.
        match (hidden, ranges) {
            (Some(_), None) => {
                for p in 0..L {
                    pre[p] = acc[p] + bias;
                    o[p] = pre[p] / (1.0 + math::exp(-pre[p]));
                }
            }
            (Some(_), Some([pre_range, post_range])) => {
                for p in 0..L {
                    pre[p] = pre_range.clamp(acc[p] + bias);
                    o[p] = post_range.clamp(pre[p] / (1.0 + math::exp(-pre[p])));
                }
            }
            (None, _) => {
                for p in 0..L {
                    pre[p] = acc[p] + bias;
                    o[p] = pre[p];
                }
            }
        }
        if let Some(layer) = hidden {
            observer.f32_hidden(layer, row, &pre, o);
        }
    };
    let weights = layer.weight_bytes();
    let blocks = weights.chunks_exact(ROW_BLOCK * row_bytes);
    let rest = blocks.remainder();
    let mut biases = layer.bias_bytes().chunks_exact(4);
    let mut outs = out.iter_mut().enumerate();
    for block in blocks {
        let rows: [&[u8]; ROW_BLOCK] =
            core::array::from_fn(|r| &block[r * row_bytes..(r + 1) * row_bytes]);
        let acc = accumulate::<L, ROW_BLOCK>(rows, input);
        for acc in &acc {
            if let (Some(bias), Some((row, o))) = (biases.next(), outs.next()) {
                finish(row, acc, bias, o);
            }
        }
    }
    for row in rest.chunks_exact(row_bytes) {
        let [acc] = accumulate::<L, 1>([row], input);
        if let (Some(bias), Some((row, o))) = (biases.next(), outs.next()) {
            finish(row, &acc, bias, o);
        }
    }
}

/// `Σ_j w_r[j]·input[j]` for `R` weight rows (little-endian f32 bytes, one per input) on `L`
/// lanes, each sum in input order. Zipped iterators and one accumulator per row keep the loop
/// free of bounds checks.
#[inline(always)]
fn accumulate<const L: usize, const R: usize>(
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

/// The f32 network at one point with `L` tangents carried forward (forward-mode
/// differentiation): on entry `x[d]` is the point and `tangents[d][l]` coordinate `d` of
/// tangent `l` (the time features have none); returns ε̂ (before the Gaussian part) in
/// `x[..n]` and its directional derivatives `∂ε̂_d · tangent_l` in `tangents[d][l]`. The
/// primal is the arithmetic of [`forward`] with `L = 1`, so ε̂ has its bits.
pub(super) fn tangent_forward<const L: usize>(
    model: &Model<'_>,
    layers: &[F32Layer<'_>],
    x: &mut [[f32; 1]; MAX_WIDTH],
    tangents: &mut [[f32; L]; MAX_WIDTH],
    t: f32,
) {
    let dims = model.header().dims;
    let n = dims.dim as usize;
    let f = model.fourier_count();
    model.for_each_time_feature(t, |j, sin, cos| {
        x[n + j] = [sin];
        x[n + f + j] = [cos];
        tangents[n + j] = [0.0; L];
        tangents[n + f + j] = [0.0; L];
    });
    if let Some(range) = model.trained_input_range() {
        for (v, tangent) in x.iter_mut().zip(tangents.iter_mut()).take(n) {
            if range.clamp(v[0]) != v[0] {
                v[0] = range.clamp(v[0]);
                *tangent = [0.0; L];
            }
        }
    }
    let mut y = [[0.0f32; 1]; MAX_WIDTH];
    let mut dy = [[0.0f32; L]; MAX_WIDTH];
    let last = dims.layers as usize;
    for (i, layer) in layers.iter().enumerate().take(last + 1) {
        let hidden = i < last;
        tangent_dense::<L>(layer, x, tangents, &mut y, &mut dy, hidden);
        x.copy_from_slice(&y);
        tangents.copy_from_slice(&dy);
    }
}

/// One layer of [`tangent_forward`]: `y = act(W·x + b)`, `dy = act'(W·x + b) ⊙ (W·dx)`, with
/// `dense`'s sums (each in input order, so `y` has its bits).
fn tangent_dense<const L: usize>(
    layer: &F32Layer<'_>,
    x: &[[f32; 1]; MAX_WIDTH],
    dx: &[[f32; L]; MAX_WIDTH],
    y: &mut [[f32; 1]; MAX_WIDTH],
    dy: &mut [[f32; L]; MAX_WIDTH],
    hidden: bool,
) {
    let inputs = layer.inputs();
    let row_bytes = 4 * inputs;
    if row_bytes == 0 {
        return;
    }
    let (x, dx) = (&x[..inputs.min(MAX_WIDTH)], &dx[..inputs.min(MAX_WIDTH)]);
    let ranges = layer.ranges();
    let finish = |acc: f32, dacc: &[f32; L], bias: &[u8], y: &mut [f32; 1], dy: &mut [f32; L]| {
        let pre = acc + f32_at(bias);
        if hidden {
            // SiLU and its derivative σ(z)·(1 + z·(1 − σ(z))); 0 where a trained range
            // clamps the value (`dense`'s arithmetic, so the primal has its bits).
            let clamped = ranges.map_or(pre, |[range, _]| range.clamp(pre));
            let sigmoid = 1.0 / (1.0 + math::exp(-clamped));
            let silu = clamped / (1.0 + math::exp(-clamped));
            y[0] = ranges.map_or(silu, |[_, range]| range.clamp(silu));
            let slope = if clamped == pre && y[0] == silu {
                sigmoid * (1.0 + clamped * (1.0 - sigmoid))
            } else {
                0.0
            };
            for (d, a) in dy.iter_mut().zip(dacc) {
                *d = slope * a;
            }
        } else {
            y[0] = pre;
            *dy = *dacc;
        }
    };
    let weights = layer.weight_bytes();
    let blocks = weights.chunks_exact(TANGENT_ROW_BLOCK * row_bytes);
    let rest = blocks.remainder();
    let mut biases = layer.bias_bytes().chunks_exact(4);
    let mut outs = y.iter_mut().zip(dy.iter_mut());
    // Blocks of rows, as `dense` reads them: the point's sums, then its tangents'.
    for block in blocks {
        let rows: [&[u8]; TANGENT_ROW_BLOCK] =
            core::array::from_fn(|r| &block[r * row_bytes..(r + 1) * row_bytes]);
        let acc = accumulate::<1, TANGENT_ROW_BLOCK>(rows, x);
        let dacc = accumulate::<L, TANGENT_ROW_BLOCK>(rows, dx);
        for (acc, dacc) in acc.iter().zip(&dacc) {
            if let (Some(bias), Some((y, dy))) = (biases.next(), outs.next()) {
                finish(acc[0], dacc, bias, y, dy);
            }
        }
    }
    for row in rest.chunks_exact(row_bytes) {
        let [acc] = accumulate::<1, 1>([row], x);
        let [dacc] = accumulate::<L, 1>([row], dx);
        if let (Some(bias), Some((y, dy))) = (biases.next(), outs.next()) {
            finish(acc[0], &dacc, bias, y, dy);
        }
    }
}
