//! The int8 and int16x8 networks in the layout made for the Cortex-M4's dual 16-bit
//! multiply–accumulate (`SMLAD`): precisions 2 and 4, "packed", written from an int8 or
//! int16x8 file by [`pack`] when firmware is built for a core with the DSP extension.
//!
//! # Why a layout
//! `SMLAD acc, a, b` adds `a.lo·b.lo + a.hi·b.hi` (signed 16-bit halves) to `acc`: two MACs in
//! one instruction, on 16-bit operands. A point's input levels are made 16-bit once per layer,
//! but int8 weights would have to be widened at every use (CMSIS-NN: two `SXTB16` a word, four
//! instructions for four MACs). So the packed layout stores a layer's weights in two parts:
//!
//! - **Wide part**: the weights of the inputs each point brings — all inputs of the later
//!   layers, the data coordinates of the first — as 16-bit pairs `(w[2k], w[2k+1])`. Against
//!   the point's level pairs `(q[2k], q[2k+1])` each word is one `SMLAD`, and four rows
//!   interleaved word by word load with one `LDM`: eleven instructions for sixteen MACs. These
//!   weights take twice the bytes (4 KiB more for a 64 × 64 layer). The hidden layers'
//!   activations write their levels as such pairs, ready for the next layer.
//! - **Byte part**: the first layer's time-feature weights stay one byte each: a batch of
//!   points at one time shares their sums, made once, so their speed matters less than their
//!   flash. Each word's even bytes
//!   are stored offset by 128 (XOR 0x80), so that for the word `W = [w₀, w₁, w₂, w₃]` of inputs
//!   `q₀..q₃` the raw word and one `UXTB16` suffice:
//!
//! ```text
//! W.lo = 256·w₁ + (w₀ + 128)      UXTB16(W).lo = w₀ + 128      (and .hi likewise for w₂, w₃)
//! A = (q₁ − 127, q₃ − 127)        B = (256·q₀ + 127 − q₁, 256·q₂ + 127 − q₃)
//! SMLAD(W, A) + SMLAD(UXTB16(W), B) = 256·(Σ wᵢqᵢ − 127·(w₁ + w₃) + 128·(q₀ + q₂))
//! ```
//!
//! A and B fit 16 bits for int8 `q` and depend only on the input ([`operands`]); the
//! `−127·Σw_odd` term is a per-row constant folded into the stored bias (with the input zero
//! point's `−z·Σw`), and `128·Σq_even` is one number per input vector, taken off by starting
//! every row's sum at `−256·128·Σq_even`: three instructions for four MACs.
//!
//! # Layout of one layer (`out` rows, `in` inputs of which the first `V` are wide)
//! The weight section is the wide part, then the byte part
//! ([`Dims::packed_weights_len`](super::Dims::packed_weights_len)).
//! - Wide part, `P = ⌈V/2⌉` words a row, each word the little-endian i16 halves `w[2k]`,
//!   `w[2k+1]` (0 past `V`): rows in groups of four ([`GROUP_ROWS`]), word `k` of each row of
//!   a group in turn (`(k·4 + r)·4` bytes into the group); the `out mod 4` rows left over
//!   follow row by row.
//! - Byte part, the `in − V` inputs after the wide ones, `K = ⌊(in − V)/4⌋` words a row: rows
//!   in groups of four, the last holding what remains; a group of `R` rows is its words — word
//!   `k` of each of its rows in turn, `(k·R + r)·4` bytes in, even bytes XOR 0x80 — then its
//!   tail, each row's last `(in − V) mod 4` weights, plain.
//!
//! The bias section holds the folded constant `bias − z_in·Σⱼwⱼ + 127·Σ_{k<K}(w_{V+4k+1} +
//! w_{V+4k+3})`. Everything else is as in precision 1.
//!
//! # int16 activations (precision 4)
//! An int16x8 network's levels are 16-bit already and reach ±2¹⁵, past the byte part's
//! trick. Its first layer's time-feature weights are a second wide part instead, laid out
//! as the first (`⌈(in − V)/2⌉` words a row) and placed after it: the same wide kernel sums
//! them once for all points. Its hidden layers run the wide kernel, then requantize each sum
//! to int16 and interpolate the SiLU table. Each table is followed by
//! [`SiluTable::INT16_PACKED_PADDING`](super::format::SiluTable::INT16_PACKED_PADDING) zero
//! bytes, which keep the next layer's weights word-aligned. Its biases are the file's (every
//! zero point is 0), and the parser bounds each row's sum below 2³¹ as for the unpacked file.
//!
//! The arithmetic is exact in i32 (see the bounds below), so the packed network's outputs are
//! bit-identical to the unpacked network's, whichever kernels run it.
//!
//! # Bounds
//! With `|q| ≤ 128`, `|w| ≤ 128` and at most 256 inputs, `|Σwq| < 2²²` and the two correction
//! terms are below 2²¹ each, so the byte part's accumulator (wrapping on the way) ends below
//! 2³¹ and exactly 256 times the corrected sum, which an arithmetic shift by 8 recovers. The
//! wide part's sums are the plain sums.

use super::crc32::crc32;
#[cfg(feature = "int16x8")]
use super::format::SiluTable;
use super::format::{f32_at, i32_at, Header, Int8Layer, Precision, CHECKSUM_LEN, HEADER_LEN};
use super::format::{MAX_DIM as MAX_DIM_U32, MAX_WIDTH};
use super::int8::{for_each_time_level, Activation};
#[cfg(feature = "int16x8")]
use super::quant::{requantize_with, silu_int16};
use super::quant::{QuantParams, Rounding};
use super::{Model, ModelError};
use crate::error::ParamError;

/// The largest data dimension, as a length.
const MAX_DIM: usize = MAX_DIM_U32 as usize;

/// Rows one kernel call multiplies together (interleaved word by word in the layout).
pub const GROUP_ROWS: usize = 4;

/// A kernel for a byte part of `inputs` inputs (`K = ⌊inputs/4⌋` words a row) and weights
/// `weights`: for every row `o < acc.len()` it sums `SMLAD(W_k, A_k) + SMLAD(UXTB16(W_k),
/// B_k)` (wrapping, from `init`) over the words `k < K`, where `W_k` is the little-endian word
/// `k` of row `o` in the layout (in the group of four rows holding `o`, or in the last,
/// smaller group) and `A_k, B_k = operands[2k], operands[2k + 1]`, and sets `acc[o]` to that
/// sum shifted right by 8 (arithmetic) plus the little-endian i32 `o` of `starts` (wrapping;
/// `starts` holds one for every row). The rows' tails are not the kernel's.
///
/// [`rows_portable`] is the reference; firmware for a Cortex-M4 installs an assembly one
/// with [`Model::with_kernels`], which must give the same bits.
pub type RowsKernel =
    fn(weights: &[u8], inputs: usize, operands: &[u32], init: i32, starts: &[u8], acc: &mut [i32]);

/// A kernel for a layer input's operand words: what [`operands`] computes, for `q` of a
/// whole number of words.
pub type OperandsKernel = fn(q: &[i8], operands: &mut [u32]) -> i32;

/// A kernel for a wide part of `pairs` words a row: for every row `o < totals.len()`,
/// `totals[o]` is the little-endian i32 `o` of `starts` plus `Σ_k SMLAD(W_k, levels[k])`
/// over `k < pairs` (wrapping), where `W_k` is word `k` of row `o` in the layout. The
/// reference is [`wide_portable`].
pub type WideKernel =
    fn(weights: &[u8], pairs: usize, levels: &[u32], starts: &[u8], totals: &mut [i32]);

/// A kernel for a hidden layer's wide part and activation: for every channel `o` below
/// `requantization.shifts.len()`, the [`WideKernel`] total `s_o`, then
/// `lut[clamp(requantize(s_o, M_o, shift_o) + pre, −128, 127) + 128]` (the int8 network's
/// level, [`wide_activation_portable`]) as an i16 into half `o mod 2` (low first) of
/// `levels_out[o / 2]`. The model calls an installed one only for layers where every shift is
/// at most −1 and every bias at most 2²⁹ in magnitude (so `|s_o| < 2³⁰`), which it checks
/// when it parses; other layers run [`wide_activation_portable`].
pub type WideActivationKernel = fn(
    weights: &[u8],
    pairs: usize,
    levels: &[u32],
    starts: &[u8],
    requantization: &Requantization<'_>,
    levels_out: &mut [u32],
);

/// A hidden layer's requantization to its pre-activation tensor and its SiLU table, as a
/// [`WideActivationKernel`] takes them.
#[derive(Clone, Copy, Debug)]
pub struct Requantization<'a> {
    /// Each channel's Q31 multiplier, a little-endian i32.
    pub multipliers: &'a [u8],
    /// Each channel's shift, an i8: one for every channel.
    pub shifts: &'a [u8],
    /// The pre-activation tensor's zero point.
    pub pre: i32,
    /// The SiLU table, entry `q + 128` for level `q`.
    pub lut: &'a [u8; 256],
    /// How the requantization rounds (the model file's).
    pub rounding: Rounding,
}

/// A kernel for an int16x8 hidden layer's wide part and activation: for every channel `o`
/// below `requantization.shifts.len()`, the [`WideKernel`] total `s_o`, then
/// `silu_int16(knots, clamp(requantize(s_o, M_o, shift_o), −2¹⁵, 2¹⁵ − 1))` (the int16x8
/// network's level, [`wide_activation16_portable`]) as an i16 into half `o mod 2` (low first)
/// of `levels_out[o / 2]`. The model calls an installed one only for layers where every shift
/// is at most −1 and every row's `|bias| + 2¹⁵·Σ|w|` is below 2³⁰ (so `|s_o| < 2³⁰`), which it
/// checks when it parses; other layers run the wide kernel and the portable activation.
#[cfg(feature = "int16x8")]
pub type WideActivation16Kernel = fn(
    weights: &[u8],
    pairs: usize,
    levels: &[u32],
    starts: &[u8],
    requantization: &Requantization16<'_>,
    levels_out: &mut [u32],
);

/// An int16x8 hidden layer's requantization to int16 and its SiLU table, as a
/// [`WideActivation16Kernel`] takes them.
#[cfg(feature = "int16x8")]
#[derive(Clone, Copy, Debug)]
pub struct Requantization16<'a> {
    /// Each channel's Q31 multiplier, a little-endian i32.
    pub multipliers: &'a [u8],
    /// Each channel's shift, an i8: one for every channel.
    pub shifts: &'a [u8],
    /// The interpolated SiLU table's knots, little-endian i16s.
    pub knots: &'a [u8; SiluTable::INT16_BYTES],
    /// How the requantization rounds (the model file's).
    pub rounding: Rounding,
}

/// The kernels a packed model runs: the portable ones ([`Kernels::PORTABLE`]) unless firmware
/// installs its own with [`Model::with_kernels`], which must give the same bits.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    /// Multiplies the rows of a byte part (the first layer's time features).
    pub rows: RowsKernel,
    /// Makes the operand words of a byte part's input.
    pub operands: OperandsKernel,
    /// Multiplies the wide part of the output layer.
    pub wide: WideKernel,
    /// Multiplies the wide part of a hidden layer and applies its activation.
    pub wide_activation: WideActivationKernel,
    /// Multiplies the wide part of an int16x8 hidden layer and applies its activation.
    #[cfg(feature = "int16x8")]
    pub wide_activation16: WideActivation16Kernel,
}

impl Kernels {
    /// [`rows_portable`], [`operands`], [`wide_portable`] and [`wide_activation_portable`].
    pub const PORTABLE: Kernels = Kernels {
        rows: rows_portable,
        operands,
        wide: wide_portable,
        wide_activation: wide_activation_portable,
        #[cfg(feature = "int16x8")]
        wide_activation16: wide_activation16_portable,
    };
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

/// Sets half `i mod 2` (low first) of `words[i / 2]` to `value` (nothing past the end).
#[inline(always)]
fn set_half(words: &mut [u32], i: usize, value: i16) {
    if let Some(word) = words.get_mut(i / 2) {
        let shift = 16 * (i % 2);
        *word = (*word & !(0xFFFF << shift)) | ((value as u16 as u32) << shift);
    }
}

/// The blocks of a wide part of `rows` rows: its groups of four, then one for each row left
/// over.
fn wide_blocks(rows: usize) -> usize {
    rows / GROUP_ROWS + rows % GROUP_ROWS
}

/// Block `b` of a wide part of `rows` rows (see [`wide_blocks`]): the index of its first row,
/// its number of rows and their totals (see [`WideKernel`]). Shared by the portable kernels,
/// so a chip holds it once.
#[inline(never)]
fn wide_block(
    weights: &[u8],
    pairs: usize,
    levels: &[u32],
    starts: &[u8],
    rows: usize,
    b: usize,
) -> (usize, usize, [i32; GROUP_ROWS]) {
    let levels = levels.get(..pairs).unwrap_or(levels);
    let groups = rows / GROUP_ROWS;
    let (first, count) = if b < groups {
        (b * GROUP_ROWS, GROUP_ROWS)
    } else {
        (groups * GROUP_ROWS + (b - groups), 1)
    };
    // A group's words are interleaved, word k of its rows in turn; a row left over is alone.
    let at = first.saturating_mul(pairs).saturating_mul(4);
    let len = count.saturating_mul(pairs).saturating_mul(4);
    let words = weights.get(at..at.saturating_add(len)).unwrap_or(&[]);
    let mut acc: [i32; GROUP_ROWS] = core::array::from_fn(|r| i32_at(starts, first + r));
    for (step, level) in words.chunks_exact(4 * count).zip(levels) {
        for (w, acc) in step.chunks_exact(4).zip(&mut acc) {
            *acc = smlad(u32::from_le_bytes([w[0], w[1], w[2], w[3]]), *level, *acc);
        }
    }
    (first, count, acc)
}

/// The portable [`WideKernel`].
pub fn wide_portable(
    weights: &[u8],
    pairs: usize,
    levels: &[u32],
    starts: &[u8],
    totals: &mut [i32],
) {
    for b in 0..wide_blocks(totals.len()) {
        let (first, count, block) = wide_block(weights, pairs, levels, starts, totals.len(), b);
        let rows = totals.iter_mut().skip(first).take(count);
        for (total, value) in rows.zip(block) {
            *total = value;
        }
    }
}

/// The portable [`WideActivationKernel`]: the int8 network's own requantization and table, so
/// also the reference for layers outside an installed kernel's range.
pub fn wide_activation_portable(
    weights: &[u8],
    pairs: usize,
    levels: &[u32],
    starts: &[u8],
    requantization: &Requantization<'_>,
    levels_out: &mut [u32],
) {
    let Requantization {
        multipliers,
        shifts,
        pre,
        lut,
        rounding,
    } = *requantization;
    let activation = Activation { pre, lut, rounding };
    let channels = shifts.len();
    for b in 0..wide_blocks(channels) {
        let (first, count, block) = wide_block(weights, pairs, levels, starts, channels, b);
        for (o, total) in (first..first + count).zip(block) {
            let shift = shifts.get(o).map_or(0, |&s| s as i8 as i32);
            let level = activation.level(total, i32_at(multipliers, o), shift);
            set_half(levels_out, o, level as i16);
        }
    }
}

/// Adds the words of one group of `acc.len()` rows of a byte part to `acc` (see
/// [`RowsKernel`]).
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
    operands: &[u32],
    init: i32,
    starts: &[u8],
    acc: &mut [i32],
) {
    let group_bytes = GROUP_ROWS.saturating_mul(inputs);
    let words = inputs / 4;
    for (g, acc) in acc.chunks_mut(GROUP_ROWS).enumerate() {
        acc.fill(init);
        let start = g.saturating_mul(group_bytes);
        let end = start.saturating_add(4 * acc.len() * words);
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

/// Byte offset of the i16 of input `j` of row `o` in a wide part of `pairs` words a row and
/// `outputs` rows.
fn wide_index(outputs: usize, pairs: usize, o: usize, j: usize) -> usize {
    let grouped = outputs - outputs % GROUP_ROWS;
    let word = if o < grouped {
        (o - o % GROUP_ROWS) * pairs + (j / 2) * GROUP_ROWS + o % GROUP_ROWS
    } else {
        o * pairs + j / 2
    };
    4 * word + 2 * (j % 2)
}

/// Byte offset of weight `(o, j)` in a packed layer of `inputs × outputs` whose first `wide`
/// inputs are wide (module docs): the i16's first byte in the wide part; past it, for an
/// int16x8 file (`int16`) the i16's first byte in the second wide part, for an int8 one the
/// byte in the byte part.
fn packed_index(
    (inputs, outputs): (usize, usize),
    wide: usize,
    int16: bool,
    o: usize,
    j: usize,
) -> usize {
    let pairs = wide.div_ceil(2);
    if j < wide {
        return wide_index(outputs, pairs, o, j);
    }
    if int16 {
        let rest_pairs = (inputs - wide).div_ceil(2);
        return 4 * pairs * outputs + wide_index(outputs, rest_pairs, o, j - wide);
    }
    let (inputs, j) = (inputs - wide, j - wide);
    let group = o / GROUP_ROWS;
    let rows = GROUP_ROWS.min(outputs - group * GROUP_ROWS);
    let r = o % GROUP_ROWS;
    let words = inputs / 4;
    let start = 4 * pairs * outputs + group * GROUP_ROWS * inputs;
    if j < 4 * words {
        start + ((j / 4) * rows + r) * 4 + j % 4
    } else {
        start + rows * 4 * words + r * (inputs % 4) + (j - 4 * words)
    }
}

/// The packed precision of an unpacked one that has it.
fn packed_precision(precision: Precision) -> Result<Precision, ModelError> {
    match precision {
        Precision::Int8 => Ok(Precision::Int8Packed),
        #[cfg(feature = "int16x8")]
        Precision::Int16x8 => Ok(Precision::Int16x8Packed),
        _ => Err(ParamError {
            parameter: "model to pack",
            requirement: "an int8 or int16x8 model (precision 1 or 3)",
        }
        .into()),
    }
}

/// The length of the packed form of the model `file`, which [`pack`] writes.
pub fn packed_len(file: &[u8]) -> Result<usize, ModelError> {
    let header = *Model::parse(file)?.header();
    Ok(header.dims.file_len(packed_precision(header.precision)?))
}

/// Writes the packed form of the int8 or int16x8 model `file` (precision 2 or 4) into the
/// start of `out` and returns its length, [`packed_len`] (the file's plus the wide parts'
/// extra bytes). Fails on a file that does not parse, that is neither, or an `out` shorter
/// than the packed file.
pub fn pack(file: &[u8], out: &mut [u8]) -> Result<usize, ModelError> {
    let model = Model::parse(file)?;
    let dims = model.header().dims;
    let int16 = model.header().precision.has_int16_activations();
    let header = Header {
        precision: packed_precision(model.header().precision)?,
        ..*model.header()
    };
    let len = dims.file_len(header.precision);
    ParamError::require(
        out.len() >= len,
        "packing buffer",
        "at least as long as the packed model file",
    )?;
    let out = &mut out[..len];
    // Sections are borrowed from `file`, so their addresses give their offsets in it. Every
    // section keeps its bytes but the weights and biases; those after a layer's weights move
    // by the bytes the packed weights add.
    let offset = |section: &[u8]| section.as_ptr() as usize - file.as_ptr() as usize;
    out[..HEADER_LEN].copy_from_slice(&header.encode()?);
    let mut read = HEADER_LEN;
    let mut moved = 0;
    for i in 0..=dims.layers {
        let Some(layer) = model.int8_layer(i) else {
            continue;
        };
        let (inputs, outputs) = (layer.inputs(), layer.outputs());
        let wide = dims.packed_wide_inputs(i);
        let byte_words = (inputs - wide) / 4;
        let weights = offset(layer.weight_bytes());
        out[read + moved..weights + moved].copy_from_slice(&file[read..weights]);
        let packed_at = weights + moved;
        let packed_len = dims.packed_weights_len(i, header.precision);
        out[packed_at..packed_at + packed_len].fill(0);
        read = weights + layer.weight_bytes().len();
        moved += packed_len - layer.weight_bytes().len();
        let bias = offset(layer.bias_bytes());
        out[read + moved..bias + moved].copy_from_slice(&file[read..bias]);
        for o in 0..outputs {
            let mut sum = 0i64;
            let mut odd = 0i64;
            for j in 0..inputs {
                let w = layer.weight(o, j);
                let at = packed_at + packed_index((inputs, outputs), wide, int16, o, j);
                let in_words = !int16 && j >= wide && j - wide < 4 * byte_words;
                if j < wide || int16 {
                    out[at..at + 2].copy_from_slice(&(w as i16).to_le_bytes());
                } else if in_words && (j - wide) % 2 == 0 {
                    out[at] = w as u8 ^ 0x80;
                } else {
                    out[at] = w as u8;
                }
                sum += w as i64;
                if in_words && (j - wide) % 2 == 1 {
                    odd += w as i64;
                }
            }
            let folded = layer.bias(o) as i64 - layer.input().zero_point as i64 * sum + 127 * odd;
            // Within ±(2³⁰ + 2²⁴): the parser bounded the bias and the weights are int8.
            let folded = folded.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
            let at = bias + moved + 4 * o;
            out[at..at + 4].copy_from_slice(&folded.to_le_bytes());
        }
        read = bias + layer.bias_bytes().len();
        #[cfg(feature = "int16x8")]
        if int16 && i < dims.layers {
            // Zero bytes after the table keep the next layer's weights word-aligned.
            let knots = layer.silu_knots();
            let end = offset(knots) + knots.len();
            out[read + moved..end + moved].copy_from_slice(&file[read..end]);
            read = end;
            let padding = SiluTable::INT16_PACKED_PADDING;
            out[read + moved..read + moved + padding].fill(0);
            moved += padding;
        }
    }
    let body = file.len() - CHECKSUM_LEN;
    out[read + moved..body + moved].copy_from_slice(&file[read..body]);
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

/// What a packed network's activations are: how a point's coordinates, the shared time
/// features and a hidden layer's sums become the 16-bit levels the wide parts multiply.
pub(super) trait PackedActivations {
    /// The level of coordinate `real` in the input tensor `q` (int8 files: the level itself,
    /// its zero point being folded into the first layer's biases).
    fn input(q: QuantParams, real: f32) -> i16;
    /// Each row `o < out.len()` of the first layer: its start (the little-endian i32 `o` of
    /// the layer's biases) plus its sum over the time features' levels at `t` (the part of
    /// its weights after the data coordinates', [`time_part`]).
    fn time_sums(model: &Model<'_>, first: &Int8Layer<'_>, t: f32, out: &mut [i32]);
    /// Hidden layer `layer`'s wide part over the levels `from` (`pairs` words a row), its
    /// requantization and SiLU, as levels into `to`.
    fn hidden(
        model: &Model<'_>,
        layer: &Int8Layer<'_>,
        pairs: usize,
        from: &[u32],
        starts: &[u8],
        to: &mut [u32],
    );
}

/// The first layer's weights of the time features: those after the wide part of the `n`
/// data coordinates (`⌈n/2⌉` words a row, `rows` rows).
#[inline(always)]
fn time_part<'a>(first: &Int8Layer<'a>, n: usize, rows: usize) -> &'a [u8] {
    first
        .weight_bytes()
        .get(4 * n.div_ceil(2) * rows..)
        .unwrap_or(&[])
}

/// int8 activations ([`Precision::Int8Packed`]): the byte part's `SMLAD` trick and the fused
/// requantization and table.
pub(super) struct Int8Activations;

impl PackedActivations for Int8Activations {
    #[inline(always)]
    fn input(q: QuantParams, real: f32) -> i16 {
        q.quantize(real) as i16
    }

    #[inline(always)]
    fn time_sums(model: &Model<'_>, first: &Int8Layer<'_>, t: f32, out: &mut [i32]) {
        let n = (model.header().dims.dim as usize).min(MAX_DIM);
        let mut time_levels = Levels([0; MAX_WIDTH]);
        let input = first.input();
        for_each_time_level(
            model,
            t,
            |v| input.quantize(v),
            |i, q| {
                if let Some(level) = time_levels.0.get_mut(i.wrapping_sub(n)) {
                    *level = q;
                }
            },
        );
        let byte_part = time_part(first, n, out.len());
        let time_inputs = first.inputs().saturating_sub(n).min(MAX_WIDTH);
        byte_sums(
            model.kernels(),
            byte_part,
            time_inputs,
            &time_levels,
            first.bias_bytes(),
            out,
        );
    }

    #[inline(always)]
    fn hidden(
        model: &Model<'_>,
        layer: &Int8Layer<'_>,
        pairs: usize,
        from: &[u32],
        starts: &[u8],
        to: &mut [u32],
    ) {
        let (pre, lut) = layer.activation_table();
        let requantization = Requantization {
            multipliers: layer.multiplier_bytes(),
            shifts: layer.shift_bytes(),
            pre,
            lut,
            rounding: model.header().rounding,
        };
        let activate = if layer.narrow_requantization() {
            model.kernels().wide_activation
        } else {
            wide_activation_portable
        };
        activate(
            layer.weight_bytes(),
            pairs,
            from,
            starts,
            &requantization,
            to,
        );
    }
}

/// int16 activations ([`Precision::Int16x8Packed`]): the time features' levels are 16-bit
/// too, so their weights are a second wide part (summed once for all points, by the same
/// kernel), and a hidden layer runs the [`WideActivation16Kernel`], which requantizes each
/// sum to int16 and interpolates the SiLU table.
#[cfg(feature = "int16x8")]
pub(super) struct Int16Activations;

#[cfg(feature = "int16x8")]
impl PackedActivations for Int16Activations {
    #[inline(always)]
    fn input(q: QuantParams, real: f32) -> i16 {
        q.quantize_int16(real)
    }

    #[inline(always)]
    fn time_sums(model: &Model<'_>, first: &Int8Layer<'_>, t: f32, out: &mut [i32]) {
        let n = (model.header().dims.dim as usize).min(MAX_DIM);
        let mut levels = [0u32; MAX_WIDTH / 2];
        let input = first.input();
        for_each_time_level(
            model,
            t,
            |v| input.quantize_int16(v),
            |i, q| set_half(&mut levels, i.wrapping_sub(n), q),
        );
        let weights = time_part(first, n, out.len());
        let pairs = first.inputs().saturating_sub(n).min(MAX_WIDTH).div_ceil(2);
        (model.kernels().wide)(weights, pairs, &levels, first.bias_bytes(), out);
    }

    #[inline(always)]
    fn hidden(
        model: &Model<'_>,
        layer: &Int8Layer<'_>,
        pairs: usize,
        from: &[u32],
        starts: &[u8],
        to: &mut [u32],
    ) {
        // The parser read a whole table.
        let Ok(knots) = <&[u8; SiluTable::INT16_BYTES]>::try_from(layer.silu_knots()) else {
            return;
        };
        let requantization = Requantization16 {
            multipliers: layer.multiplier_bytes(),
            shifts: layer.shift_bytes(),
            knots,
            rounding: model.header().rounding,
        };
        let activate = if layer.narrow_requantization() {
            model.kernels().wide_activation16
        } else {
            wide_activation16_portable
        };
        activate(
            layer.weight_bytes(),
            pairs,
            from,
            starts,
            &requantization,
            to,
        );
    }
}

/// The portable [`WideActivation16Kernel`]: the int16x8 network's own requantization and
/// table, so also the reference for layers outside an installed kernel's range.
#[cfg(feature = "int16x8")]
pub fn wide_activation16_portable(
    weights: &[u8],
    pairs: usize,
    levels: &[u32],
    starts: &[u8],
    requantization: &Requantization16<'_>,
    levels_out: &mut [u32],
) {
    let Requantization16 {
        multipliers,
        shifts,
        knots,
        rounding,
    } = *requantization;
    let channels = shifts.len();
    for b in 0..wide_blocks(channels) {
        let (first, count, block) = wide_block(weights, pairs, levels, starts, channels, b);
        for (o, total) in (first..first + count).zip(block) {
            let shift = shifts.get(o).map_or(0, |&s| s as i8 as i32);
            let level = requantize_with(rounding, total, i32_at(multipliers, o), shift);
            let level = level.clamp(i16::MIN as i32, i16::MAX as i32) as i16;
            set_half(levels_out, o, silu_int16(knots, level));
        }
    }
}

/// `Σⱼ |w[o][j]|` over row `o` of a layer of `inputs × outputs` whose weights are `weights`:
/// one byte a weight, row after row, where `wide` is `None`; in the layout of a packed
/// int16x8 file whose first `wide` inputs are the wide part otherwise.
pub(crate) fn row_magnitude(
    weights: &[u8],
    (inputs, outputs): (usize, usize),
    wide: Option<usize>,
    o: usize,
) -> u64 {
    let Some(wide) = wide else {
        let row = weights.get(o * inputs..(o + 1) * inputs).unwrap_or(&[]);
        return row.iter().map(|&w| (w as i8).unsigned_abs() as u64).sum();
    };
    (0..inputs)
        .map(|j| {
            let at = packed_index((inputs, outputs), wide, true, o, j);
            let w = weights
                .get(at..at + 2)
                .map_or(0, |b| i16::from_le_bytes([b[0], b[1]]));
            w.unsigned_abs() as u64
        })
        .sum()
}

/// The packed network of `model` on every point of `points`, all at time `t`, its
/// activations as `A` says: the same integers as the unpacked network's, so the same bits.
///
/// The first layer's byte part (the time features, which all points share) is summed once,
/// with the bias; each point's first layer starts from those sums and adds its wide part,
/// its own coordinates. Between layers a point's levels are 16-bit pairs.
///
/// Never inlined on a chip: its scratch space (≈ 3 KiB) is then on the stack only while
/// it runs, not in the frame of every evaluator that might call it.
#[cfg_attr(not(target_os = "none"), inline(always))]
#[cfg_attr(target_os = "none", inline(never))]
pub(super) fn forward<A: PackedActivations>(
    model: &Model<'_>,
    layers: &[Int8Layer<'_>],
    t: f32,
    points: &mut impl Points,
) {
    let Some(first) = layers.first() else {
        return;
    };
    let dims = model.header().dims;
    let kernels = model.kernels();
    let n = (dims.dim as usize).min(MAX_DIM);
    let last = dims.layers as usize;
    // The shared sums start each point's own: as bytes, as a layer's biases are. (In a
    // block, so that the stack slots of its scratch can be reused after it.)
    let mut shared = [0u8; 4 * MAX_WIDTH];
    {
        let mut time_part = [0i32; MAX_WIDTH];
        let rows = first.outputs().min(MAX_WIDTH);
        A::time_sums(model, first, t, &mut time_part[..rows]);
        for (sum, bytes) in time_part[..rows].iter().zip(shared.chunks_exact_mut(4)) {
            bytes.copy_from_slice(&sum.to_le_bytes());
        }
    }
    // A point's levels as 16-bit pairs: its coordinates' (`own`, layer 0's input), then
    // hidden layer i's in hidden[i % 2], read by layer i + 1.
    let mut own = [0u32; MAX_DIM / 2];
    let mut hidden = [[0u32; MAX_WIDTH / 2]; 2];
    let mut totals = [0i32; MAX_DIM];
    for p in 0..points.count() {
        for d in 0..n {
            set_half(
                &mut own,
                d,
                A::input(first.input(), points.coordinate(p, d)),
            );
        }
        for (i, layer) in layers.iter().enumerate().take(last + 1) {
            let [even, odd] = &mut hidden;
            let (from, to) = match i {
                0 => (&own[..], even),
                _ if i % 2 == 1 => (&even[..], odd),
                _ => (&odd[..], even),
            };
            let pairs = dims.packed_wide_inputs(i as u32).min(MAX_WIDTH).div_ceil(2);
            let starts = if i == 0 {
                &shared[..]
            } else {
                layer.bias_bytes()
            };
            if i < last {
                A::hidden(model, layer, pairs, from, starts, to);
            } else {
                let totals = &mut totals[..layer.outputs().min(MAX_DIM)];
                (kernels.wide)(layer.weight_bytes(), pairs, from, starts, totals);
                let scales = layer.weight_scale_bytes().chunks_exact(4).map(f32_at);
                let s_in = layer.input().scale;
                for (d, (total, scale)) in totals.iter().zip(scales).enumerate() {
                    points.put(p, d, *total as f32 * (s_in * scale));
                }
            }
        }
    }
}

/// For every row `o < out.len()` of a byte part of `inputs` inputs, its start (the
/// little-endian i32 `o` of `starts`) plus `Σⱼ w[o][j]·q[j]` over the part, into `out`.
/// The installed kernels multiply the words; the tails are summed here.
#[cfg_attr(not(target_os = "none"), inline(always))]
fn byte_sums(
    kernels: &Kernels,
    weights: &[u8],
    inputs: usize,
    q: &Levels,
    starts: &[u8],
    out: &mut [i32],
) {
    let words = inputs.min(MAX_WIDTH) / 4;
    let mut pairs = [0u32; MAX_WIDTH / 2];
    let even = (kernels.operands)(&q.0[..4 * words], &mut pairs);
    // The sums' `128·Σq_even` (module docs), taken off before the shift.
    let init = even.wrapping_mul(-128 * 256);
    (kernels.rows)(weights, inputs, &pairs[..2 * words], init, starts, out);
    let tail_len = inputs % 4;
    if tail_len > 0 {
        // Each row's tail follows the words of its group, in row order.
        let tail_inputs = q.0.get(4 * words..inputs).unwrap_or(&[]);
        for (g, group) in out.chunks_mut(GROUP_ROWS).enumerate() {
            let start = g * GROUP_ROWS * inputs + 4 * words * group.len();
            let tails = weights.get(start..).unwrap_or(&[]);
            for (total, tail) in group.iter_mut().zip(tails.chunks_exact(tail_len)) {
                for (w, x) in tail.iter().zip(tail_inputs) {
                    *total = total.wrapping_add(*w as i8 as i32 * *x as i32);
                }
            }
        }
    }
}

/// A byte part's int8 levels, word-aligned so that a kernel may read them a word at a time.
#[derive(Clone, Copy)]
#[repr(align(4))]
struct Levels([i8; MAX_WIDTH]);
