//! Training: the analytic gradient against finite differences, determinism, and a resumed
//! run continuing exactly as an uninterrupted one.

use std::sync::atomic::{AtomicBool, Ordering};
use tinyscore::model::Output;
use tinyscore_host::data::Dataset;
use tinyscore_host::points::Points;
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
    let config = small_config(40, 2);
    let whole = run(&config, None);
    let interrupted = run(&config, Some(17));
    assert_eq!(interrupted.step, 17);
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
