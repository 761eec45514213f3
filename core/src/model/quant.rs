//! Integer-only arithmetic of the int8 network, in the TFLite-Micro / CMSIS-NN conventions.
//!
//! A real value `r` is held as an int8 `q` with a scale `s` and a zero point `z`:
//! `r ≈ s·(q − z)` (asymmetric, per tensor, for activations; `z = 0`, per output channel, for
//! weights). A dense layer accumulates `Σ w·(q − z)` plus an int32 bias at scale `s_in·s_w` in
//! 32 bits, and rescales the sum to the next tensor's scale with [`requantize`]: a Q31
//! multiplier `M ∈ [2³⁰, 2³¹)` and a power-of-two shift, `real ≈ M·2^(shift − 31)`.
//!
//! # Accuracy (stated as bounds, checked by `tests/tests/int8_network.rs`)
//! - [`requantize`]`(acc, M, shift)` is within **1 unit** of the exact `acc·M·2^(shift−31)`:
//!   two roundings to nearest (half a unit each). It differs from the exactly rounded value in
//!   at most one unit and only near ties. [`quantize_multiplier`] rounds the real multiplier
//!   to 31 bits, a relative error ≤ 2⁻³¹, which adds ≤ |acc·real|·2⁻³¹ (≪ 1 unit, since the
//!   accumulators of this format stay below 2³¹).
//! - The SiLU table ([`silu_lut`]) is exact rounding of SiLU at each of the 256 input levels:
//!   the error against SiLU of the *quantized* input is ≤ s_out/2 (unless clamped to the int8
//!   range, which calibration avoids); against SiLU of the real input it adds at most
//!   max|SiLU'|·s_in/2 ≈ 1.1·s_in/2 (max |SiLU'| = 1.0998).

use crate::math;

/// Scale and zero point of an asymmetric int8 tensor: `real = scale·(q − zero_point)`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QuantParams {
    /// The real value of one int8 step, > 0.
    pub scale: f32,
    /// The int8 level of the real value 0, in −128..=127.
    pub zero_point: i32,
}

impl Default for QuantParams {
    fn default() -> Self {
        QuantParams {
            scale: 1.0,
            zero_point: 0,
        }
    }
}

impl QuantParams {
    /// The affine quantization of the range `[lo, hi]` widened to contain 0 (so 0 is exact, as
    /// TFLite requires): 255 steps from `lo` to `hi`.
    pub fn covering(lo: f32, hi: f32) -> QuantParams {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let range = hi - lo;
        if !(range.is_finite() && range > 0.0) {
            return QuantParams::default();
        }
        let scale = range / 255.0;
        let zero_point = libm::roundf(-128.0 - lo / scale).clamp(-128.0, 127.0) as i32;
        QuantParams { scale, zero_point }
    }

    /// `clamp(round(r / scale) + zero_point)` to the int8 range, rounding half away from zero
    /// (TFLite's `Quantize`). NaN maps to the zero point.
    pub fn quantize(&self, real: f32) -> i8 {
        // The level is clamped to ±256 in the end, so clamping the quotient first changes
        // nothing; then it converts to an integer exactly, its fraction is exact, and rounding
        // half away from zero is two comparisons: `roundf`'s value without its bit
        // manipulation (8 of the ≈ 44 instructions of an int8 input on a Cortex-M4). NaN
        // converts to 0 and its fraction compares false.
        let level = (real / self.scale).clamp(-512.0, 512.0);
        let whole = level as i32;
        let fraction = level - whole as f32;
        let rounded = whole + (fraction >= 0.5) as i32 - (fraction <= -0.5) as i32;
        (rounded.clamp(-256, 256) + self.zero_point).clamp(-128, 127) as i8
    }

    /// `scale·(q − zero_point)`.
    pub fn dequantize(&self, q: i8) -> f32 {
        self.scale * (q as i32 - self.zero_point) as f32
    }

    /// The symmetric int16 quantization of `[−max_abs, max_abs]` (zero point 0, as TFLite's
    /// 16×8 mode has it): 32 767 steps each side.
    pub fn symmetric_int16(max_abs: f32) -> QuantParams {
        if !(max_abs.is_finite() && max_abs > 0.0) {
            return QuantParams::default();
        }
        QuantParams {
            scale: max_abs / I16_MAX_LEVEL as f32,
            zero_point: 0,
        }
    }

    /// The symmetric int16 quantization over the range this int8 one covers (from level −128
    /// to 127): the tensors of [`Precision::Int16x8`] whose ranges were calibrated or trained
    /// as int8 ones.
    ///
    /// [`Precision::Int16x8`]: super::Precision::Int16x8
    pub fn int16_over(&self) -> QuantParams {
        QuantParams::symmetric_int16(self.dequantize(-128).abs().max(self.dequantize(127).abs()))
    }

    /// `clamp(round(r / scale))` to the int16 range, rounding half away from zero, for a
    /// tensor of zero point 0 (the int16 activations of [`Precision::Int16x8`]); NaN maps
    /// to 0.
    ///
    /// [`Precision::Int16x8`]: super::Precision::Int16x8
    pub fn quantize_int16(&self, real: f32) -> i16 {
        // As `quantize`: the clamped quotient converts exactly and rounds by comparisons.
        let level = (real / self.scale).clamp(-65_536.0, 65_536.0);
        let whole = level as i32;
        let fraction = level - whole as f32;
        let rounded = whole + (fraction >= 0.5) as i32 - (fraction <= -0.5) as i32;
        rounded.clamp(i16::MIN as i32, i16::MAX as i32) as i16
    }
}

/// The largest level of a symmetric int16 tensor.
pub const I16_MAX_LEVEL: i32 = i16::MAX as i32;

/// Entries of an int16 SiLU table: knots every [`SILU16_STEP`] levels from −32 768 to
/// 32 768.
pub const SILU16_ENTRIES: usize = 513;

/// Input levels between two knots of an int16 SiLU table.
pub const SILU16_STEP: i32 = 128;

/// The int16 SiLU table from the `input` to the `output` quantization (both of zero point 0):
/// entry `k` is SiLU at input level `128·k − 32 768`, computed in f64 and rounded half away
/// from zero to an output level, clamped to the int16 range. [`silu_int16`] interpolates it
/// (the layout of TFLite's int16 lookup tables).
pub fn silu_table_int16(input: QuantParams, output: QuantParams) -> [i16; SILU16_ENTRIES] {
    core::array::from_fn(|k| {
        let level = SILU16_STEP * k as i32 + i16::MIN as i32;
        let x = input.scale as f64 * level as f64;
        let silu = x / (1.0 + libm::exp(-x));
        libm::round(silu / output.scale as f64).clamp(i16::MIN as f64, i16::MAX as f64) as i16
    })
}

/// SiLU of int16 level `q` from the table `table` (little-endian i16s, [`SILU16_ENTRIES`] of
/// them): the two knots around `q` interpolated linearly, `base + ⌊(slope·offset + 64)/128⌋`
/// (TFLite's `lut_lookup_with_interpolation`). The result lies between the two knots, so it
/// is an int16 level. A shorter table reads its missing entries as 0.
#[inline(always)]
pub fn silu_int16(table: &[u8], q: i16) -> i16 {
    let index = ((q as i32 - i16::MIN as i32) >> 7) as usize; // 0..=511
    let offset = q as i32 & (SILU16_STEP - 1);
    let entry = |k: usize| {
        table
            .get(2 * k..2 * k + 2)
            .map_or(0, |b| i16::from_le_bytes([b[0], b[1]]) as i32)
    };
    let (base, next) = (entry(index), entry(index + 1));
    (base + (((next - base) * offset + 64) >> 7)) as i16
}

/// `round(a·b / 2³¹)` with ties rounded up, saturating the one overflowing case
/// (gemmlowp's `SaturatingRoundingDoublingHighMul`, which TFLite-Micro and CMSIS-NN use).
#[inline]
pub fn rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    doubling_high_mul_unsaturated(a, b)
}

/// [`rounding_doubling_high_mul`] without its saturating case.
#[inline(always)]
fn doubling_high_mul_unsaturated(a: i32, b: i32) -> i32 {
    // gemmlowp adds a nudge of 2³⁰ (or 1 − 2³⁰ when ab < 0) and divides by 2³¹ truncating
    // toward zero, as C does. For ab < 0 that is −⌊(2³⁰ − 1 − ab)/2³¹⌋ = ⌊(2³⁰ + ab)/2³¹⌋,
    // so both signs are one floor: an arithmetic shift, with no sign-dependent branch.
    ((a as i64 * b as i64 + (1 << 30)) >> 31) as i32
}

/// `x / 2^exponent` rounded to nearest, ties away from zero (gemmlowp's
/// `RoundingDivideByPOT`); `exponent` is taken in 0..=31.
#[inline]
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    divide_by_pot_in_range(x, exponent.clamp(0, 31) as u32)
}

/// [`rounding_divide_by_pot`] for an exponent already in 0..=31 (the wrapping shifts only mask
/// the amount, which such an exponent does not need; a larger one gives some value without
/// panicking).
#[inline(always)]
fn divide_by_pot_in_range(x: i32, exponent: u32) -> i32 {
    let mask = (1u32.wrapping_shl(exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + (x < 0) as i32;
    x.wrapping_shr(exponent) + (remainder > threshold) as i32
}

/// `acc·multiplier·2^(shift − 31)` in integers (TFLite's `MultiplyByQuantizedMultiplier`):
/// a left shift for positive `shift` (saturating), the doubling high multiply, then a
/// rounding right shift for negative `shift`. `shift` is taken in −31..=30.
#[inline]
pub fn requantize(acc: i32, multiplier: i32, shift: i32) -> i32 {
    let shift = shift.clamp(-31, 30);
    let left = shift.max(0);
    let right = (-shift).max(0);
    // Hidden layers of a calibrated model scale down (shift ≤ 0): skip the multiply then.
    let shifted = if left == 0 {
        acc
    } else {
        acc.saturating_mul(1 << left)
    };
    rounding_divide_by_pot(rounding_doubling_high_mul(shifted, multiplier), right)
}

/// [`requantize`] for the multipliers and shifts a parsed model holds (a multiplier ≥ 0 and a
/// shift in −31..=30, which the parser checks): the same value there, with neither the clamp
/// nor the saturating case (the product of two `i32::MIN`), which those ranges rule out. The
/// evaluators call it for every hidden channel, 128 times per evaluation of the 64-wide
/// network, where it is 13 Cortex-M4 instructions shorter. Other inputs give some value
/// without panicking.
#[inline]
pub fn requantize_parsed(acc: i32, multiplier: i32, shift: i32) -> i32 {
    if shift <= 0 {
        let high = doubling_high_mul_unsaturated(acc, multiplier);
        divide_by_pot_in_range(high, shift.wrapping_neg() as u32)
    } else {
        let shifted = acc.saturating_mul(1i32.wrapping_shl(shift as u32));
        doubling_high_mul_unsaturated(shifted, multiplier)
    }
}

/// How [`requantize`] rounds `acc·M·2^(shift − 31)` to an integer: the model file records it
/// (header byte 18) and every int8 evaluator follows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Rounding {
    /// gemmlowp's two roundings (code 0): the doubling high multiply rounds `acc·M/2³¹` to
    /// nearest (ties up), then the right shift rounds half away from zero. TFLite-Micro's and
    /// CMSIS-NN's kernels, and TFLite's built without `TFLITE_SINGLE_ROUNDING`.
    #[default]
    Double,
    /// One rounding (code 1): `(acc·M + 2^(30 − shift)) >> (31 − shift)` in 64 bits, ties up,
    /// saturated to i32 where it overflows (which `quantize`'s shifts never reach). TFLite's
    /// reference kernels built with `TFLITE_SINGLE_ROUNDING` (LiteRT).
    Single,
}

impl Rounding {
    /// The file's code.
    pub fn code(self) -> u8 {
        match self {
            Rounding::Double => 0,
            Rounding::Single => 1,
        }
    }

    /// The rounding of a file's code.
    pub fn from_code(code: u8) -> Option<Rounding> {
        match code {
            0 => Some(Rounding::Double),
            1 => Some(Rounding::Single),
            _ => None,
        }
    }
}

/// `acc·multiplier·2^(shift − 31)` rounded once, ties up (TFLite's
/// `MultiplyByQuantizedMultiplier` with `TFLITE_SINGLE_ROUNDING`), saturated to i32. `shift`
/// is taken in −31..=30.
#[inline]
pub fn requantize_single(acc: i32, multiplier: i32, shift: i32) -> i32 {
    let total = (31 - shift.clamp(-31, 30)) as u32; // 1..=62
    let product = acc as i64 * multiplier as i64 + (1i64 << (total - 1));
    (product >> total).clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// [`requantize`] or [`requantize_single`], as `rounding` says, for the multipliers and shifts
/// a parsed model holds (see [`requantize_parsed`]).
#[inline(always)]
pub fn requantize_with(rounding: Rounding, acc: i32, multiplier: i32, shift: i32) -> i32 {
    match rounding {
        Rounding::Double => requantize_parsed(acc, multiplier, shift),
        Rounding::Single => requantize_single(acc, multiplier, shift),
    }
}

/// The Q31 multiplier and shift for a positive real multiplier (TFLite's
/// `QuantizeMultiplier`): `real ≈ multiplier·2^(shift − 31)` with `multiplier ∈ [2³⁰, 2³¹)`.
/// Multipliers too small for the shift range, zero, or not finite give `(0, 0)`; too large
/// ones saturate at the largest shift.
pub fn quantize_multiplier(real: f64) -> (i32, i32) {
    if !(real.is_finite() && real > 0.0) {
        return (0, 0);
    }
    let (mantissa, mut shift) = libm::frexp(real); // real = mantissa·2^shift, mantissa ∈ [0.5, 1)
    let mut fixed = libm::round(mantissa * (1u64 << 31) as f64) as i64;
    if fixed == 1 << 31 {
        fixed /= 2;
        shift += 1;
    }
    if shift < -31 {
        return (0, 0);
    }
    if shift > 30 {
        return (i32::MAX, 30);
    }
    (fixed as i32, shift)
}

/// The 256-entry int8 SiLU table from the `input` to the `output` quantization, entry
/// `q + 128` for input level `q`: each entry is SiLU of the dequantized level, computed in f64
/// and quantized with rounding half away from zero (TFLite's `LUTPopulate`, in double
/// precision so the table does not depend on a float `exp`).
pub fn silu_lut(input: QuantParams, output: QuantParams) -> [i8; 256] {
    core::array::from_fn(|i| {
        let x = input.scale as f64 * (i as i32 - 128 - input.zero_point) as f64;
        let silu = x / (1.0 + libm::exp(-x));
        let level = libm::round(silu / output.scale as f64);
        (level.clamp(-512.0, 512.0) as i32 + output.zero_point).clamp(-128, 127) as i8
    })
}

/// Largest |SiLU'(x)| over the reals (at x ≈ 2.40), used in the accuracy bound above.
pub const SILU_MAX_SLOPE: f32 = 1.0998;

/// The Fourier time features of the network input, shared by both evaluators, training and
/// calibration: `(sin, cos)` of `2π·t·w`, with the angle computed in PyTorch's order.
#[inline]
pub fn time_feature(t: f32, w: f32) -> (f32, f32) {
    math::sin_cos_bounded(t * w * 2.0 * core::f32::consts::PI)
}
