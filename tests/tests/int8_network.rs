//! The integer-only int8 network against an independent, straightforward implementation of
//! the TFLite-Micro formulas, the accuracy bounds of its approximations, and its error
//! against the float model.

use tinyscore::model::quant::{
    quantize_multiplier, requantize, requantize_parsed, requantize_single, silu_lut, QuantParams,
    SILU_MAX_SLOPE,
};
use tinyscore::model::{Int8Layer, Model, ModelError, Precision, HEADER_LEN};
use tinyscore::{math, particle_rng, Int8Score, NeuralScore, Score};
use tinyscore_host::quantize::{diffused_inputs, report};
use tinyscore_tests::{
    raw_moons, reference_int8, reference_model_bytes, reference_network, with_field,
    CALIBRATION_POINTS,
};

/// TFLite's `MultiplyByQuantizedMultiplier`, written from its definition with 128-bit
/// integers: `x·2^left` (saturated to i32), then `SaturatingRoundingDoublingHighMul` =
/// round-to-nearest of `x·M / 2³¹` with ties toward +∞ (its nudge of 2³⁰ or 1 − 2³⁰ and C's
/// truncating division), then `RoundingDivideByPOT` = round-to-nearest of `y / 2^right`
/// with ties away from zero.
fn reference_requantize(acc: i32, multiplier: i32, shift: i32) -> i32 {
    let left = shift.max(0) as u32;
    let right = (-shift).max(0) as u32;
    let x = (acc as i128 * (1i128 << left)).clamp(i32::MIN as i128, i32::MAX as i128);
    let product = x * multiplier as i128;
    // floor(p / 2³¹ + 1/2) = floor((2p + 2³¹) / 2³²)
    let high = (2 * product + (1i128 << 31)).div_euclid(1i128 << 32);
    let high = high.clamp(i32::MIN as i128, i32::MAX as i128);
    if right == 0 {
        return high as i32;
    }
    let magnitude = (high.abs() + (1i128 << (right - 1))) >> right;
    (high.signum() * magnitude) as i32
}

/// TFLite's `MultiplyByQuantizedMultiplier` built with `TFLITE_SINGLE_ROUNDING` (LiteRT's
/// reference kernels), from its definition in 128-bit integers: `x·M + 2^(30 − shift)`
/// shifted right by `31 − shift` (floor), saturated to i32 where TFLite only asserts.
fn reference_single_rounding(acc: i32, multiplier: i32, shift: i32) -> i32 {
    let total = 31 - shift;
    let rounded = (acc as i128 * multiplier as i128 + (1i128 << (total - 1))) >> total;
    rounded.clamp(i32::MIN as i128, i32::MAX as i128) as i32
}

#[test]
fn single_rounding_is_bit_exact_with_the_tflite_formula_and_within_one_of_double() {
    let mut rng = particle_rng(11, 0);
    let mut next = || rand_core::Rng::next_u32(&mut rng);
    let edges = [0, 1, -1, 2, -2, i32::MAX, i32::MIN, 1 << 30, -(1 << 30)];
    for acc in edges {
        for multiplier in [0, 1 << 30, (1 << 30) + 1, i32::MAX, 1_518_500_250] {
            for shift in -31..=30 {
                assert_eq!(
                    requantize_single(acc, multiplier, shift),
                    reference_single_rounding(acc, multiplier, shift),
                    "acc {acc} M {multiplier} shift {shift}"
                );
            }
        }
    }
    // Random accumulators of every magnitude, and exact ties (acc·M a multiple of half the
    // divisor), where the two roundings part: single rounds ties up, double may round twice.
    let mut differ = 0u32;
    for i in 0..1_000_000 {
        let shift = -((next() % 31) as i32) - 1;
        let (acc, multiplier) = if i % 4 == 0 {
            let total = (31 - shift) as u32;
            (((next() as i32) >> 8) << (total - 31).min(20), 1 << 30)
        } else {
            (
                (next() as i32) >> (next() % 32),
                ((1u32 << 30) | (next() >> 2)) as i32,
            )
        };
        let single = requantize_single(acc, multiplier, shift);
        assert_eq!(single, reference_single_rounding(acc, multiplier, shift));
        let double = requantize_parsed(acc, multiplier, shift);
        assert!(
            (single - double).abs() <= 1,
            "acc {acc} M {multiplier} shift {shift}"
        );
        differ += (single != double) as u32;
    }
    // The two roundings are different functions (ties below zero at least).
    assert!(differ > 0);
}

#[test]
fn requantization_is_bit_exact_with_the_tflite_formula() {
    let mut rng = particle_rng(7, 0);
    let mut next = || rand_core::Rng::next_u32(&mut rng);
    let mut checked = 0u64;
    // Edge cases: zero, ±1, the i32 extremes, exact ties of both roundings.
    let edges = [
        0,
        1,
        -1,
        2,
        -2,
        3,
        -3,
        i32::MAX,
        i32::MIN,
        1 << 30,
        -(1 << 30),
    ];
    for acc in edges {
        for multiplier in [0, 1 << 30, (1 << 30) + 1, i32::MAX, 1_518_500_250] {
            for shift in -31..=30 {
                let want = reference_requantize(acc, multiplier, shift);
                assert_eq!(
                    requantize(acc, multiplier, shift),
                    want,
                    "acc {acc} M {multiplier} shift {shift}"
                );
                // Every multiplier and shift here is one a parsed model may hold.
                assert_eq!(
                    requantize_parsed(acc, multiplier, shift),
                    want,
                    "parsed: acc {acc} M {multiplier} shift {shift}"
                );
                checked += 1;
            }
        }
    }
    // 10⁶ random accumulators of every magnitude with normalised multipliers.
    for _ in 0..1_000_000 {
        let acc = (next() as i32) >> (next() % 32);
        let multiplier = ((1u32 << 30) | (next() >> 2)) as i32;
        let shift = (next() % 62) as i32 - 31;
        let want = reference_requantize(acc, multiplier, shift);
        assert_eq!(
            requantize(acc, multiplier, shift),
            want,
            "acc {acc} M {multiplier} shift {shift}"
        );
        assert_eq!(
            requantize_parsed(acc, multiplier, shift),
            want,
            "parsed: acc {acc} M {multiplier} shift {shift}"
        );
        checked += 1;
    }
    println!("{checked} requantizations bit-exact");
}

/// `QuantParams::quantize` against TFLite's `Quantize` written with std's `round` (half away
/// from zero): the same level for every input — ties `k + ½` and their neighbours one unit in
/// the last place away, 10⁶ random bit patterns (every magnitude, ±∞, NaN), and the range
/// ends — for scales and zero points that put the clamps at both ends and in the middle.
#[test]
fn input_quantization_rounds_as_tflite_does() {
    let reference = |q: &QuantParams, real: f32| -> i8 {
        let level = (real / q.scale).round();
        let level = if level.is_nan() { 0.0 } else { level };
        (level.clamp(-256.0, 256.0) as i32 + q.zero_point).clamp(-128, 127) as i8
    };
    let params = [
        QuantParams {
            scale: 0.031_368,
            zero_point: 1,
        },
        QuantParams {
            scale: 1.0,
            zero_point: 0,
        },
        QuantParams {
            scale: 0.1,
            zero_point: -128,
        },
        QuantParams {
            scale: 3.0e-3,
            zero_point: 127,
        },
    ];
    let mut rng = particle_rng(11, 0);
    let mut next = || rand_core::Rng::next_u32(&mut rng);
    let mut inputs: Vec<f32> = (0..1_000_000).map(|_| f32::from_bits(next())).collect();
    for k in -300..=300 {
        let tie = k as f32 + 0.5;
        inputs.extend([tie, tie.next_up(), tie.next_down(), k as f32]);
    }
    inputs.extend([
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MAX,
        f32::MIN,
    ]);
    for q in &params {
        for &level in &inputs {
            // Inputs that are exact levels, ties and their neighbours, once multiplied back.
            for real in [level, level * q.scale] {
                assert_eq!(q.quantize(real), reference(q, real), "{real} with {q:?}");
            }
        }
    }
}

#[test]
fn requantization_is_within_one_unit_of_the_exact_product() {
    // Stated bound (core/src/model/quant.rs): two roundings to nearest, so |q − exact| ≤ 1.
    // It must also be attained only near ties: the mean error of an unbiased rounding pair
    // stays below a tenth of a unit over 10⁵ draws.
    let mut rng = particle_rng(8, 0);
    let mut next = || rand_core::Rng::next_u32(&mut rng);
    let (mut worst, mut sum) = (0.0f64, 0.0f64);
    let draws = 100_000;
    for _ in 0..draws {
        let acc = (next() as i32) >> 8;
        let real = 1e-4 + (next() as f64 / u32::MAX as f64) * 0.5;
        let (multiplier, shift) = quantize_multiplier(real);
        let exact = acc as f64 * multiplier as f64 * 2f64.powi(shift - 31);
        let error = requantize(acc, multiplier, shift) as f64 - exact;
        worst = worst.max(error.abs());
        sum += error;
        // The Q31 multiplier itself is within 2⁻³¹ relative of the real one.
        let represented = multiplier as f64 * 2f64.powi(shift - 31);
        assert!((represented / real - 1.0).abs() <= 2f64.powi(-31));
    }
    assert!(worst <= 1.0, "worst requantization error {worst}");
    assert!(
        (sum / draws as f64).abs() < 0.1,
        "biased: {}",
        sum / draws as f64
    );
    println!("worst requantization error {worst:.3} units");
}

/// The SiLU table from TFLite's `LUTPopulate` written out directly (dequantize, SiLU in f64,
/// divide by the output scale, round half away from zero, add the zero point, clamp).
fn reference_lut(input: QuantParams, output: QuantParams) -> Vec<i8> {
    (-128i32..=127)
        .map(|q| {
            let x = input.scale as f64 * (q - input.zero_point) as f64;
            let y = x / (1.0 + (-x).exp());
            let level = (y / output.scale as f64).round() as i64 + output.zero_point as i64;
            level.clamp(-128, 127) as i8
        })
        .collect()
}

fn hidden_layers<'a>(model: &Model<'a>) -> Vec<Int8Layer<'a>> {
    (0..model.header().dims.layers)
        .map(|i| model.int8_layer(i).expect("an int8 layer"))
        .collect()
}

#[test]
fn silu_tables_are_bit_exact_and_within_half_a_step() {
    let (_, bytes) = reference_int8();
    let model = Model::parse(&bytes).unwrap();
    assert_eq!(model.header().precision, Precision::Int8);
    for (i, layer) in hidden_layers(&model).iter().enumerate() {
        let (pre, post) = layer.activation().expect("hidden layers have a table");
        let stored: Vec<i8> = (-128..=127).map(|q| layer.silu(q as i8)).collect();
        assert_eq!(stored, reference_lut(pre, post), "layer {i}");
        assert_eq!(stored, silu_lut(pre, post).to_vec(), "layer {i}");
        // Stated bound: against SiLU of the quantized input, half an output step unless the
        // value lies outside the output's int8 range (then clamped to it).
        for q in -128i32..=127 {
            let x = pre.dequantize(q as i8) as f64;
            let exact = x / (1.0 + (-x).exp());
            let (lo, hi) = (post.dequantize(-128) as f64, post.dequantize(127) as f64);
            let got = post.dequantize(layer.silu(q as i8)) as f64;
            let bound = post.scale as f64 / 2.0 + 1e-6;
            assert!(
                (got - exact.clamp(lo, hi)).abs() <= bound,
                "layer {i} level {q}: {got} vs {exact}"
            );
        }
    }
    // And against SiLU of the real input (clamped to the output's range, whose top the
    // quantizer clips), the input's rounding adds max|SiLU'|·s_in/2: checked on a fine grid
    // inside the first layer's pre-activation range.
    let layer = hidden_layers(&model)[0];
    let (pre, post) = layer.activation().unwrap();
    let (lo, hi) = (pre.dequantize(-128), pre.dequantize(127));
    let (post_lo, post_hi) = (post.dequantize(-128), post.dequantize(127));
    let bound = post.scale / 2.0 + SILU_MAX_SLOPE * pre.scale / 2.0 + 1e-5;
    for k in 0..=10_000 {
        let x = lo + (hi - lo) * k as f32 / 10_000.0;
        let exact = (x / (1.0 + (-x).exp())).clamp(post_lo, post_hi);
        let got = post.dequantize(layer.silu(pre.quantize(x)));
        assert!(
            (got - exact).abs() <= bound,
            "x {x}: {got} vs {exact} (bound {bound})"
        );
    }
}

/// The int8 sums of layer `upto` (0 = the first), computed independently from the file's
/// quantities: i64 accumulators of `w·(q − z)` and, for the layers before it, the reference
/// requantization and table.
fn reference_sums(model: &Model<'_>, x: &[f32], t: f32, upto: u32) -> Vec<i64> {
    let first = model.int8_layer(0).unwrap();
    let input = first.input();
    let quantize = |v: f32| {
        let level = (v / input.scale).round() as i64 + input.zero_point as i64;
        level.clamp(-128, 127)
    };
    let mut features: Vec<f32> = x.to_vec();
    let angles: Vec<f32> = model
        .frequencies()
        .map(|w| t * w * 2.0 * std::f32::consts::PI)
        .collect();
    features.extend(angles.iter().map(|&a| math::sin_cos(a).0));
    features.extend(angles.iter().map(|&a| math::sin_cos(a).1));
    let mut levels: Vec<i64> = features.iter().map(|&v| quantize(v)).collect();
    let mut zero = input.zero_point as i64;
    for i in 0..=upto {
        let layer = model.int8_layer(i).unwrap();
        let sums: Vec<i64> = (0..layer.outputs())
            .map(|o| {
                layer.bias(o) as i64
                    + (0..layer.inputs())
                        .map(|j| layer.weight(o, j) as i64 * (levels[j] - zero))
                        .sum::<i64>()
            })
            .collect();
        if i == upto {
            return sums;
        }
        let (pre, post) = layer.activation().unwrap();
        let lut = reference_lut(pre, post);
        levels = sums
            .iter()
            .enumerate()
            .map(|(o, acc)| {
                let (m, shift) = layer.requantization(o).unwrap();
                let q = reference_requantize(*acc as i32, m, shift) as i64 + pre.zero_point as i64;
                lut[(q.clamp(-128, 127) + 128) as usize] as i64
            })
            .collect();
        zero = post.zero_point as i64;
    }
    unreachable!("the loop returns at layer `upto`")
}

/// The int8 network computed independently from the file's quantities: the output layer's
/// [`reference_sums`], dequantized.
fn reference_forward(model: &Model<'_>, x: &[f32], t: f32) -> Vec<f32> {
    let output = model.int8_layer(model.header().dims.layers).unwrap();
    let sums = reference_sums(model, x, t, model.header().dims.layers);
    sums.iter()
        .enumerate()
        .map(|(o, acc)| *acc as f32 * (output.input().scale * output.weight_scale(o)))
        .collect()
}

#[test]
fn int8_network_is_bit_exact_with_the_independent_implementation() {
    let (_, bytes) = reference_int8();
    let model = Model::parse(&bytes).unwrap();
    let network = reference_network();
    let inputs = diffused_inputs(&network, &raw_moons(2000, 3), 2000, 3).unwrap();
    let score = NeuralScore::<2>::new(model).unwrap();
    let mut batch_in = Vec::new();
    for (x, t) in &inputs {
        let expected = reference_forward(&model, x, *t);
        let x = [x[0], x[1]];
        let got = score.predict_noise(&x, *t);
        assert_eq!(
            got.map(f32::to_bits).to_vec(),
            expected.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "x {x:?} t {t}"
        );
        batch_in.push((x, *t));
    }
    // The 8-lane batched path gives the same bits (one t per batch, as in sampling).
    let t = 0.37;
    let xs: Vec<[f32; 2]> = batch_in.iter().map(|(x, _)| *x).take(203).collect();
    let mut batch = vec![[0.0f32; 2]; xs.len()];
    score.score_batch(&xs, t, &mut batch);
    for (x, got) in xs.iter().zip(&batch) {
        assert_eq!(got.map(f32::to_bits), score.score(x, t).map(f32::to_bits));
    }
}

#[test]
fn int8_noise_prediction_is_within_3_percent_rms_of_f32() {
    let (quantized, _) = reference_int8();
    let network = reference_network();
    let float = reference_model_bytes();
    // 10⁴ fresh calibration-like inputs (other data, other noise than the calibration).
    let eval = diffused_inputs(&network, &raw_moons(10_000, 11), 10_000, 11).unwrap();
    let report = report(
        &float,
        &quantized,
        Vec::new(),
        CALIBRATION_POINTS,
        &eval,
        &[],
        &tinyscore_host::progress::Progress::silent(),
    )
    .unwrap();
    println!("{report}");
    assert!(
        report.relative_rms_error <= 0.03,
        "int8 ε̂ is {:.2}% RMS from f32",
        100.0 * report.relative_rms_error
    );
}

#[test]
fn int8_write_then_parse_is_lossless() {
    let (quantized, bytes) = reference_int8();
    let model = Model::parse(&bytes).unwrap();
    let first = model.int8_layer(0).unwrap();
    assert_eq!(first.input(), quantized.input);
    for (i, layer) in quantized.layers.iter().enumerate() {
        let parsed = model.int8_layer(i as u32).unwrap();
        let (inputs, outputs) = (parsed.inputs(), parsed.outputs());
        assert_eq!(layer.weights.len(), inputs * outputs);
        for o in 0..outputs {
            for j in 0..inputs {
                assert_eq!(parsed.weight(o, j), layer.weights[o * inputs + j]);
            }
            assert_eq!(parsed.bias(o), layer.bias[o]);
            assert_eq!(
                parsed.weight_scale(o).to_bits(),
                layer.weight_scale[o].to_bits()
            );
        }
        match &layer.activation {
            Some(a) => {
                assert_eq!(parsed.activation(), Some((a.pre, a.post)));
                for o in 0..outputs {
                    assert_eq!(
                        parsed.requantization(o),
                        Some((a.multiplier[o], a.shift[o] as i32))
                    );
                }
            }
            None => assert_eq!(parsed.activation(), None),
        }
    }
    assert_eq!(quantized.to_bytes().unwrap(), bytes);
}

#[test]
fn out_of_range_int8_quantities_are_refused_even_with_a_valid_checksum() {
    let (_, bytes) = reference_int8();
    let model = Model::parse(&bytes).unwrap();
    let dims = model.header().dims;
    let n = dims.dim as usize;
    let input_params = HEADER_LEN + 4 * (2 * n + dims.fourier as usize);
    let (inputs, outputs) = dims.layer_shape(0);
    let bias = input_params + 8 + inputs * outputs;
    let multiplier = bias + 8 * outputs;
    let shift = multiplier + 4 * outputs;
    let pre = shift + outputs;
    for (offset, value, what) in [
        (input_params, 0f32.to_le_bytes(), "zero input scale"),
        (input_params, (-1f32).to_le_bytes(), "negative input scale"),
        (
            input_params + 4,
            128i32.to_le_bytes(),
            "input zero point 128",
        ),
        (
            input_params + 4,
            (-129i32).to_le_bytes(),
            "input zero point -129",
        ),
        (bias, ((1 << 30) + 1i32).to_le_bytes(), "bias above 2^30"),
        (multiplier, 5i32.to_le_bytes(), "unnormalised multiplier"),
        (
            multiplier,
            (-(1i32 << 30)).to_le_bytes(),
            "negative multiplier",
        ),
        (pre + 4, 300i32.to_le_bytes(), "pre-activation zero point"),
    ] {
        let err = Model::parse(&with_field(&bytes, offset, &value)).unwrap_err();
        assert!(
            matches!(err, ModelError::InvalidParameter(_)),
            "{what}: {err:?}"
        );
    }
    for s in [31i8, 100, -32, -128] {
        let err = Model::parse(&with_field(&bytes, shift, &[s as u8])).unwrap_err();
        assert!(
            matches!(err, ModelError::InvalidParameter(_)),
            "shift {s}: {err:?}"
        );
    }
    let nan_scale = with_field(&bytes, multiplier - 4, &f32::NAN.to_le_bytes());
    assert!(matches!(
        Model::parse(&nan_scale),
        Err(ModelError::NonFinite { .. })
    ));
}

#[test]
fn the_rounding_byte_is_read_and_checked() {
    use tinyscore::model::Rounding;
    let double = reference_int8().1;
    assert_eq!(
        Model::parse(&double).unwrap().header().rounding,
        Rounding::Double
    );
    let single = with_field(&double, 18, &[1]);
    assert_eq!(
        Model::parse(&single).unwrap().header().rounding,
        Rounding::Single
    );
    // An unknown code, a rounding on an f32 model, and the reserved byte after it.
    let err = Model::parse(&with_field(&double, 18, &[2])).unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::UnknownCode {
                field: "rounding",
                value: 2
            }
        ),
        "{err:?}"
    );
    let float = reference_model_bytes();
    let err = Model::parse(&with_field(&float, 18, &[1])).unwrap_err();
    assert!(matches!(err, ModelError::InvalidParameter(_)), "{err:?}");
    let err = Model::parse(&with_field(&double, 19, &[1])).unwrap_err();
    assert!(matches!(err, ModelError::InvalidParameter(_)), "{err:?}");
    // The two roundings give two networks: the same file but byte 18 samples other bits.
    let eps = |bytes: &[u8]| {
        let model = Model::parse(bytes).unwrap();
        let score = Int8Score::<2>::new(model).unwrap();
        (0..200)
            .map(|i| score.score(&[0.01 * i as f32 - 1.0, 0.3], 0.05 + 0.004 * i as f32))
            .collect::<Vec<_>>()
    };
    assert_ne!(eps(&double), eps(&single));
}

#[test]
fn the_gaussian_tail_mass_matches_the_chi_distribution() {
    use tinyscore_host::quantize::gaussian_tail_mass;
    // P(‖z‖ > r) against Simpson's rule on the chi density r^(n−1)·e^(−r²/2)/(2^(n/2−1)Γ(n/2))
    // from r to 12 (the mass beyond 12 is below 1e-25 for n ≤ 8); 4000 intervals make the
    // quadrature error far below the 1e-9 tolerance.
    fn gamma_half(n: usize) -> f64 {
        // Γ(n/2) from Γ(1/2) = √π and Γ(1) = 1.
        let (mut g, mut a) = if n % 2 == 0 {
            (1.0, 1.0)
        } else {
            (std::f64::consts::PI.sqrt(), 0.5)
        };
        while a < n as f64 / 2.0 {
            g *= a;
            a += 1.0;
        }
        g
    }
    for n in 1..=8usize {
        let density = |r: f64| {
            r.powi(n as i32 - 1) * (-r * r / 2.0).exp()
                / (2f64.powf(n as f64 / 2.0 - 1.0) * gamma_half(n))
        };
        for r in [0.5, 1.0, 2.0, 3.5, 5.0] {
            let steps = 4000;
            let h = (12.0 - r) / steps as f64;
            let simpson: f64 = (0..=steps)
                .map(|k| {
                    let w = if k == 0 || k == steps {
                        1.0
                    } else if k % 2 == 1 {
                        4.0
                    } else {
                        2.0
                    };
                    w * density(r + k as f64 * h)
                })
                .sum::<f64>()
                * h
                / 3.0;
            let closed = gaussian_tail_mass(n, r);
            assert!(
                (closed - simpson).abs() <= 1e-9 * simpson.max(1e-12) + 1e-15,
                "n {n} r {r}: {closed} vs {simpson}"
            );
        }
    }
}

#[test]
fn the_faithful_radius_finds_where_int8_saturates_and_nothing_in_an_identical_model() {
    use tinyscore_host::quantize::faithful_radius;
    let float = reference_model_bytes();
    // A model follows itself everywhere the probe looks (up to radius 10).
    assert_eq!(faithful_radius(&float, &float).unwrap(), 10.0);
    // The int8 model's calibrated ranges end somewhere beyond the bulk of the prior: past
    // radius 3 (prior mass beyond: 1 %, which calibration covers many times over) and
    // before 10.
    let (_, int8) = reference_int8();
    let radius = faithful_radius(&float, &int8).unwrap();
    println!("reference int8 model: faithful to radius {radius}");
    assert!((3.0..10.0).contains(&radius), "radius {radius}");
}

/// The float network's pre-activations of hidden layer `layer` (0 = the first).
fn float_pre_activations(
    network: &tinyscore_host::model_file::Network,
    x: &[f32],
    t: f32,
    layer: usize,
) -> Vec<f32> {
    let mut a = x.to_vec();
    let (sin, cos): (Vec<f32>, Vec<f32>) = network
        .fourier
        .iter()
        .map(|&w| tinyscore::model::quant::time_feature(t, w))
        .unzip();
    a.extend(sin.iter().chain(&cos));
    for (k, (weights, bias)) in network.layers.iter().enumerate() {
        let pre: Vec<f32> = bias
            .iter()
            .zip(weights.chunks_exact(a.len()))
            .map(|(b, row)| row.iter().zip(&a).map(|(w, v)| w * v).sum::<f32>() + b)
            .collect();
        if k == layer {
            return pre;
        }
        a = pre.iter().map(|&v| v / (1.0 + (-v).exp())).collect();
    }
    unreachable!("a hidden layer's index")
}

/// `quantize` corrects each hidden layer's biases for the mean error of its int8 sums, so on
/// fresh inputs every hidden channel's int8 pre-activation is unbiased against the float
/// network's: its mean error over 10⁴ inputs is within five standard errors (the calibration
/// and the fresh inputs are two draws of the same distribution) plus the half bias unit the
/// correction rounds to. Without the correction this fails: the rounded weights and inputs
/// leave a layer-1 channel 4.5 bias units off against a bound of 3.7, and rounding the wide
/// layer-1 SiLU output to its grid (and clipping its top) biases layer 2's sums.
#[test]
fn hidden_int8_sums_are_unbiased_against_the_float_network() {
    let (_, bytes) = reference_int8();
    let model = Model::parse(&bytes).unwrap();
    let network = reference_network();
    let inputs = diffused_inputs(&network, &raw_moons(10_000, 11), 10_000, 11).unwrap();
    let dims = model.header().dims;
    let n = inputs.len() as f64;
    let mut worst = 0.0f64;
    for i in 0..dims.layers {
        let layer = model.int8_layer(i).unwrap();
        let (mut sum, mut sum2) = (vec![0.0f64; layer.outputs()], vec![0.0f64; layer.outputs()]);
        for (x, t) in &inputs {
            let sums = reference_sums(&model, x, *t, i);
            let pre = float_pre_activations(&network, x, *t, i as usize);
            for o in 0..layer.outputs() {
                let unit = layer.input().scale as f64 * layer.weight_scale(o) as f64;
                let error = sums[o] as f64 - pre[o] as f64 / unit;
                sum[o] += error;
                sum2[o] += error * error;
            }
        }
        for (o, (s, s2)) in sum.iter().zip(&sum2).enumerate() {
            let mean = s / n;
            let standard_error = ((s2 / n - mean * mean).max(0.0) / n).sqrt();
            let bound = 5.0 * standard_error + 0.5;
            worst = worst.max(mean.abs() / bound);
            assert!(
                mean.abs() <= bound,
                "layer {} channel {o}: mean int8 error {mean:.2} bias units, bound {bound:.2}",
                i + 1
            );
        }
    }
    println!("largest |mean error| / bound: {worst:.2}");
}

#[test]
fn the_int8_only_score_gives_the_neural_scores_bits_and_takes_only_int8_models() {
    // The firmware of a core without the DSP extension samples through `Int8Score`, which
    // links only the int8 evaluator: it must give `NeuralScore`'s bits, one point at a time
    // and batched.
    let (_, int8) = reference_int8();
    let model = Model::parse(&int8).unwrap();
    let (only, full) = (
        Int8Score::<2>::new(model).unwrap(),
        NeuralScore::<2>::new(model).unwrap(),
    );
    let mut rng = particle_rng(11, 0);
    let mut uniform = || (rand_core::Rng::next_u32(&mut rng) >> 8) as f32 / (1 << 24) as f32;
    let xs: Vec<[f32; 2]> = (0..40)
        .map(|_| [8.0 * uniform() - 4.0, 8.0 * uniform() - 4.0])
        .collect();
    for t in [1e-3, 0.3, 1.0] {
        let (mut a, mut b) = (vec![[0.0; 2]; xs.len()], vec![[0.0; 2]; xs.len()]);
        only.score_batch(&xs, t, &mut a);
        full.score_batch(&xs, t, &mut b);
        for ((x, a), b) in xs.iter().zip(&a).zip(&b) {
            assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits), "x {x:?} t {t}");
            assert_eq!(only.score(x, t).map(f32::to_bits), b.map(f32::to_bits));
        }
    }
    // Only an unpacked int8 model of its own dimension.
    let float = reference_model_bytes();
    for bytes in [float, tinyscore_tests::packed(&int8)] {
        assert!(matches!(
            Int8Score::<2>::new(Model::parse(&bytes).unwrap()),
            Err(ModelError::InvalidParameter(e)) if e.parameter == "model"
        ));
    }
    assert!(matches!(
        Int8Score::<3>::new(model),
        Err(ModelError::DimensionMismatch { .. })
    ));
}
