//! Training: the analytic gradient against finite differences, determinism, and a resumed
//! run continuing exactly as an uninterrupted one.

use std::sync::atomic::{AtomicBool, Ordering};
use tinyscore::model::Output;
use tinyscore_host::data::Dataset;
use tinyscore_host::points::Points;
use tinyscore_host::quantize::ActivationWidth;
use tinyscore_host::train::{
    batch_loss_and_gradient, train, TrainConfig, TrainState, TrainingData,
};

fn small_config(steps: u64, threads: usize) -> TrainConfig {
    TrainConfig {
        hidden: 8,
        layers: 2,
        fourier: 4,
        steps,
        batch: 32,
        seed: 11,
        threads,
        warmup: 5,
        qat_steps: 0,
        ..TrainConfig::default()
    }
}

fn run(config: &TrainConfig, stop_after: Option<u64>) -> TrainState {
    let points = Dataset::Moons.sample(4096, 3);
    let mut state = TrainState::new(config.clone(), &points).unwrap();
    let data = TrainingData::new(&state, &points).unwrap();
    let stop = AtomicBool::new(false);
    train(
        &mut state,
        &data,
        0,
        &stop,
        |step, _| {
            if Some(step) == stop_after {
                stop.store(true, Ordering::Relaxed);
            }
        },
        |_| Ok(()),
    )
    .unwrap();
    state
}

/// Checks the analytic gradient of `config` on `points` against central finite differences.
fn assert_gradient_matches_finite_differences(config: TrainConfig, points: &Points) {
    let state = TrainState::new(config, points).unwrap();
    let data = TrainingData::new(&state, points).unwrap();
    let params = state.params.clone();
    let (_, grad) = batch_loss_and_gradient(&state, &data, 5, &params).unwrap();
    // Central differences on the same batch (same step), in f32: with h = 1e-2 the truncation
    // error is O(h²·|f'''|) ≈ 1e-4 and the rounding error ≈ ε·|loss|/h ≈ 1e-5, so 1e-3
    // absolute plus 2% of the gradient separates a right gradient from a wrong one (a missing
    // SiLU' factor or a transposed product is off by far more).
    let h = 1e-2f32;
    let mut checked = 0;
    for i in (0..params.len()).step_by(7) {
        let mut plus = params.clone();
        let mut minus = params.clone();
        plus[i] += h;
        minus[i] -= h;
        let (lp, _) = batch_loss_and_gradient(&state, &data, 5, &plus).unwrap();
        let (lm, _) = batch_loss_and_gradient(&state, &data, 5, &minus).unwrap();
        let numeric = (lp - lm) / (2.0 * h);
        assert!(
            (numeric - grad[i]).abs() <= 1e-3 + 0.02 * grad[i].abs(),
            "parameter {i}: analytic {} vs numeric {numeric}",
            grad[i]
        );
        checked += 1;
    }
    assert!(checked > 20);
}

#[test]
fn gradient_matches_central_finite_differences() {
    let moons = Dataset::Moons.sample(4096, 3);
    // A thin output layer (2-D data) on hidden widths with and without a partial block of 8.
    assert_gradient_matches_finite_differences(small_config(1, 1), &moons);
    let ragged = TrainConfig {
        hidden: 12,
        ..small_config(1, 1)
    };
    assert_gradient_matches_finite_differences(ragged, &moons);
    // 6-D data: the output layer goes through the GEMM like the others.
    let rows: Vec<[f32; 6]> = moons
        .rows()
        .map(|r| {
            let (a, b) = (r[0] as f32, r[1] as f32);
            [a, b, a * b, a - b, 0.5 * a * a, b * b]
        })
        .collect();
    assert_gradient_matches_finite_differences(small_config(1, 1), &Points::from_rows(&rows));
}

#[test]
fn training_is_deterministic_for_a_seed_and_thread_count() {
    let a = run(&small_config(200, 2), None);
    let b = run(&small_config(200, 2), None);
    assert_eq!(a.params, b.params);
    assert_eq!(a.ema, b.ema);
    // And it learns: on a batch of its own, the trained weights' loss is well below the
    // initial weights' (≈ 1 for ε-prediction: an untrained network predicts ~0 for
    // unit-variance noise; with the default residual output the untrained model already
    // predicts the Gaussian part, loss ≈ 0.6, and 200 steps of an 8-wide network gain less).
    let noise_config = TrainConfig {
        output: Output::Noise,
        ..small_config(200, 2)
    };
    let trained = run(&noise_config, None);
    let points = Dataset::Moons.sample(4096, 3);
    let fresh = TrainState::new(noise_config, &points).unwrap();
    let data = TrainingData::new(&fresh, &points).unwrap();
    let (before, _) = batch_loss_and_gradient(&fresh, &data, 1000, &fresh.params).unwrap();
    let (after, _) = batch_loss_and_gradient(&fresh, &data, 1000, &trained.params).unwrap();
    assert!(after < 0.8 * before, "loss {before} → {after}");
}

#[test]
fn a_resumed_run_continues_exactly() {
    // The last 20 steps are quantization-aware: runs interrupted before and inside them.
    let config = TrainConfig {
        qat_steps: 20,
        ..small_config(40, 2)
    };
    let whole = run(&config, None);
    assert_eq!(
        whole.activations.len(),
        5,
        "input, then pre and post of 2 layers"
    );
    for stop_after in [17, 25] {
        let interrupted = run(&config, Some(stop_after));
        assert_eq!(interrupted.step, stop_after);
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = dir.path().join("run.ckpt");
        interrupted.save(&checkpoint).unwrap();
        let mut resumed = TrainState::load(&checkpoint).unwrap();
        let points = Dataset::Moons.sample(4096, 3);
        let data = TrainingData::new(&resumed, &points).unwrap();
        train(
            &mut resumed,
            &data,
            0,
            &AtomicBool::new(false),
            |_, _| {},
            |_| Ok(()),
        )
        .unwrap();
        assert_eq!(resumed.step, 40);
        assert_eq!(resumed.params, whole.params);
        assert_eq!(resumed.ema, whole.ema);
        assert_eq!(resumed.activations, whole.activations);
    }
}

#[test]
fn a_residual_network_is_trained_on_the_noise_less_the_gaussian_prediction() {
    // With every parameter 0 the network outputs 0 and the loss is the mean square of the
    // target. On N(0, I) data, x_t = α·x₀ + σ·z: the noise network's target z has mean
    // square 1; the residual network's z − c·x_t with c = σ/(α² + σ²) has variance
    // (1 − cσ)² + c²α² = α²/(α² + σ²), which is α² on the VP-SDE, so its loss estimates
    // E_t[α(t)²] over t ~ U(t_end, 1) (≈ 0.27). Each of the 2·8192 squares is the square of a
    // normal of variance ≤ 1, variance ≤ 2: the mean's standard error is ≤ √(2/16384) ≈ 0.011
    // and 5 of them, 0.055, keeps both estimates apart from a wrong target (0.27 vs 1).
    use tinyscore::{LinearSde, VpSde};
    let mut noise = tinyscore::particle_noise(21, 0);
    let rows: Vec<[f32; 2]> = (0..100_000)
        .map(|_| [noise.sample(), noise.sample()])
        .collect();
    let points = Points::from_rows(&rows);
    let sde = VpSde::default();
    let t_end = TrainConfig::default().t_end;
    let cells = 100_000;
    let mean_alpha2 = (0..cells)
        .map(|k| {
            let t = t_end + (1.0 - t_end) * (k as f32 + 0.5) / cells as f32;
            (sde.alpha(t) as f64).powi(2)
        })
        .sum::<f64>()
        / cells as f64;
    for (output, expected) in [
        (Output::Noise, 1.0),
        (Output::GaussianResidual, mean_alpha2),
    ] {
        let config = TrainConfig {
            batch: 8192,
            output,
            ..small_config(1, 1)
        };
        let state = TrainState::new(config, &points).unwrap();
        let data = TrainingData::new(&state, &points).unwrap();
        let zero = vec![0.0f32; state.params.len()];
        let (loss, _) = batch_loss_and_gradient(&state, &data, 0, &zero).unwrap();
        assert!(
            (loss as f64 - expected).abs() < 0.055,
            "output {output:?}: loss {loss}, expected {expected:.3}"
        );
    }
}

/// A network trained with its quantization: `train` with quantization-aware steps on moons.
fn quantization_aware(steps: u64, qat_steps: u64) -> (TrainState, Points) {
    quantization_aware_at(steps, qat_steps, ActivationWidth::Int8)
}

/// [`quantization_aware`] through activations of `width`.
fn quantization_aware_at(
    steps: u64,
    qat_steps: u64,
    width: ActivationWidth,
) -> (TrainState, Points) {
    let config = TrainConfig {
        hidden: 16,
        steps,
        qat_steps,
        qat_activations: width,
        seed: 5,
        threads: 1,
        ..TrainConfig::default()
    };
    let points = Dataset::Moons.sample(4096, 3);
    let mut state = TrainState::new(config, &points).unwrap();
    let data = TrainingData::new(&state, &points).unwrap();
    let stop = AtomicBool::new(false);
    train(&mut state, &data, 0, &stop, |_, _| {}, |_| Ok(())).unwrap();
    (state, points)
}

#[test]
fn quantize_keeps_the_trained_activations_and_rounds_the_weights_as_training_did() {
    use tinyscore::model::Rounding;
    use tinyscore_host::quantize::{diffused_inputs, quantize};
    use tinyscore_host::train::fake_quantized_parameters;
    let (state, points) = quantization_aware(300, 100);
    let network = state.network().unwrap();
    assert_eq!(network.activations, state.activation_quantizations());
    // The file carries them (header byte 19) and reads them back.
    let bytes = network.to_bytes().unwrap();
    assert_eq!(bytes[19], 1);
    let model = tinyscore::Model::parse(&bytes).unwrap();
    let read = tinyscore_host::model_file::Network::from_model(&model).unwrap();
    assert_eq!(read, network);

    let inputs = diffused_inputs(&network, &points, 2048, 1).unwrap();
    let progress = tinyscore_host::progress::Progress::silent();
    let (int8, _) = quantize(
        &network,
        &inputs,
        ActivationWidth::Int8,
        Rounding::Double,
        &progress,
    )
    .unwrap();
    // The activation quantizations are the trained ones, not calibrated again.
    let mut kept = vec![int8.input];
    for layer in &int8.layers {
        if let Some(a) = &layer.activation {
            kept.extend([a.pre, a.post]);
        }
    }
    assert_eq!(kept, network.activations);
    // Each weight and bias of the int8 network is, bit for bit, what the quantization-aware
    // forward pass used: level × scale in f32 (the bias's product made in f64, as both do).
    let flat: Vec<f32> = network
        .layers
        .iter()
        .flat_map(|(w, b)| w.iter().chain(b).copied())
        .collect();
    let fake = fake_quantized_parameters(&network.dims, &flat, &network.activations);
    // The saved weights and biases are already those values: the f32 model is the trained
    // integer network in float.
    assert_eq!(
        flat.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        fake.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    let mut at = 0;
    for (i, layer) in int8.layers.iter().enumerate() {
        let s_in = network.activations[2 * i].scale as f64;
        let outputs = layer.bias.len();
        let inputs = layer.weights.len() / outputs;
        for o in 0..outputs {
            let s_w = layer.weight_scale[o];
            for j in 0..inputs {
                let w = layer.weights[o * inputs + j] as f32 * s_w;
                assert_eq!(w.to_bits(), fake[at + o * inputs + j].to_bits());
            }
            let b = (layer.bias[o] as f64 * s_in * s_w as f64) as f32;
            assert_eq!(b.to_bits(), fake[at + outputs * inputs + o].to_bits());
        }
        at += outputs * inputs + outputs;
    }
    assert_eq!(at, flat.len());
}

#[test]
fn int16_quantization_aware_training_makes_an_int16x8_model_that_computes_the_f32_one() {
    use tinyscore::model::{Precision, TrainedActivations};
    use tinyscore_host::quantize::quantize_file;
    let (state, points) = quantization_aware_at(300, 100, ActivationWidth::Int16);
    let network = state.network().unwrap();
    assert_eq!(network.activation_width, ActivationWidth::Int16);
    let dir = tempfile::tempdir().unwrap();
    let (float, quantized) = (dir.path().join("m.tsm"), dir.path().join("m16.tsm"));
    network.write(&float).unwrap();
    let model_bytes = std::fs::read(&float).unwrap();
    let model = tinyscore::Model::parse(&model_bytes).unwrap();
    assert_eq!(
        model.header().trained_activations,
        TrainedActivations::Int16
    );
    // `quantize` takes the trained width by default.
    let report = quantize_file(
        &float,
        &points,
        2048,
        2000,
        1,
        None,
        tinyscore::model::Rounding::Double,
        &quantized,
    )
    .unwrap();
    let bytes = std::fs::read(&quantized).unwrap();
    assert_eq!(
        tinyscore::Model::parse(&bytes).unwrap().header().precision,
        Precision::Int16x8
    );
    // Its weights and biases are the f32 model's (on their grids), so ε̂ differs by the
    // activations' int16 rounding alone: steps of 1/32767 of each range, amplified by at most
    // the network's gain, ~10⁻³ where int8's are ~10⁻¹ (tests/tests/int16x8_network.rs).
    println!("{report}");
    assert!(
        report.small_t_relative_rms_error < 0.01 && report.relative_rms_error < 0.005,
        "int16x8 ε̂ is {:.3}% ({:.3}% at small t) from f32",
        100.0 * report.relative_rms_error,
        100.0 * report.small_t_relative_rms_error
    );
}

#[test]
fn the_quantized_silu_is_the_int8_table() {
    use tinyscore::model::quant::silu_lut;
    use tinyscore::model::QuantParams;
    use tinyscore_host::train::kernels::bias_quantized_silu_with_slope;
    // Every pre-activation level of a few grids, through the training kernel (value at the
    // level's centre, no bias) and through the int8 network's table: the same post level.
    for (pre, post) in [
        (
            QuantParams::covering(-6.0, 7.5),
            QuantParams::covering(-0.28, 5.3),
        ),
        (
            QuantParams::covering(-8.0, 5.0),
            QuantParams::covering(-0.27, 3.8),
        ),
        (
            QuantParams::covering(-1.0, 1.0),
            QuantParams::covering(-0.3, 0.8),
        ),
    ] {
        let lut = silu_lut(pre, post);
        let mut z: Vec<f32> = (-128..=127).map(|q| pre.dequantize(q as i8)).collect();
        let mut slope = vec![0.0; z.len()];
        bias_quantized_silu_with_slope(
            &mut z,
            &[0.0],
            pre,
            post,
            ActivationWidth::Int8,
            &mut slope,
        );
        for (q, v) in (-128i32..=127).zip(&z) {
            let want = post.dequantize(lut[(q + 128) as usize]);
            assert_eq!(v.to_bits(), want.to_bits(), "pre level {q}");
        }
        // Straight-through: SiLU's slope at the level, or 0 where the post grid clips SiLU.
        let (bottom, top) = (post.dequantize(-128), post.dequantize(127));
        for (q, d) in (-128i32..=127).zip(&slope) {
            let r = pre.dequantize(q as i8) as f64;
            let sigmoid = 1.0 / (1.0 + (-r).exp());
            let silu = r * sigmoid;
            let half = 0.5 * post.scale as f64;
            let clipped = silu > top as f64 + half || silu < bottom as f64 - half;
            let want = if clipped {
                0.0
            } else {
                sigmoid * (1.0 + r * (1.0 - sigmoid))
            };
            assert!(
                (*d as f64 - want).abs() <= 1e-5,
                "pre level {q}: slope {d}, want {want}"
            );
        }
    }
}
