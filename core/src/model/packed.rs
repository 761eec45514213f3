//! The int8 network in the layout made for the Cortex-M4's dual 16-bit multiply–accumulate
//! (`SMLAD`): precision 2, "packed", written from an int8 file by [`pack_int8`] when firmware
//! is built for a core with the DSP extension.
//!
//! # Why a layout
//! `SMLAD acc, a, b` adds `a.lo·b.lo + a.hi·b.hi` (signed 16-bit halves) to `acc`: two MACs in
//! one instruction, but int8 weights must first be widened to 16 bits. CMSIS-NN widens each
//! weight word with two `SXTB16`, which makes four instructions for four MACs. Here each word's
//! even bytes are stored offset by 128 (XOR 0x80), so for the word `W = [w₀, w₁, w₂, w₃]` of
//! inputs `q₀..q₃` the raw word and one `UXTB16` suffice:
//!
//! ```text
//! W.lo = 256·w₁ + (w₀ + 128)      UXTB16(W).lo = w₀ + 128      (and .hi likewise for w₂, w₃)
//! A = (q₁ − 127, q₃ − 127)        B = (256·q₀ + 127 − q₁, 256·q₂ + 127 − q₃)
//! SMLAD(W, A) + SMLAD(UXTB16(W), B) = 256·(Σ wᵢqᵢ − 127·(w₁ + w₃) + 128·(q₀ + q₂))
//! ```
//!
//! A and B fit 16 bits for int8 `q` and depend only on the input, so they are made once per
//! layer input ([`operands`]); the `−127·Σw_odd` term is a per-row constant folded into the
//! stored bias (with the input zero point's `−z·Σw`), and `128·Σq_even` is one number per
//! input vector, taken off by starting every row's sum at `−256·128·Σq_even`. Three
//! instructions for four MACs; with four rows interleaved word by word the weights of one
//! step load with a single `LDM`.
//!
//! # Layout of one layer (`out` rows, `in` inputs, `K = ⌊in/4⌋` words per row)
//! Rows go in groups of four ([`GROUP_ROWS`]; the last group holds what remains). A group of
//! `R` rows is its word part — word `k` of each of its rows in turn, `(k·R + r)·4` bytes in,
//! even bytes XOR 0x80 — then its tail: each row's last `in mod 4` weights, plain. The bias
//! section holds the folded constant `bias − z_in·Σⱼwⱼ + 127·Σ_{k<K}(w_{4k+1} + w_{4k+3})`.
//! Everything else is as in precision 1, and the file is the same size.
//!
//! The arithmetic is exact in i32 (see the bounds below), so the packed network's outputs are
//! bit-identical to the int8 network's, whichever kernel runs it.
//!
//! # Bounds
//! With `|q| ≤ 128`, `|w| ≤ 128` and at most 256 inputs, `|Σwq| < 2²²` and the two correction
//! terms are below 2²¹ each, so the `SMLAD` accumulator (wrapping on the way) ends below 2³¹
//! and exactly 256 times the corrected sum, which an arithmetic shift by 8 recovers.

use super::{
    crc32, f32_at, Activation, Int8Layer, Model, ModelError, Precision, CHECKSUM_LEN, MAX_WIDTH,
};
use crate::error::ParamError;

/// Rows one kernel call multiplies together (interleaved word by word in the layout).
pub const GROUP_ROWS: usize = 4;

/// Largest |folded bias| a packed file may hold: an int8 bias (≤ 2³⁰) plus the folded terms
/// (`|z·Σw| + 127·|Σw_odd|` < 2²⁴ for 256 inputs).
pub(crate) const MAX_PACKED_BIAS: i32 = (1 << 30) + (1 << 24);

/// A kernel for the rows of a packed layer with `inputs` inputs and weight section
/// `weights`: for every row `o < acc.len()` it sums `SMLAD(W_k, A_k) + SMLAD(UXTB16(W_k), B_k)`
/// (wrapping, from `init`) over the words `k` in `words`, where `W_k` is the little-endian
/// word `k` of row `o` in the layout (in the group of four rows holding `o`, or in the last,
/// smaller group) and `A_k, B_k = operands[2j], operands[2j + 1]` for `j = k − words.start`,
/// and sets `acc[o]` to that sum shifted right by 8 (arithmetic) plus the little-endian i32
/// `o` of `starts` (wrapping; `starts` holds one for every row). The rows' tails are not the
/// kernel's.
///
/// [`rows_portable`] is the reference; firmware for a Cortex-M4 installs an assembly one
/// with [`Model::with_kernels`], which must give the same bits.
pub type RowsKernel = fn(
    weights: &[u8],
    inputs: usize,
    words: core::ops::Range<usize>,
    operands: &[u32],
    init: i32,
    starts: &[u8],
    acc: &mut [i32],
);

/// A kernel for a hidden layer's activation: for every channel `o < levels.len()`,
/// `levels[o] = lut[clamp(requantize(totals[o], M_o, shift_o) + pre, −128, 127) + 128]` with
/// `M_o` the little-endian i32 `o` of `multipliers` and `shift_o` the i8 `shifts[o]`, as
/// [`activate_portable`] computes it. The model calls it only for layers where every shift
/// is at most −1 and every bias at most 2²⁹ in magnitude (so `|totals[o]| < 2³⁰`), which it
/// checks when it parses; other layers run [`activate_portable`].
pub type ActivationKernel = fn(
    totals: &[i32],
    multipliers: &[u8],
    shifts: &[u8],
    pre: i32,
    lut: &[u8; 256],
    levels: &mut [i8],
);

/// A kernel for a layer input's operand words: what [`operands`] computes, for `q` of a
/// whole number of words.
pub type OperandsKernel = fn(q: &[i8], operands: &mut [u32]) -> i32;

/// The kernels a packed model runs: the portable ones ([`Kernels::PORTABLE`]) unless firmware
/// installs its own with [`Model::with_kernels`], which must give the same bits.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    /// Multiplies the rows of a layer.
    pub rows: RowsKernel,
    /// Requantizes a hidden layer's sums and applies its SiLU table.
    pub activation: ActivationKernel,
    /// Makes the operand words of a layer's input.
    pub operands: OperandsKernel,
}

impl Kernels {
    /// [`rows_portable`], [`activate_portable`] and [`operands`].
    pub const PORTABLE: Kernels = Kernels {
        rows: rows_portable,
        activation: activate_portable,
        operands,
    };
}

/// The portable [`ActivationKernel`]: the int8 network's own requantization and table, so
/// also the reference for layers outside an installed kernel's range.
pub fn activate_portable(
    totals: &[i32],
    multipliers: &[u8],
    shifts: &[u8],
    pre: i32,
    lut: &[u8; 256],
    levels: &mut [i8],
) {
    let activation = Activation { pre, lut };
    let requantization = multipliers.chunks_exact(4).zip(shifts);
    for ((total, (m, shift)), q) in totals.iter().zip(requantization).zip(levels) {
        let multiplier = i32::from_le_bytes([m[0], m[1], m[2], m[3]]);
        *q = activation.level(*total, multiplier, *shift as i8 as i32);
    }
}

/// `SMLAD`: `acc + a.lo·b.lo + a.hi·b.hi`, signed 16-bit halves, wrapping.
#[inline(always)]
fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let lo = (a as i16 as i32) * (b as i16 as i32);
    let hi = ((a >> 16) as i16 as i32) * ((b >> 16) as i16 as i32);
    acc.wrapping_add(lo).wrapping_add(hi)
}

/// `UXTB16`: bytes 0 and 2 zero-extended into the two halves.
#[inline(always)]
fn uxtb16(a: u32) -> u32 {
    a & 0x00FF_00FF
}

/// Adds a run of words of one group of `acc.len()` rows to `acc` (see [`RowsKernel`]).
fn dot_portable(words: &[u8], operands: &[u32], acc: &mut [i32]) {
    let rows = acc.len();
    if rows == 0 {
        return;
    }
    for (step, pair) in words.chunks_exact(4 * rows).zip(operands.chunks_exact(2)) {
        for (w, acc) in step.chunks_exact(4).zip(acc.iter_mut()) {
            let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            *acc = smlad(uxtb16(w), pair[1], smlad(w, pair[0], *acc));
        }
    }
}

/// The portable [`RowsKernel`].
pub fn rows_portable(
    weights: &[u8],
    inputs: usize,
    words: core::ops::Range<usize>,
    operands: &[u32],
    init: i32,
    starts: &[u8],
    acc: &mut [i32],
) {
    let group_bytes = GROUP_ROWS * inputs;
    for (g, acc) in acc.chunks_mut(GROUP_ROWS).enumerate() {
        acc.fill(init);
        let rows = acc.len();
        let group = g.saturating_mul(group_bytes);
        let start = group.saturating_add(4 * rows * words.start);
        let end = group.saturating_add(4 * rows * words.end);
        if let Some(run) = weights.get(start..end) {
            dot_portable(run, operands, acc);
        }
    }
    for (total, start) in acc.iter_mut().zip(starts.chunks_exact(4)) {
        let start = i32::from_le_bytes([start[0], start[1], start[2], start[3]]);
        *total = (*total >> 8).wrapping_add(start);
    }
}

/// Two signed 16-bit values as one word, `lo` in the low half.
#[inline(always)]
fn halves(lo: i32, hi: i32) -> u32 {
    (lo as u16 as u32) | ((hi as u16 as u32) << 16)
}

/// Fills `operands` with the pairs `A_k, B_k` of the input levels `q` (one pair per whole
/// word of four inputs) and returns `Σ_k (q_{4k} + q_{4k+2})`. The portable
/// [`OperandsKernel`].
pub fn operands(q: &[i8], operands: &mut [u32]) -> i32 {
    let mut even = 0;
    for (x, pair) in q.chunks_exact(4).zip(operands.chunks_exact_mut(2)) {
        let [q0, q1, q2, q3] = [x[0] as i32, x[1] as i32, x[2] as i32, x[3] as i32];
        pair[0] = halves(q1 - 127, q3 - 127);
        pair[1] = halves(256 * q0 + 127 - q1, 256 * q2 + 127 - q3);
        even += q0 + q2;
    }
    even
}

/// Byte offset of weight `(o, j)` in a packed layer of `inputs × outputs`.
fn packed_index(inputs: usize, outputs: usize, o: usize, j: usize) -> usize {
    let group = o / GROUP_ROWS;
    let rows = GROUP_ROWS.min(outputs - group * GROUP_ROWS);
    let r = o % GROUP_ROWS;
    let words = inputs / 4;
    let start = group * GROUP_ROWS * inputs;
    if j < 4 * words {
        start + ((j / 4) * rows + r) * 4 + j % 4
    } else {
        start + rows * 4 * words + r * (inputs % 4) + (j - 4 * words)
    }
}

/// Writes the packed form (precision 2) of the int8 model `file` into the start of `out` and
/// returns its length, which is the file's. Fails on a file that does not parse, that is not
/// int8, or an `out` shorter than the file.
pub fn pack_int8(file: &[u8], out: &mut [u8]) -> Result<usize, ModelError> {
    let model = Model::parse(file)?;
    ParamError::require(
        model.header().precision == Precision::Int8,
        "model to pack",
        "an int8 model (precision 1)",
    )?;
    let len = file.len();
    ParamError::require(
        out.len() >= len,
        "packing buffer",
        "at least as long as the model file",
    )?;
    let out = &mut out[..len];
    out.copy_from_slice(file);
    out[6] = Precision::Int8Packed.code();
    // Sections are borrowed from `file`, so their addresses give their offsets in it.
    let offset = |section: &[u8]| section.as_ptr() as usize - file.as_ptr() as usize;
    for i in 0..=model.header().dims.layers {
        let Some(layer) = model.int8_layer(i) else {
            continue;
        };
        let (inputs, outputs) = (layer.inputs(), layer.outputs());
        let words = inputs / 4;
        let weights = offset(layer.weights);
        let biases = offset(layer.bias);
        for o in 0..outputs {
            let mut sum = 0i64;
            let mut odd = 0i64;
            for j in 0..inputs {
                let w = layer.weight(o, j);
                let in_words = j < 4 * words;
                let stored = if in_words && j % 2 == 0 {
                    w as u8 ^ 0x80
                } else {
                    w as u8
                };
                out[weights + packed_index(inputs, outputs, o, j)] = stored;
                sum += w as i64;
                if in_words && j % 2 == 1 {
                    odd += w as i64;
                }
            }
            let folded = layer.bias(o) as i64 - layer.input().zero_point as i64 * sum + 127 * odd;
            // Within ±(2³⁰ + 2²⁴): the parser bounded the bias and the weights are int8.
            let folded = folded.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
            let at = biases + 4 * o;
            out[at..at + 4].copy_from_slice(&folded.to_le_bytes());
        }
    }
    let body = len - CHECKSUM_LEN;
    let checksum = crc32(&out[..body]);
    out[body..].copy_from_slice(&checksum.to_le_bytes());
    Ok(len)
}

/// Where a packed evaluation takes its points and puts their noise predictions ε̂; the points
/// share one time.
pub(super) trait Points {
    /// The number of points.
    fn count(&self) -> usize;
    /// Coordinate `d` of point `p`.
    fn coordinate(&self, p: usize, d: usize) -> f32;
    /// Takes coordinate `d` of point `p`'s ε̂ (after every coordinate of `p` was read).
    fn put(&mut self, p: usize, d: usize, eps: f32);
}

impl Model<'_> {
    /// The packed network on every point of `points`, all at time `t`: the same integers as
    /// `forward_int8`, so the same bits, with raw levels `q` between layers.
    ///
    /// The first layer's input is a point's N coordinates and then the time features, which
    /// all points share. Its sums over the words that hold only time features (and over the
    /// tail, when the coordinates end before it) are made once, with the bias; each point then
    /// adds the sums over its own words. Over any set of words the kernel's sum is exactly 256
    /// times a whole number below 2²³ (module docs), so split sums shift down and add up to
    /// the same integers.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    pub(super) fn forward_packed(
        &self,
        layers: &[Int8Layer<'_>],
        t: f32,
        points: &mut impl Points,
    ) {
        let Some(first) = layers.first() else {
            return;
        };
        let n = (self.header.dims.dim as usize).min(MAX_WIDTH);
        let last = self.header.dims.layers as usize;
        let mut pairs = [0u32; MAX_WIDTH / 2];
        let mut levels = Levels([0; MAX_WIDTH]);
        self.for_each_time_level(first.input, t, |i, q| levels.0[i] = q);
        let words = first.inputs.min(MAX_WIDTH) / 4;
        let own_words = n.div_ceil(4).min(words);
        let time_tail = n <= 4 * words;
        let mut totals = [0i32; MAX_WIDTH];
        let time_part = self.word_sums(
            first,
            &levels,
            own_words..words,
            time_tail,
            first.bias,
            &mut pairs,
            &mut totals,
        );
        // The shared sums start each point's own: as bytes, as a layer's biases are.
        let mut shared = [0u8; 4 * MAX_WIDTH];
        for (sum, bytes) in time_part.iter().zip(shared.chunks_exact_mut(4)) {
            bytes.copy_from_slice(&sum.to_le_bytes());
        }
        // Hidden layer i writes its levels into hidden[i % 2] and reads its input from the
        // other one (layer 0 from `levels`, whose time features stay for the next point).
        let mut hidden = [Levels([0; MAX_WIDTH]); 2];
        for p in 0..points.count() {
            for (d, level) in levels.0.iter_mut().enumerate().take(n) {
                *level = first.input.quantize(points.coordinate(p, d));
            }
            for (i, layer) in layers.iter().enumerate().take(last + 1) {
                let [even, odd] = &mut hidden;
                let (from, to) = match i {
                    0 => (&levels, even),
                    _ if i % 2 == 1 => (&*even, odd),
                    _ => (&*odd, even),
                };
                let totals = if i == 0 {
                    let own = 0..own_words;
                    self.word_sums(
                        layer,
                        from,
                        own,
                        !time_tail,
                        &shared,
                        &mut pairs,
                        &mut totals,
                    )
                } else {
                    let all = 0..MAX_WIDTH;
                    let bias = layer.bias;
                    self.word_sums(layer, from, all, true, bias, &mut pairs, &mut totals)
                };
                if i < last {
                    let Activation { pre, lut } = layer.activation_table();
                    let activate = if layer.narrow_requantization {
                        self.kernels.activation
                    } else {
                        activate_portable
                    };
                    let (multipliers, shifts) = (layer.multiplier, layer.shift);
                    let levels = &mut to.0[..totals.len()];
                    activate(totals, multipliers, shifts, pre, lut, levels);
                } else {
                    let scales = layer.weight_scale.chunks_exact(4).map(f32_at);
                    for (d, (total, scale)) in totals.iter().zip(scales).enumerate() {
                        points.put(p, d, *total as f32 * (layer.input.scale * scale));
                    }
                }
            }
        }
    }

    /// For every row `o` of a packed layer, its start (the little-endian i32 `o` of
    /// `starts`) plus its part of `Σⱼ w[o][j]·(q[j] − z)` from the words numbered in `words`
    /// and, when `tail`, from its tail: into `out`, whose rows it returns. The installed
    /// kernel multiplies.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    #[allow(clippy::too_many_arguments)]
    fn word_sums<'t>(
        &self,
        layer: &Int8Layer<'_>,
        q: &Levels,
        words: core::ops::Range<usize>,
        tail: bool,
        starts: &[u8],
        pairs: &mut [u32; MAX_WIDTH / 2],
        out: &'t mut [i32; MAX_WIDTH],
    ) -> &'t mut [i32] {
        let inputs = layer.inputs.min(MAX_WIDTH);
        if inputs == 0 {
            return &mut [];
        }
        let all_words = inputs / 4;
        let to = words.end.min(all_words);
        let from = words.start.min(to);
        let even = (self.kernels.operands)(&q.0[4 * from..4 * to], pairs);
        let pairs = &pairs[..2 * (to - from)];
        let outputs = (layer.weights.len() / inputs).min(MAX_WIDTH);
        let out = &mut out[..outputs];
        // The sums' `128·Σq_even` (module docs), taken off before the shift.
        let init = even.wrapping_mul(-128 * 256);
        (self.kernels.rows)(layer.weights, inputs, from..to, pairs, init, starts, out);
        let tail_len = inputs % 4;
        if tail && tail_len > 0 {
            // Each row's tail follows the word part of its group, in row order.
            let tail_inputs = &q.0[4 * all_words..inputs];
            for (g, group) in out.chunks_mut(GROUP_ROWS).enumerate() {
                let start = g * GROUP_ROWS * inputs + 4 * all_words * group.len();
                let tails = layer.weights.get(start..).unwrap_or(&[]);
                for (total, tail) in group.iter_mut().zip(tails.chunks_exact(tail_len)) {
                    for (w, x) in tail.iter().zip(tail_inputs) {
                        *total = total.wrapping_add(*w as i8 as i32 * *x as i32);
                    }
                }
            }
        }
        out
    }
}

/// A layer input's int8 levels, word-aligned so that a kernel may read them a word at a time.
#[derive(Clone, Copy)]
#[repr(align(4))]
struct Levels([i8; MAX_WIDTH]);
