//! The imported PyTorch reference model against `moons_ref_crosscheck.json`, and the model
//! file's round trip and corruption behaviour.

use tinyscore::model::{Dims, Model, ModelError, Output, HEADER_LEN};
use tinyscore::{Component, Diffused, LinearSde, ModelSde, NeuralScore, Score, SubVpSde, VeSde};
use tinyscore_host::model_file::{import_safetensors_file, Network};
use tinyscore_tests::{
    packed, pairs, reference_file, reference_int8, reference_json, reference_model_bytes,
    with_field,
};

/// The f32, int8 and int16x8 reference models: the corruption tests run on every layout.
fn every_precision() -> [Vec<u8>; 3] {
    [
        reference_model_bytes(),
        reference_int8().1,
        tinyscore_tests::reference_int16x8().1,
    ]
}

#[test]
fn imported_reference_model_reproduces_pytorch_to_1e5_relative() {
    let bytes = reference_model_bytes();
    let model = Model::parse(&bytes).unwrap();
    let score = NeuralScore::<2>::new(model).unwrap();
    let reference = reference_json("moons_ref_crosscheck.json");
    let points = pairs(&reference["x"]);
    let mut worst = 0.0f64;
    for t in ["0.001", "0.1", "0.5", "1.0"] {
        let eps = pairs(&reference[format!("eps_hat_t={t}")]);
        let scores = pairs(&reference[format!("score_t={t}")]);
        let t: f32 = t.parse().unwrap();
        for ((x, e), s) in points.iter().zip(&eps).zip(&scores) {
            let x = [x[0] as f32, x[1] as f32];
            for (got, expected) in [(score.predict_noise(&x, t), e), (score.score(&x, t), s)] {
                let norm = (expected[0].powi(2) + expected[1].powi(2)).sqrt();
                for d in 0..2 {
                    // 1e-5 relative to the vector's norm: PyTorch computes the same f32
                    // network with another summation order and sin/cos.
                    let rel = (got[d] as f64 - expected[d]).abs() / norm;
                    worst = worst.max(rel);
                    assert!(
                        rel < 1e-5,
                        "t {t} x {x:?}: {got:?} vs {expected:?} (rel {rel:.2e})"
                    );
                }
            }
        }
    }
    println!("worst relative error against PyTorch: {worst:.2e}");
    // The score is −ε̂/σ(t) with the model's VP-SDE.
    let sde = score.sde();
    assert!((sde.sigma(1.0) - 0.999_978_4).abs() < 1e-6);
}

#[test]
fn write_then_parse_is_lossless() {
    let bytes = reference_model_bytes();
    let network = Network::from_model(&Model::parse(&bytes).unwrap()).unwrap();
    assert_eq!(network.to_bytes().unwrap(), bytes);
    let reimported =
        import_safetensors_file(&reference_file("moons_ref.safetensors"), 1e-3).unwrap();
    assert_eq!(network, reimported);
}

#[test]
fn every_truncation_is_an_error() {
    for bytes in every_precision() {
        every_truncation_of(&bytes);
    }
}

fn every_truncation_of(bytes: &[u8]) {
    for len in 0..bytes.len() {
        let err = Model::parse(&bytes[..len]).unwrap_err();
        assert!(
            matches!(err, ModelError::Truncated { .. } | ModelError::BadMagic),
            "length {len}: {err:?}"
        );
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert!(matches!(
        Model::parse(&longer),
        Err(ModelError::InconsistentSize { .. })
    ));
}

#[test]
fn every_single_byte_corruption_is_an_error() {
    for mut bytes in every_precision() {
        for i in 0..bytes.len() {
            let original = bytes[i];
            for flip in [0x01u8, 0x80, 0xFF] {
                bytes[i] = original ^ flip;
                assert!(
                    Model::parse(&bytes).is_err(),
                    "byte {i} ^ {flip:#x} was accepted"
                );
            }
            bytes[i] = original;
        }
    }
}

#[test]
fn corrupted_length_and_dimension_fields_are_errors_even_with_a_valid_checksum() {
    for bytes in every_precision() {
        corrupted_fields_of(&bytes);
    }
}

fn corrupted_fields_of(bytes: &[u8]) {
    let payload = (bytes.len() - HEADER_LEN - 4) as u32;
    for len in [
        0,
        1,
        payload - 4,
        payload - 1,
        payload + 1,
        payload + 4,
        u32::MAX,
    ] {
        let err = Model::parse(&with_field(bytes, 32, &len.to_le_bytes())).unwrap_err();
        assert!(
            matches!(
                err,
                ModelError::Truncated { .. }
                    | ModelError::InconsistentSize { .. }
                    | ModelError::ChecksumMismatch { .. }
            ),
            "payload length {len}: {err:?}"
        );
    }
    // Dimensions N, F, H, L at offsets 8, 10, 12, 14.
    for (offset, values) in [
        (8, [0u16, 1, 3, 65, u16::MAX]),
        (10, [0, 1, 15, 17, 65]),
        (12, [0, 63, 65, 257, 1000]),
        (14, [0, 1, 3, 9, 100]),
    ] {
        for v in values {
            let err = Model::parse(&with_field(bytes, offset, &v.to_le_bytes())).unwrap_err();
            assert!(
                matches!(
                    err,
                    ModelError::DimensionOutOfRange { .. } | ModelError::InconsistentSize { .. }
                ),
                "field at {offset} = {v}: {err:?}"
            );
        }
    }
    for (offset, value, what) in [
        (4, 2u8, "version"),
        (6, 7, "precision"),
        (7, 1, "activation"),
        (16, 9, "sde"),
        (17, 2, "output"),
    ] {
        let err = Model::parse(&with_field(bytes, offset, &[value])).unwrap_err();
        assert!(
            matches!(
                err,
                ModelError::UnsupportedVersion { .. } | ModelError::UnknownCode { .. }
            ),
            "{what}: {err:?}"
        );
    }
    // Trained activations (byte 19): 0, 1 or 2, and 1 or 2 only on an f32 file that ends
    // with them.
    for value in [1u8, 2, 3, 255] {
        let err = Model::parse(&with_field(bytes, 19, &[value])).unwrap_err();
        assert!(
            match value {
                1 | 2 => matches!(
                    err,
                    ModelError::InvalidParameter(_) | ModelError::InconsistentSize { .. }
                ),
                _ => matches!(err, ModelError::UnknownCode { .. }),
            },
            "byte 19 = {value}: {err:?}"
        );
    }
    // A NaN weight and a zero std are refused with their place.
    let nan = with_field(bytes, HEADER_LEN + 4 * 20, &f32::NAN.to_le_bytes());
    assert_eq!(
        Model::parse(&nan).unwrap_err(),
        ModelError::NonFinite {
            offset: HEADER_LEN + 80
        }
    );
    let zero_std = with_field(bytes, HEADER_LEN + 8, &0f32.to_le_bytes());
    assert!(matches!(
        Model::parse(&zero_std),
        Err(ModelError::InvalidParameter(_))
    ));
}

#[test]
fn a_model_of_another_dimension_is_refused_by_the_score() {
    let bytes = reference_model_bytes();
    let model = Model::parse(&bytes).unwrap();
    assert_eq!(
        NeuralScore::<3>::new(model).unwrap_err(),
        ModelError::DimensionMismatch {
            model: 2,
            expected: 3
        }
    );
    let mut out = [0.0f32; 3];
    assert!(model.predict_noise(&[0.0; 3], 0.5, &mut out).is_err());
}

#[test]
fn batched_network_scores_give_the_bits_of_single_evaluations() {
    use tinyscore::{particle_noise, EulerMaruyama, NullObserver, Sampler, TimeGrid};
    let bytes = reference_model_bytes();
    let score = NeuralScore::<2>::new(Model::parse(&bytes).unwrap()).unwrap();
    let sde = score.sde();
    let sampler = Sampler::new(EulerMaruyama, TimeGrid::uniform(1.0, 1e-3, 40).unwrap());
    let n = 37; // two full 16-lane blocks and a partial one
    let mut noises: Vec<_> = (0..n).map(|i| particle_noise(5, i)).collect();
    let mut batch = vec![[0.0f32; 2]; n as usize];
    sampler
        .sample_batch::<_, _, _, 2, 64>(&sde, &score, &mut noises, &mut batch)
        .unwrap();
    for (i, got) in batch.iter().enumerate() {
        let single = sampler
            .sample(
                &sde,
                &score,
                &mut particle_noise(5, i as u64),
                &mut NullObserver,
            )
            .unwrap();
        assert_eq!(
            got.map(f32::to_bits),
            single.map(f32::to_bits),
            "particle {i}"
        );
    }
}

/// The header's output byte (offset 17): 1 makes ε̂ the network's output plus
/// `c(t)·x`, `c = σ/(α² + σ²)`.
const OUTPUT_OFFSET: usize = 17;

#[test]
fn a_residual_model_adds_the_gaussian_noise_prediction_to_its_network_in_f32() {
    let int8 = reference_int8().1;
    let packed = packed(&int8);
    let reference = reference_json("moons_ref_crosscheck.json");
    let points: Vec<[f32; 2]> = pairs(&reference["x"])
        .iter()
        .map(|x| [x[0] as f32, x[1] as f32])
        .collect();
    for bytes in [reference_model_bytes(), int8, packed] {
        let residual_bytes = with_field(&bytes, OUTPUT_OFFSET, &[1]);
        let (plain, residual) = (
            Model::parse(&bytes).unwrap(),
            Model::parse(&residual_bytes).unwrap(),
        );
        assert_eq!(plain.header().output, Output::Noise);
        assert_eq!(residual.header().output, Output::GaussianResidual);
        let (plain, residual) = (
            NeuralScore::<2>::new(plain).unwrap(),
            NeuralScore::<2>::new(residual).unwrap(),
        );
        let sde = residual.sde();
        for t in [1e-3f32, 0.1, 0.5, 1.0] {
            let (alpha, sigma) = (sde.alpha(t), sde.sigma(t));
            let gain = sigma / (alpha * alpha + sigma * sigma);
            let mut batch = vec![[0.0f32; 2]; points.len()];
            residual.score_batch(&points, t, &mut batch);
            for (x, batched) in points.iter().zip(&batch) {
                let network = plain.predict_noise(x, t);
                let eps: [f32; 2] = core::array::from_fn(|d| network[d] + gain * x[d]);
                let score = eps.map(|e| -e / sigma);
                let bits = |v: [f32; 2]| v.map(f32::to_bits);
                assert_eq!(
                    bits(residual.predict_noise(x, t)),
                    bits(eps),
                    "ε̂ at t {t} x {x:?}"
                );
                assert_eq!(
                    bits(residual.score(x, t)),
                    bits(score),
                    "score at t {t} x {x:?}"
                );
                assert_eq!(
                    bits(*batched),
                    bits(score),
                    "batched score at t {t} x {x:?}"
                );
            }
        }
    }
}

#[test]
fn a_residual_model_with_a_zero_network_scores_unit_gaussian_data_exactly() {
    // Its network outputs 0, so its score is the Gaussian part alone: that of N(0, I) data
    // diffused by the SDE, −x/(α² + σ²), which the core's closed-form scores compute
    // independently. Sub-VP and VE, where α² + σ² ≠ 1, tell c = σ/(α² + σ²) from c = σ.
    // Both are a few f32 operations from the same α and σ: 1e-6 relative allows a few ulps.
    let dims = Dims {
        dim: 2,
        fourier: 4,
        hidden: 8,
        layers: 1,
    };
    for sde in [
        ModelSde::SubVp(SubVpSde::default()),
        ModelSde::Ve(VeSde::default()),
    ] {
        let network = Network {
            dims,
            sde,
            t_end: 1e-3,
            output: Output::GaussianResidual,
            mean: vec![0.0; 2],
            std: vec![1.0; 2],
            fourier: vec![1.0, 2.0, 3.0, 4.0],
            layers: (0..=dims.layers)
                .map(|i| {
                    let (inputs, outputs) = dims.layer_shape(i);
                    (vec![0.0; inputs * outputs], vec![0.0; outputs])
                })
                .collect(),
            activations: Vec::new(),
            activation_width: tinyscore_host::quantize::ActivationWidth::Int8,
        };
        let bytes = network.to_bytes().unwrap();
        let score = NeuralScore::<2>::new(Model::parse(&bytes).unwrap()).unwrap();
        let exact = Diffused::new(sde, Component::new(1.0, [0.0; 2], [1.0; 2]).unwrap());
        for t in [1e-3f32, 0.05, 0.3, 0.7, 1.0] {
            for x in [[0.3f32, -1.2], [4.0, 2.5], [-7.0, 0.01]] {
                let (got, expected) = (score.score(&x, t), exact.score(&x, t));
                for d in 0..2 {
                    let rel = (got[d] - expected[d]).abs() / expected[d].abs();
                    assert!(rel < 1e-6, "{sde:?} t {t} x {x:?}: {got:?} vs {expected:?}");
                }
            }
        }
    }
}

/// `(value, derivative along one direction)` in f64, for the reference forward pass below.
type Dual = (f64, f64);

/// An independent f64 forward pass of `network` with its trained activations as clamps:
/// the data coordinates clamped to the input's range, each hidden pre-activation to its
/// range, SiLU's value to the post range (a clamped value's derivative is 0). Returns ε̂
/// (network output plus the Gaussian part) with its derivative along `v`, and the share of
/// hidden values a clamp changed.
fn clamped_reference(network: &Network, x: [f32; 2], v: [f32; 2], t: f32) -> (Vec<Dual>, f64) {
    let range = |k: usize| {
        let q = network.activations[k];
        (q.dequantize(-128) as f64, q.dequantize(127) as f64)
    };
    let clamp = |(value, slope): Dual, (lo, hi): (f64, f64)| {
        if value < lo {
            (lo, 0.0)
        } else if value > hi {
            (hi, 0.0)
        } else {
            (value, slope)
        }
    };
    let mut h: Vec<Dual> = (0..2)
        .map(|d| clamp((x[d] as f64, v[d] as f64), range(0)))
        .collect();
    let features: Vec<(f32, f32)> = network
        .fourier
        .iter()
        .map(|w| tinyscore::model::quant::time_feature(t, *w))
        .collect();
    h.extend(features.iter().map(|f| (f.0 as f64, 0.0)));
    h.extend(features.iter().map(|f| (f.1 as f64, 0.0)));
    let (mut clamped, mut hidden_values) = (0usize, 0usize);
    let last = network.layers.len() - 1;
    for (i, (weights, bias)) in network.layers.iter().enumerate() {
        let inputs = h.len();
        h = bias
            .iter()
            .enumerate()
            .map(|(o, b)| {
                let row = &weights[o * inputs..(o + 1) * inputs];
                let z = row.iter().zip(&h).fold((*b as f64, 0.0), |(s, d), (w, a)| {
                    (s + *w as f64 * a.0, d + *w as f64 * a.1)
                });
                if i == last {
                    return z;
                }
                let pre = clamp(z, range(1 + 2 * i));
                let sigmoid = 1.0 / (1.0 + (-pre.0).exp());
                let silu = (
                    pre.0 * sigmoid,
                    pre.1 * sigmoid * (1.0 + pre.0 * (1.0 - sigmoid)),
                );
                let post = clamp(silu, range(2 + 2 * i));
                hidden_values += 1;
                clamped += (pre != z || post != silu) as usize;
                post
            })
            .collect();
    }
    let sde = network.sde;
    let (alpha, sigma) = (sde.alpha(t) as f64, sde.sigma(t) as f64);
    let gain = sigma / (alpha * alpha + sigma * sigma);
    let eps = h
        .iter()
        .zip(x.iter().zip(&v))
        .map(|(e, (x, v))| (e.0 + gain * *x as f64, e.1 + gain * *v as f64))
        .collect();
    (eps, clamped as f64 / hidden_values as f64)
}

#[test]
fn an_f32_network_with_trained_activations_clamps_to_their_ranges_in_value_and_derivative() {
    let network =
        tinyscore_tests::narrow_range_network(tinyscore_host::quantize::ActivationWidth::Int8);
    let bytes = network.to_bytes().unwrap();
    assert_eq!(bytes[19], 1);
    // The last quantization's scale and zero point, checked as the int8 ones are.
    let last = bytes.len() - 4 - 8;
    for (at, field) in [
        (last, 0f32.to_le_bytes()),
        (last, f32::NAN.to_le_bytes()),
        (last + 4, 128i32.to_le_bytes()),
    ] {
        assert!(Model::parse(&with_field(&bytes, at, &field)).is_err());
    }
    let model = Model::parse(&bytes).unwrap();
    let unclamped = Network {
        activations: Vec::new(),
        activation_width: tinyscore_host::quantize::ActivationWidth::Int8,
        ..network.clone()
    }
    .to_bytes()
    .unwrap();
    let unclamped = Model::parse(&unclamped).unwrap();
    let (mut clamped_share, mut differs) = (0.0, 0);
    let mut points = 0;
    for t in [0.01f32, 0.2, 0.7] {
        for x in [[0.3f32, -0.4], [1.2, 0.8], [-2.5, 0.1], [0.05, 2.2]] {
            let v = [1.0f32, -0.5];
            let (reference, share) = clamped_reference(&network, x, v, t);
            let (eps, [jv]) = model.predict_noise_jvp(&x, t, &[v]).unwrap();
            let mut alone = [0.0f32; 2];
            model.predict_noise(&x, t, &mut alone).unwrap();
            assert_eq!(alone.map(f32::to_bits), eps.map(f32::to_bits));
            // The f32 sums of 12 to 8 terms against f64: 1e-5 of the values' scale.
            for d in 0..2 {
                let scale = 1.0 + reference[d].0.abs() + reference[d].1.abs();
                assert!(
                    (eps[d] as f64 - reference[d].0).abs() <= 1e-5 * scale,
                    "t {t} x {x:?}: ε̂ {eps:?}, reference {reference:?}"
                );
                assert!(
                    (jv[d] as f64 - reference[d].1).abs() <= 1e-5 * scale,
                    "t {t} x {x:?}: Jv {jv:?}, reference {reference:?}"
                );
            }
            let mut plain = [0.0f32; 2];
            unclamped.predict_noise(&x, t, &mut plain).unwrap();
            differs += (plain != eps) as usize;
            clamped_share += share;
            points += 1;
        }
    }
    // The clamps were exercised: a good share of hidden values, and most outputs changed.
    assert!(clamped_share / points as f64 > 0.2, "{clamped_share}");
    assert!(differs > points / 2, "{differs} of {points}");
}
