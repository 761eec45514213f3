//! The figures of `tinyscore bench`: throughput, each measured on one thread, and the
//! few-step samplers' accuracy against a converged solution.

use crate::data::{eight_gaussians, Dataset};
use crate::model_file::denormalize;
use crate::model_file::Network;
use crate::progress::Progress;
use crate::quantize::{diffused_inputs, quantize};
use crate::sampling::{
    at_points_exact, at_points_model, prior_draws, sample_exact, sample_model, SampleOptions,
    SamplerKind, ScheduleKind, BATCH,
};
use crate::schedule::{fit_bespoke, fit_coefficients, grid_times, Draw, Pointwise};
use anyhow::Context;
use serde::Serialize;
use std::hint::black_box;
use std::time::Instant;
use tinyscore::model::{Dims, Output};
use tinyscore::{
    particle_noise, Diffused, EulerMaruyama, GaussianStream, Model, ModelSde, Sampler, Score,
    TimeGrid, VpSde,
};

/// The figures, as `tinyscore bench --json` prints them.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct BenchReport {
    /// Euler–Maruyama particle-steps per second with the exact 8-Gaussians score.
    pub em_particle_steps_per_s: f64,
    /// Standard normal f32 draws per second (Box–Muller over PCG32), one stream.
    pub gaussians_per_s: f64,
    /// The same drawn as the samplers draw them: a 2-D vector from each of 64 streams at
    /// once, Box–Muller vectorised across the streams.
    pub batched_gaussians_per_s: f64,
    /// Score evaluations per second of the f32 34→64→64→2 network, batch 5000.
    pub score_evals_per_s: f64,
    /// The same for its int8 quantization.
    pub int8_score_evals_per_s: f64,
    /// Training steps per second, one thread, batch 512, the 34→64→64→2 network.
    pub train_steps_per_s: f64,
    /// The GEMM floating-point operations per second those steps make (forward and backward
    /// products: 6 flops per weight per example).
    pub train_gflops: f64,
    /// Quantization-aware training steps per second (the forward pass through the int8
    /// grids), otherwise as `train_steps_per_s`.
    pub qat_steps_per_s: f64,
    /// The core's peak for comparison: f32 fused multiply–adds on AVX2 registers with no
    /// memory traffic (`null` on a CPU without AVX2 and FMA).
    pub peak_gflops: Option<f64>,
}

/// Training steps per second of `tinyscore train`'s defaults on moons, one thread, and the
/// GFLOP/s of their products; every step quantization-aware if `quantization_aware`.
pub fn train_steps_per_s(min_seconds: f64, quantization_aware: bool) -> (f64, f64) {
    use crate::train::{train, TrainConfig, TrainState, TrainingData};
    let points = Dataset::Moons.sample(1 << 16, 0);
    let config = TrainConfig {
        threads: 1,
        steps: u64::MAX,
        qat_steps: if quantization_aware { u64::MAX } else { 0 },
        ..TrainConfig::default()
    };
    let mut state = TrainState::new(config.clone(), &points).expect("valid settings");
    let data = TrainingData::new(&state, &points).expect("moons fits");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let start = Instant::now();
    train(
        &mut state,
        &data,
        0,
        &stop,
        |step, _| {
            if step >= 50 && start.elapsed().as_secs_f64() >= min_seconds {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        },
        |_| Ok(()),
    )
    .expect("training runs");
    let steps_per_s = state.step as f64 / start.elapsed().as_secs_f64();
    let weights = (34 * 64 + 64 * 64 + 64 * 2) as f64;
    let flops = 6.0 * weights * config.batch as f64 * steps_per_s;
    (steps_per_s, flops / 1e9)
}

/// A 34→64→64→2 network (N = 2, F = 16, H = 64, L = 2) with PyTorch's default initialisation
/// (uniform in ±1/√fan_in) and frequencies of scale 16 — the reference model's shape — and its
/// int8 quantization calibrated on 8-Gaussians data. The weights do not change the speed.
pub fn benchmark_models() -> (Vec<u8>, Vec<u8>) {
    let dims = Dims {
        dim: 2,
        fourier: 16,
        hidden: 64,
        layers: 2,
    };
    let mut noise = particle_noise(3, 0);
    let mut uniform = |bound: f32| bound * (2.0 * noise.sample().abs().fract() - 1.0);
    let layers = (0..=dims.layers)
        .map(|i| {
            let (inputs, outputs) = dims.layer_shape(i);
            let bound = 1.0 / (inputs as f32).sqrt();
            let weights = (0..inputs * outputs).map(|_| uniform(bound)).collect();
            let bias = (0..outputs).map(|_| uniform(bound)).collect();
            (weights, bias)
        })
        .collect();
    let mut noise = particle_noise(4, 0);
    let network = Network {
        dims,
        sde: ModelSde::Vp(VpSde::default()),
        t_end: 1e-3,
        output: Output::Noise,
        mean: vec![0.0; 2],
        std: vec![1.0; 2],
        fourier: (0..16).map(|_| 16.0 * noise.sample()).collect(),
        layers,
        activations: Vec::new(),
        activation_width: crate::quantize::ActivationWidth::Int8,
    };
    let data = Dataset::EightGaussians.sample(1024, 5);
    let calibration = diffused_inputs(&network, &data, 1024, 5).expect("calibration inputs");
    let (int8, _) = quantize(
        &network,
        &calibration,
        crate::quantize::ActivationWidth::Int8,
        tinyscore::model::Rounding::Double,
        &Progress::silent(),
    )
    .expect("the network quantizes");
    (
        network.to_bytes().expect("the network writes"),
        int8.to_bytes().expect("the int8 network writes"),
    )
}

/// Score evaluations per second of the model in `bytes`, batch 5000, one thread.
pub fn score_evals_per_s(bytes: &[u8], min_seconds: f64) -> f64 {
    let model = Model::parse(bytes).expect("a valid model");
    let score = crate::simd::neural_score::<2>(model).expect("a 2-D model");
    let mut noise = particle_noise(6, 0);
    let xs: Vec<[f32; 2]> = (0..5000).map(|_| noise.normal()).collect();
    let mut out = vec![[0.0f32; 2]; xs.len()];
    let mut t = 0.5f32;
    rate(min_seconds, || {
        score.score_batch(&xs, t, &mut out);
        t = 1.0 - 0.999 * t; // a new time per batch, as in sampling
        black_box(&out);
        xs.len() as u64
    })
}

/// Runs `work` until at least `min_seconds` have passed; returns units of work per second.
fn rate(min_seconds: f64, mut work: impl FnMut() -> u64) -> f64 {
    work(); // warm-up
    let start = Instant::now();
    let mut units = 0u64;
    while start.elapsed().as_secs_f64() < min_seconds {
        units += work();
    }
    units as f64 / start.elapsed().as_secs_f64()
}

/// Particle-steps per second of Euler–Maruyama, 1000 steps, 8-Gaussians exact score, in
/// the host's batches of [`BATCH`] particles.
pub fn em_particle_steps_per_s(min_seconds: f64) -> f64 {
    let components = eight_gaussians();
    let sde = VpSde::default();
    let score = Diffused::new(
        sde,
        crate::simd::exact_mixture(&components).expect("valid mixture"),
    );
    let steps = 1000;
    let grid = TimeGrid::uniform(1.0, 1e-3, steps).expect("valid grid");
    let sampler = Sampler::new(EulerMaruyama, grid);
    let mut first = 0u64;
    rate(min_seconds, || {
        let mut noises = crate::simd::particle_noises(1, first..first + BATCH as u64);
        first += BATCH as u64;
        let mut xs = [[0.0f32; 2]; BATCH];
        sampler
            .sample_batch::<_, _, _, 2, BATCH>(&sde, &score, &mut noises, &mut xs)
            .expect("the exact score is finite");
        black_box(xs);
        (steps as usize * BATCH) as u64
    })
}

/// Standard normals per second.
pub fn gaussians_per_s(min_seconds: f64) -> f64 {
    let mut noise = particle_noise(2, 0);
    rate(min_seconds, || {
        let mut acc = 0.0f32;
        for _ in 0..100_000 {
            acc += noise.sample();
        }
        black_box(acc);
        100_000
    })
}

/// Standard normals per second drawn as 2-D vectors from 64 streams together.
pub fn batched_gaussians_per_s(min_seconds: f64) -> f64 {
    let mut streams = crate::simd::particle_noises(2, 0..64);
    let mut out = vec![[0.0f32; 2]; streams.len()];
    rate(min_seconds, || {
        for _ in 0..1000 {
            GaussianStream::normals(&mut streams, &mut out);
            black_box(&mut out);
        }
        (1000 * 2 * out.len()) as u64
    })
}

/// Every figure, each measured for about `min_seconds`.
pub fn run(min_seconds: f64) -> BenchReport {
    let progress = crate::progress::Progress::new("bench", 8, "figures");
    let (float, int8) = benchmark_models();
    let figure = |value: f64| {
        progress.advance(1);
        value
    };
    let (steps_per_s, gflops) = train_steps_per_s(min_seconds, false);
    figure(0.0);
    let qat_steps_per_s = figure(train_steps_per_s(min_seconds, true).0);
    let peak_gflops = fma_peak_flops(500_000_000).map(|flops| figure(flops / 1e9));
    let report = BenchReport {
        train_steps_per_s: steps_per_s,
        train_gflops: gflops,
        qat_steps_per_s,
        peak_gflops,
        em_particle_steps_per_s: figure(em_particle_steps_per_s(min_seconds)),
        gaussians_per_s: figure(gaussians_per_s(min_seconds)),
        batched_gaussians_per_s: figure(batched_gaussians_per_s(min_seconds)),
        score_evals_per_s: figure(score_evals_per_s(&float, min_seconds)),
        int8_score_evals_per_s: figure(score_evals_per_s(&int8, min_seconds)),
    };
    progress.finish();
    report
}

/// Single-precision floating-point operations per second one core reaches at best: twelve
/// independent chains of 8-lane fused multiply–adds (enough to keep both FMA units of a
/// Zen or Skylake core busy through the FMA's latency), run `iterations` times. `None` on a
/// CPU without AVX2 and FMA.
pub fn fma_peak_flops(iterations: u64) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        let start = std::time::Instant::now();
        // SAFETY: the CPU has AVX2 and FMA, the features the loop is built for.
        std::hint::black_box(unsafe { fma_chains(std::hint::black_box(iterations)) });
        let flops = iterations as f64 * (FMA_CHAINS * 8 * 2) as f64;
        return Some(flops / start.elapsed().as_secs_f64());
    }
    let _ = iterations;
    None
}

/// Independent FMA chains in [`fma_chains`].
const FMA_CHAINS: usize = 12;

/// [`fma_peak_flops`]'s loop: `acc ← acc·a + b` on [`FMA_CHAINS`] registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_chains(iterations: u64) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_set1_ps(0.0); FMA_CHAINS];
    let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    for _ in 0..iterations {
        for v in acc.iter_mut() {
            *v = _mm256_fmadd_ps(*v, a, b);
        }
    }
    let sum = acc
        .iter()
        .fold(_mm256_setzero_ps(), |s, v| _mm256_add_ps(s, *v));
    _mm256_cvtss_f32(sum)
}

/// One entry of the few-step accuracy table.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StepAccuracy {
    /// The sampler.
    #[serde(serialize_with = "sampler_name")]
    pub sampler: SamplerKind,
    /// The grid: `uniform`, `karras`, `logsnr`, or `fitted` (fitted to the score and sampler
    /// by [`crate::schedule::fit`] on other draws than those measured).
    pub grid: String,
    /// Whether the multistep sampler lowers its order at the last steps.
    pub lower_order_final: bool,
    /// Score evaluations per sample.
    pub nfe: u32,
    /// RMS distance of the samples to the converged solution from the same starting points.
    pub rms_error: f64,
    /// sw2 of the moons f32 model's samples against moons points (with [`MoonsModels`]).
    pub moons_sw2_f32: Option<f64>,
    /// The same for its int8 quantization.
    pub moons_sw2_int8: Option<f64>,
}

fn sampler_name<S: serde::Serializer>(s: &SamplerKind, out: S) -> Result<S::Ok, S::Error> {
    out.serialize_str(&s.name())
}

/// The deterministic grid samplers, in the table's order.
pub const DETERMINISTIC: [SamplerKind; 8] = [
    SamplerKind::OdeEuler,
    SamplerKind::OdeHeun,
    SamplerKind::OdeRk4,
    SamplerKind::Ddim,
    SamplerKind::Dpm2,
    SamplerKind::Dpm3,
    SamplerKind::Unipc,
    SamplerKind::EdmHeun,
];

/// The samplers of the accuracy table: the deterministic ones, then the bespoke solver with
/// its coefficients fitted to each grid.
pub const ACCURACY_SAMPLERS: [SamplerKind; 9] = {
    let mut all = [SamplerKind::Bespoke; 9];
    let mut i = 0;
    while i < DETERMINISTIC.len() {
        all[i] = DETERMINISTIC[i];
        i += 1;
    }
    all
};

/// The moons models whose samples the table also measures by sw2: an f32 model and its int8
/// quantization (model file bytes), and the moons points they are measured against.
pub struct MoonsModels {
    /// The f32 model file.
    pub f32: Vec<u8>,
    /// The int8 model file.
    pub int8: Vec<u8>,
    /// Samples drawn per entry and model.
    pub samples: usize,
    /// Moons points, in data units.
    pub reference: crate::points::Points,
}

/// Calibration draws of the fitted grids, and their seed (the measured draws use seed 0 for
/// the RMS error and seed 1 for sw2).
const FIT_PARTICLES: usize = 512;
const FIT_SEED: u64 = 2;

/// The RMS error of `samplers` (of [`ACCURACY_SAMPLERS`]; the multistep ones also with
/// lower-order final steps, the bespoke solver with coefficients fitted to each grid on draws
/// of their own) on every fixed grid and, with `fitted`, a grid fitted to the score, at `nfes`
/// score evaluations (as many steps as fit), against the probability-flow ODE solved by
/// Dormand–Prince at rtol = atol = 10⁻⁷ from the same `particles` starting points (particle
/// i's prior draw, stream i of seed 0), with the exact 8-Gaussians score on the VP-SDE down
/// to t = 10⁻³. With `moons`, each entry also samples both models (seed 1; fitted grids fitted
/// to each model) and measures sw2 against the moons points. `progress` advances by one per
/// NFE and sampler.
pub fn few_step_accuracy(
    samplers: &[SamplerKind],
    nfes: &[u32],
    particles: usize,
    fitted: bool,
    moons: Option<&MoonsModels>,
    progress: &Progress,
) -> anyhow::Result<Vec<StepAccuracy>> {
    let mixture = Dataset::EightGaussians
        .mixture()
        .context("8gaussians is a mixture")?;
    let sde = ModelSde::Vp(VpSde::default());
    let silent = Progress::silent();
    let t_end = 1e-3;
    let converged = SampleOptions {
        adaptive: tinyscore::Dopri5::new(1e-7, 1e-7, 1_000_000)?,
        ..SampleOptions::uniform(SamplerKind::OdeRk45, 1, particles, 0, t_end)
    };
    let reference = sample_exact(&converged, sde, &mixture, &silent)?;
    let exact = |o: &SampleOptions| sample_exact(o, sde, &mixture, &silent);
    let models = match moons {
        Some(m) => Some([
            Model::parse(&m.f32).map_err(|e| anyhow::anyhow!("the f32 moons model: {e}"))?,
            Model::parse(&m.int8).map_err(|e| anyhow::anyhow!("the int8 moons model: {e}"))?,
        ]),
        None => None,
    };
    let grids: &[Option<ScheduleKind>] = if fitted {
        &[
            Some(ScheduleKind::Uniform),
            Some(ScheduleKind::Karras),
            Some(ScheduleKind::Logsnr),
            None,
        ]
    } else {
        &[
            Some(ScheduleKind::Uniform),
            Some(ScheduleKind::Karras),
            Some(ScheduleKind::Logsnr),
        ]
    };
    let exact_pointwise = Pointwise {
        prior: &|seed, n| prior_draws(sde, mixture.dim(), seed, n),
        at: &|points, map| at_points_exact(sde, &mixture, points, map),
    };
    let mut table = Vec::new();
    for &nfe in nfes {
        for &sampler in samplers {
            let (per_step, extra) =
                crate::schedule::evaluations(sampler).context("a deterministic sampler")?;
            let steps = nfe.saturating_sub(extra) / per_step;
            if steps == 0 {
                progress.advance(1);
                continue;
            }
            let finals: &[bool] = if sampler.is_multistep() {
                &[false, true]
            } else {
                &[false]
            };
            for &lower_order_final in finals {
                for &schedule in grids {
                    let options = |n: usize, seed: u64, t_end: f32| SampleOptions {
                        schedule: schedule.unwrap_or(ScheduleKind::Uniform),
                        lower_order_final,
                        ..SampleOptions::uniform(sampler, steps, n, seed, t_end)
                    };
                    // A fitted grid, and the bespoke solver's coefficients, are fitted to the
                    // score they run on, without lower-order final steps, on draws of their
                    // own; `Ok(false)`: too few or too many steps to fit.
                    let fit = |o: &mut SampleOptions,
                               draw: &Draw,
                               pointwise: &Pointwise,
                               sde: ModelSde|
                     -> anyhow::Result<bool> {
                        let t_end = o.t_end;
                        if sampler == SamplerKind::Bespoke
                            && o.steps as usize > tinyscore::MAX_BESPOKE_STEPS
                        {
                            return Ok(false);
                        }
                        match (schedule, sampler) {
                            (Some(_), SamplerKind::Bespoke) => {
                                let times = grid_times(sde, t_end, o.schedule.schedule(), o.steps);
                                o.bespoke = Some(fit_coefficients(
                                    pointwise,
                                    &times,
                                    FIT_PARTICLES,
                                    FIT_SEED,
                                )?);
                            }
                            (Some(_), _) => {}
                            (None, _) => {
                                let fitted = if sampler == SamplerKind::Bespoke {
                                    fit_bespoke(
                                        draw,
                                        pointwise,
                                        sde,
                                        nfe,
                                        FIT_PARTICLES,
                                        FIT_SEED,
                                        t_end,
                                    )
                                } else {
                                    crate::schedule::fit(
                                        draw,
                                        sampler,
                                        nfe,
                                        FIT_PARTICLES,
                                        FIT_SEED,
                                        t_end,
                                        &|_| Vec::new(),
                                    )
                                };
                                let Ok(fitted) = fitted else {
                                    return Ok(false);
                                };
                                o.fitted = Some(tinyscore::FittedGrid::new(&fitted.interior)?);
                                o.bespoke = fitted
                                    .coefficients
                                    .map(|rows| {
                                        let rows: Vec<_> =
                                            rows.iter().map(|r| r.map(|c| c as f32)).collect();
                                        tinyscore::Bespoke::new(&rows)
                                    })
                                    .transpose()?;
                            }
                        }
                        Ok(true)
                    };
                    let grid_name = match schedule {
                        Some(s) => s.name(),
                        None if lower_order_final => continue,
                        None => "fitted".to_owned(),
                    };
                    let mut measured = options(particles, 0, t_end);
                    if !fit(&mut measured, &exact, &exact_pointwise, sde)? {
                        continue;
                    }
                    let samples = exact(&measured)?;
                    let squares: f64 = samples
                        .values
                        .iter()
                        .zip(&reference.values)
                        .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                        .sum();
                    let mut sw2 = [None, None];
                    if let (Some(moons), Some(models)) = (moons, &models) {
                        for (value, model) in sw2.iter_mut().zip(models) {
                            let model = *model;
                            let t_end = model.header().t_end;
                            let draw = |o: &SampleOptions| sample_model(model, o, &silent);
                            let dim = model.header().dims.dim as usize;
                            let model_sde = model.header().sde;
                            let pointwise = Pointwise {
                                prior: &|seed, n| prior_draws(model_sde, dim, seed, n),
                                at: &|points, map| at_points_model(model, points, map),
                            };
                            let mut o = options(moons.samples, 1, t_end);
                            anyhow::ensure!(
                                fit(&mut o, &draw, &pointwise, model_sde)?,
                                "{} with {steps} steps cannot be fitted to the moons models",
                                sampler.name()
                            );
                            let samples = denormalize(&model, &draw(&o)?)?;
                            *value = Some(crate::metrics::sliced_w2(
                                &samples.points(),
                                &moons.reference,
                            ));
                        }
                    }
                    table.push(StepAccuracy {
                        sampler,
                        grid: grid_name,
                        lower_order_final,
                        nfe: steps * per_step + extra,
                        rms_error: (squares / particles as f64).sqrt(),
                        moons_sw2_f32: sw2[0],
                        moons_sw2_int8: sw2[1],
                    });
                }
            }
            progress.advance(1);
        }
    }
    Ok(table)
}
