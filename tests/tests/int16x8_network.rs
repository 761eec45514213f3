//! The int16x8 network (int8 weights, int16 activations: TFLite's 16×8 mode) against an
//! independent implementation of its formulas, the accuracy of its interpolated SiLU, its
//! error against the float network of the same weights, and its parser's checks.

use tinyscore::model::quant::{silu_int16, QuantParams, SILU16_ENTRIES};
use tinyscore::model::{Int8Layer, Model, ModelError, Precision};
use tinyscore::{math, Int8Score, NeuralScore, Score};
use tinyscore_host::model_file::Network;
use tinyscore_host::quantize::{diffused_inputs, ActivationWidth, QuantizedNetwork, SiluLut};
use tinyscore_tests::{
    raw_moons, reference_int16x8, reference_network, reference_quantized, with_field,
    CALIBRATION_POINTS,
};

/// gemmlowp's requantization from its definition, in 128-bit integers (as in
/// `int8_network.rs`): the doubling high multiply rounding ties up, then the right shift
/// rounding half away from zero.
fn reference_requantize(acc: i64, multiplier: i32, shift: i32) -> i64 {
    let left = shift.max(0) as u32;
    let right = (-shift).max(0) as u32;
    let x = (acc as i128 * (1i128 << left)).clamp(i32::MIN as i128, i32::MAX as i128);
    let high = (2 * x * multiplier as i128 + (1i128 << 31)).div_euclid(1i128 << 32);
    if right == 0 {
        return high as i64;
    }
    let magnitude = (high.abs() + (1i128 << (right - 1))) >> right;
    (high.signum() * magnitude) as i64
}

/// SiLU's knots from their definition: entry `k` is SiLU at input level `128k − 32768`,
/// rounded half away from zero to an output level and clamped to i16.
fn reference_knots(pre: QuantParams, post: QuantParams) -> Vec<i64> {
    (0..SILU16_ENTRIES as i64)
        .map(|k| {
            let x = pre.scale as f64 * (128 * k - 32768) as f64;
            let silu = x / (1.0 + (-x).exp());
            (silu / post.scale as f64).round().clamp(-32768.0, 32767.0) as i64
        })
        .collect()
}

/// Level `q` through the knots: the knots around it joined by a line, rounded to nearest
/// (ties up), written with Euclidean division.
fn reference_interpolate(knots: &[i64], q: i64) -> i64 {
    let u = q + 32768;
    let (k, offset) = (u.div_euclid(128) as usize, u.rem_euclid(128));
    let (base, next) = (knots[k], knots[k + 1]);
    base + ((next - base) * offset + 64).div_euclid(128)
}

fn hidden_layers<'a>(model: &Model<'a>) -> Vec<Int8Layer<'a>> {
    (0..model.header().dims.layers)
        .map(|i| model.int8_layer(i).unwrap())
        .collect()
}

/// The network computed independently from the file's quantities: i64 sums, the reference
/// requantization clamped to i16, the reference knots interpolated, the output dequantized.
fn reference_forward(model: &Model<'_>, x: &[f32], t: f32) -> Vec<f32> {
    let input = model.int8_layer(0).unwrap().input();
    let quantize = |v: f32| ((v / input.scale).round() as i64).clamp(-32768, 32767);
    let angles: Vec<f32> = model
        .frequencies()
        .map(|w| t * w * 2.0 * std::f32::consts::PI)
        .collect();
    let mut features = x.to_vec();
    features.extend(angles.iter().map(|&a| math::sin_cos(a).0));
    features.extend(angles.iter().map(|&a| math::sin_cos(a).1));
    let mut levels: Vec<i64> = features.iter().map(|&v| quantize(v)).collect();
    let last = model.header().dims.layers;
    for i in 0..=last {
        let layer = model.int8_layer(i).unwrap();
        let sums: Vec<i64> = (0..layer.outputs())
            .map(|o| {
                layer.bias(o) as i64
                    + (0..layer.inputs())
                        .map(|j| layer.weight(o, j) as i64 * levels[j])
                        .sum::<i64>()
            })
            .collect();
        if i == last {
            return sums
                .iter()
                .enumerate()
                .map(|(o, acc)| *acc as f32 * (layer.input().scale * layer.weight_scale(o)))
                .collect();
        }
        let (pre, post) = layer.activation().unwrap();
        let knots = reference_knots(pre, post);
        levels = sums
            .iter()
            .enumerate()
            .map(|(o, acc)| {
                let (m, shift) = layer.requantization(o).unwrap();
                let q = reference_requantize(*acc, m, shift).clamp(-32768, 32767);
                reference_interpolate(&knots, q)
            })
            .collect();
    }
    unreachable!("the loop returns at the output layer")
}

#[test]
fn int16x8_network_is_bit_exact_with_the_independent_implementation() {
    let (_, bytes) = reference_int16x8();
    let model = Model::parse(&bytes).unwrap();
    assert_eq!(model.header().precision, Precision::Int16x8);
    let network = reference_network();
    let inputs = diffused_inputs(&network, &raw_moons(2000, 3), 2000, 3).unwrap();
    let score = NeuralScore::<2>::new(model).unwrap();
    let only = Int8Score::<2>::new(model).unwrap();
    for (x, t) in &inputs {
        let expected = reference_forward(&model, x, *t);
        let x = [x[0], x[1]];
        assert_eq!(
            score.predict_noise(&x, *t).map(f32::to_bits).to_vec(),
            expected.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "x {x:?} t {t}"
        );
        // The firmware's integer-only score gives the same bits.
        assert_eq!(
            only.score(&x, *t).map(f32::to_bits),
            score.score(&x, *t).map(f32::to_bits)
        );
    }
    // The batched path too (one t per batch, as in sampling).
    let xs: Vec<[f32; 2]> = inputs.iter().map(|(x, _)| [x[0], x[1]]).take(203).collect();
    for t in [1e-3, 0.37] {
        let mut batch = vec![[0.0f32; 2]; xs.len()];
        score.score_batch(&xs, t, &mut batch);
        for (x, got) in xs.iter().zip(&batch) {
            assert_eq!(got.map(f32::to_bits), score.score(x, t).map(f32::to_bits));
        }
    }
}

#[test]
fn silu_knots_are_exact_and_interpolation_is_within_its_bound() {
    let (quantized, bytes) = reference_int16x8();
    let model = Model::parse(&bytes).unwrap();
    for (layer, written) in hidden_layers(&model).iter().zip(&quantized.layers) {
        let (pre, post) = layer.activation().unwrap();
        assert_eq!(pre.zero_point, 0);
        assert_eq!(post.zero_point, 0);
        let knots = reference_knots(pre, post);
        let Some(SiluLut::Int16(written)) = written.activation.as_ref().map(|a| &a.lut) else {
            panic!("an int16x8 hidden layer has an int16 table");
        };
        assert_eq!(written.iter().map(|&k| k as i64).collect::<Vec<_>>(), knots);
        let table: Vec<u8> = knots
            .iter()
            .flat_map(|&k| (k as i16).to_le_bytes())
            .collect();
        // Every level, against the independent interpolation and against SiLU itself: the
        // knots are within half an output step of SiLU, the interpolation's rounding adds
        // half a step, and a line between two points of SiLU is within h²/8·max|SiLU''| of
        // it (h = 128 input steps, max|SiLU''| = SiLU''(0) = 1/2).
        let h = 128.0 * pre.scale as f64;
        let bound = post.scale as f64 + h * h / 16.0;
        let mut worst = 0.0f64;
        for q in i16::MIN..=i16::MAX {
            let got = silu_int16(&table, q);
            assert_eq!(
                got as i64,
                reference_interpolate(&knots, q as i64),
                "level {q}"
            );
            let x = pre.scale as f64 * q as f64;
            let silu = x / (1.0 + (-x).exp());
            // Where the knots around q are not clamped to the int16 range.
            let k = (q as i64 + 32768) as usize / 128;
            if knots[k].abs() < 32767 && knots[k + 1].abs() < 32767 {
                worst = worst.max((post.scale as f64 * got as f64 - silu).abs());
            }
        }
        assert!(
            worst <= bound,
            "interpolated SiLU is {worst:.3e} from SiLU, above {bound:.3e}"
        );
    }
}

/// The f32 network whose weights and biases are exactly the quantized network's: what the
/// integer network computes but for the rounding of its activations.
fn same_weights_in_float(quantized: &QuantizedNetwork) -> Vec<u8> {
    let mut network: Network = quantized.float.clone();
    let mut s_in = quantized.input.scale as f64;
    for ((weights, bias), layer) in network.layers.iter_mut().zip(&quantized.layers) {
        let inputs = weights.len() / bias.len();
        for (o, (b, s_w)) in bias.iter_mut().zip(&layer.weight_scale).enumerate() {
            for j in 0..inputs {
                weights[o * inputs + j] = layer.weights[o * inputs + j] as f32 * s_w;
            }
            *b = (layer.bias[o] as f64 * s_in * *s_w as f64) as f32;
        }
        if let Some(a) = &layer.activation {
            s_in = a.post.scale as f64;
        }
    }
    network.to_bytes().unwrap()
}

fn parse(b: &[u8]) -> Model<'_> {
    Model::parse(b).unwrap()
}

/// `‖ε̂_a − ε̂_b‖ / ‖ε̂_b‖` over `inputs`.
fn relative_rms(a: &Model<'_>, b: &Model<'_>, inputs: &[(Vec<f32>, f32)]) -> f64 {
    let (mut d2, mut r2) = (0.0f64, 0.0f64);
    let (mut u, mut v) = ([0.0f32; 2], [0.0f32; 2]);
    for (x, t) in inputs {
        a.predict_noise(x, *t, &mut u).unwrap();
        b.predict_noise(x, *t, &mut v).unwrap();
        for (u, v) in u.iter().zip(&v) {
            d2 += (*u as f64 - *v as f64).powi(2);
            r2 += (*v as f64).powi(2);
        }
    }
    (d2 / r2).sqrt()
}

#[test]
fn int16_activations_take_the_activation_error_out() {
    // The same weights at both widths: against the f32 network of those weights, what is
    // left is the activations' rounding (and clamping), whose steps are about 256 times finer
    // at int16 (and the interpolated SiLU's error is within a step, above). The error is
    // linear in the steps where it is small, so int16's must be far below int8's; 1/50
    // leaves room for the small-t inputs' clamped tails (fresh draws, not calibration ones).
    let network = reference_network();
    let small_t = tinyscore_host::quantize::diffused_inputs_over(
        &network,
        &raw_moons(4000, 21),
        4000,
        21,
        (network.t_end, 0.02),
    )
    .unwrap();
    // Every fourth calibration input: within every calibrated range, so nothing is clamped
    // at int16, whose ranges are the whole observed ones.
    let calibration = diffused_inputs(
        &network,
        &raw_moons(CALIBRATION_POINTS, 0),
        CALIBRATION_POINTS,
        0,
    )
    .unwrap();
    let all_t: Vec<_> = calibration.into_iter().step_by(4).collect();
    let rounding = tinyscore::model::Rounding::Double;
    let (int8, int8_bytes) = reference_quantized(ActivationWidth::Int8, rounding);
    let (int16, int16_bytes) = reference_quantized(ActivationWidth::Int16, rounding);
    assert_eq!(int8.layers[0].weights, int16.layers[0].weights);
    let float8 = same_weights_in_float(&int8);
    let float16 = same_weights_in_float(&int16);
    for (name, inputs) in [("t ≤ 0.02", &small_t), ("all t", &all_t)] {
        let e8 = relative_rms(&parse(&int8_bytes), &parse(&float8), inputs);
        let e16 = relative_rms(&parse(&int16_bytes), &parse(&float16), inputs);
        println!("{name}: activation error int8 {e8:.3e}, int16 {e16:.3e}");
        assert!(
            e16 <= e8 / 50.0,
            "{name}: int16 activations leave {e16:.3e} of int8's {e8:.3e}"
        );
    }
}

#[test]
fn the_parser_refuses_what_int16_activations_cannot_hold() {
    let (quantized, bytes) = reference_int16x8();
    assert!(Model::parse(&bytes).is_ok());
    // The input's zero point sits right after the normalisation and frequencies.
    let dims = quantized.float.dims;
    let input_offset = tinyscore::model::HEADER_LEN + 4 * (2 * dims.dim + dims.fourier) as usize;
    let zero_point_at = input_offset + 4;
    let shifted = with_field(&bytes, zero_point_at, &1i32.to_le_bytes());
    assert!(matches!(
        Model::parse(&shifted),
        Err(ModelError::InvalidParameter(e)) if e.parameter == "int16 activation zero point"
    ));
    // A bias with which a sum of 2¹⁵-sized levels could overflow: the first layer's first.
    let (inputs, outputs) = dims.layer_shape(0);
    let bias_at = input_offset + 8 + inputs * outputs;
    let too_big = with_field(&bytes, bias_at, &(i32::MAX - 1).to_le_bytes());
    assert!(matches!(
        Model::parse(&too_big),
        Err(ModelError::InvalidParameter(e)) if e.parameter == "int16x8 layer"
    ));
    // The writer takes only tables of the header's width.
    let mut mixed = quantized.clone();
    mixed.width = ActivationWidth::Int8;
    assert!(mixed.to_bytes().is_err());
    let mut mismatched = reference_quantized(ActivationWidth::Int8, Default::default()).0;
    mismatched.width = ActivationWidth::Int16;
    assert!(mismatched.to_bytes().is_err());
}

#[test]
fn an_f32_model_trained_through_int16_clamps_where_its_int16x8_form_does() {
    // Trained ranges narrow enough that every clamp is met, for int16: the f32 model clamps
    // at the int16 grids over them, symmetric, which is where its int16x8 quantization's
    // levels end, so the two differ by the activations' rounding alone.
    let network = tinyscore_tests::narrow_range_network(ActivationWidth::Int16);
    let inputs = diffused_inputs(&network, &raw_moons(256, 4), 256, 4).unwrap();
    let (quantized, _) = tinyscore_host::quantize::quantize(
        &network,
        &inputs,
        ActivationWidth::Int16,
        tinyscore::model::Rounding::Double,
        &tinyscore_host::progress::Progress::silent(),
    )
    .unwrap();
    let int16 = quantized.to_bytes().unwrap();
    let float = same_weights_in_float(&quantized);
    let unclamped = Network {
        activations: Vec::new(),
        ..Network::from_model(&Model::parse(&float).unwrap()).unwrap()
    }
    .to_bytes()
    .unwrap();
    let (int16, float, unclamped) = (parse(&int16), parse(&float), parse(&unclamped));
    let mut points = Vec::new();
    for t in [0.01f32, 0.2, 0.7] {
        for x in [[0.3f32, -0.4], [1.2, 0.8], [-2.5, 0.1], [0.05, 2.2]] {
            points.push((x.to_vec(), t));
        }
    }
    let error = relative_rms(&int16, &float, &points);
    let clamping = relative_rms(&unclamped, &float, &points);
    println!("int16x8 against its f32 model {error:.2e}; the clamps move ε̂ by {clamping:.2e}");
    assert!(clamping > 0.05, "the clamps are exercised");
    assert!(error < 1e-3, "int16x8 is {error:.2e} from its f32 model");
}
