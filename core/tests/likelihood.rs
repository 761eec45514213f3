//! The adaptive solver's order and tolerance, the exact divergences against finite
//! differences, Hutchinson's estimate against the exact trace, and the probability-flow
//! likelihood against the closed-form density of a diffused Gaussian mixture.

mod common;

use tinyscore::likelihood::{
    gaussian_log_density, Divergence, Likelihood, NetworkJacobian, ScoreJacobian,
};
use tinyscore::model::format::{Dims, Header};
use tinyscore::model::{ModelSde, Output, Precision};
use tinyscore::{
    particle_noise, Component, Diffused, Dopri5, GaussianMixture, LinearSde, Model, Score, VpSde,
};

/// `dx/dt = cos(t)·x`, solved by `x(t) = x(0)·e^{sin t}`.
fn growth(t: f32, x: &[f32; 1]) -> Result<([f32; 1], f32), tinyscore::StepError> {
    Ok(([libm::cosf(t) * x[0]], 0.0))
}

fn exact_growth(t: f64) -> f64 {
    t.sin().exp()
}

#[test]
fn dormand_prince_steps_have_fifth_order() {
    // Fixed steps of the rotation x' = (−y, x) over [0, 6]: halving h divides the global error
    // by 2⁵. The step counts keep the error above f32 rounding (≈ 1e-6 after 16 steps).
    let solver = Dopri5::new(1e-3, 1e-3, 1000).unwrap();
    let steps = [4u32, 8, 16];
    let errors: Vec<f64> = steps
        .iter()
        .map(|&k| {
            let mut x = [1.0f32, 0.0];
            solver
                .integrate_fixed(0.0, 6.0, k, &mut x, None, |_, x: &[f32; 2]| {
                    Ok(([-x[1], x[0]], 0.0))
                })
                .unwrap();
            ((x[0] as f64 - 6f64.cos()).powi(2) + (x[1] as f64 - 6f64.sin()).powi(2)).sqrt()
        })
        .collect();
    let h: Vec<f64> = steps.iter().map(|&k| 6.0 / k as f64).collect();
    let order = common::loglog_slope(&h, &errors);
    assert!(
        (order - 5.0).abs() < 0.6,
        "order {order:.2}, errors {errors:?}"
    );
}

#[test]
fn the_error_reached_follows_the_tolerance_asked_for() {
    // For each tolerance the end error is within a small multiple of it, and tightening the
    // tolerance a hundredfold tightens the error; the evaluations grow like tol^(−1/5).
    let mut previous: Option<(f64, u32)> = None;
    for tol in [1e-2f32, 1e-4, 1e-6] {
        let solver = Dopri5::new(tol, tol, 10_000).unwrap();
        let mut x = [1.0f32];
        let stats = solver.integrate(0.0, 10.0, &mut x, None, growth).unwrap();
        let error = (x[0] as f64 - exact_growth(10.0)).abs();
        assert!(
            error <= 10.0 * tol as f64 * exact_growth(10.0).max(1.0),
            "tol {tol}: error {error}"
        );
        assert_eq!(stats.nfe, 2 + 6 * (stats.accepted + stats.rejected));
        if let Some((previous_error, previous_nfe)) = previous {
            assert!(
                error < previous_error / 5.0 || error < 1e-6,
                "tol {tol}: error {error} after {previous_error}"
            );
            let growth = stats.nfe as f64 / previous_nfe as f64;
            // 100^(1/5) ≈ 2.5 more evaluations for a hundredfold tolerance.
            assert!(
                (1.5..4.5).contains(&growth),
                "tol {tol}: nfe grew {growth}×"
            );
        }
        previous = Some((error, stats.nfe));
    }
}

#[test]
fn the_solver_never_evaluates_outside_the_span() {
    // A score is only defined on [t_end, T]: with a field whose Euler step would carry the
    // first step past the end, every evaluation must still lie within the span, both ways.
    for (t0, t1) in [(1.0f32, 1e-3f32), (1e-3, 1.0), (0.5, 0.4)] {
        let (low, high) = (t0.min(t1), t0.max(t1));
        let solver = Dopri5::new(1e-5, 1e-5, 10_000).unwrap();
        let mut x = [1.0f32];
        let mut outside = Vec::new();
        solver
            .integrate(t0, t1, &mut x, None, |t, x: &[f32; 1]| {
                if !(low..=high).contains(&t) {
                    outside.push(t);
                }
                Ok(([1e-3 * x[0]], 0.0))
            })
            .unwrap();
        assert!(outside.is_empty(), "{t0} → {t1}: evaluated at {outside:?}");
    }
}

#[test]
fn a_step_limit_and_bad_parameters_are_errors() {
    let solver = Dopri5::new(1e-9, 1e-9, 5).unwrap();
    let mut x = [1.0f32];
    let error = solver
        .integrate(0.0, 10.0, &mut x, None, growth)
        .unwrap_err();
    assert_eq!(error, tinyscore::SampleError::StepLimit { steps: 5 });
    assert!(Dopri5::new(0.0, 1e-5, 10).is_err());
    assert!(Dopri5::new(1e-5, f32::NAN, 10).is_err());
    assert!(Dopri5::new(1e-5, 1e-5, 0).is_err());
}

/// A mixture as (weight, mean, std) per component, kept so the test can write its density.
type Parts<const N: usize> = Vec<(f64, [f32; N], [f32; N])>;

fn parts_2d() -> Parts<2> {
    vec![
        (0.3, [-1.0, 0.5], [0.3, 0.2]),
        (0.7, [1.0, -0.4], [0.15, 0.4]),
    ]
}

fn parts_5d() -> Parts<5> {
    vec![
        (1.0, [1.0, 0.0, -0.5, 0.3, 0.0], [0.2, 0.3, 0.25, 0.4, 0.5]),
        (2.0, [-1.0, 0.5, 0.5, 0.0, -0.3], [0.3, 0.2, 0.35, 0.3, 0.2]),
        (1.0, [0.0, -1.0, 0.0, 0.8, 0.4], [0.25; 5]),
    ]
}

fn components<const N: usize>(parts: &Parts<N>) -> Vec<Component<N>> {
    parts
        .iter()
        .map(|(w, mean, std)| Component::new(*w as f32, *mean, *std).unwrap())
        .collect()
}

/// Central differences of the score, in f64 from f32 evaluations at ±h.
fn finite_difference_jacobian<S: Score<N>, const N: usize>(
    score: &S,
    x: &[f32; N],
    t: f32,
    h: f32,
) -> [[f64; N]; N] {
    let mut jacobian = [[0.0; N]; N];
    for j in 0..N {
        let (mut up, mut down) = (*x, *x);
        up[j] += h;
        down[j] -= h;
        let (su, sd) = (score.score(&up, t), score.score(&down, t));
        for i in 0..N {
            jacobian[i][j] = (su[i] as f64 - sd[i] as f64) / ((up[j] - down[j]) as f64);
        }
    }
    jacobian
}

fn check_derivatives<S: ScoreJacobian<N>, const N: usize>(score: &S, x: &[f32; N], t: f32) {
    let jacobian = finite_difference_jacobian(score, x, t, 1e-2);
    let trace: f64 = (0..N).map(|i| jacobian[i][i]).sum();
    let scale = jacobian
        .iter()
        .flatten()
        .map(|v| v.abs())
        .fold(1.0, f64::max);
    let (s, divergence) = score.score_divergence(x, t, N);
    assert_eq!(s, score.score(x, t), "the score's bits changed");
    // h = 1e-2 on fields that vary on scales ≥ 0.1: O(h²) ≈ 1 % of the curvature, plus f32
    // rounding of the differences (≈ 1e-7·|s|/h).
    let tolerance = 2e-2 * scale;
    assert!(
        (divergence as f64 - trace).abs() < tolerance,
        "t {t}: divergence {divergence}, finite differences {trace}"
    );
    let v: [f32; N] = core::array::from_fn(|i| if i % 2 == 0 { 1.0 } else { -0.5 });
    let (_, jv) = score.score_jvp(x, t, &v);
    for i in 0..N {
        let expected: f64 = (0..N).map(|j| jacobian[i][j] * v[j] as f64).sum();
        assert!(
            (jv[i] as f64 - expected).abs() < tolerance,
            "t {t}: (Jv)_{i} = {}, finite differences {expected}",
            jv[i]
        );
    }
}

#[test]
fn the_mixtures_exact_divergence_and_products_match_finite_differences() {
    let c2 = components(&parts_2d());
    let c5 = components(&parts_5d());
    let s2 = Diffused::new(VpSde::default(), GaussianMixture::new(&c2).unwrap());
    let s5 = Diffused::new(VpSde::default(), GaussianMixture::new(&c5).unwrap());
    for t in [0.01f32, 0.1, 0.5] {
        check_derivatives(&s2, &[0.2, -0.1], t);
        check_derivatives(&s2, &[-1.1, 0.6], t);
        check_derivatives(&s5, &[0.3, -0.2, 0.1, 0.5, 0.0], t);
    }
}

/// A small f32 network: 2-D data, 3 frequencies, two hidden layers of 6, the given output.
fn network(output: Output) -> Vec<u8> {
    let header = Header {
        precision: Precision::F32,
        dims: Dims {
            dim: 2,
            fourier: 3,
            hidden: 6,
            layers: 2,
        },
        sde: ModelSde::Vp(VpSde::default()),
        t_end: 1e-3,
        output,
        rounding: tinyscore::model::Rounding::Double,
        trained_activations: tinyscore::model::TrainedActivations::None,
    };
    common::f32_network(&header, 7, &[0.0, 0.0], &[1.0, 1.0], &[0.3, 1.7, -4.0])
}

#[test]
fn the_networks_forward_mode_derivatives_match_finite_differences() {
    for output in [Output::Noise, Output::GaussianResidual] {
        let bytes = network(output);
        let model = Model::parse(&bytes).unwrap();
        let score = NetworkJacobian::<2>::new(model).unwrap();
        for t in [0.05f32, 0.3, 0.9] {
            check_derivatives(&score, &[0.4, -0.7], t);
            check_derivatives(&score, &[-1.2, 0.3], t);
        }
    }
}

#[test]
fn hutchinsons_mean_is_the_exact_trace() {
    // One probe's estimate vᵀJv has mean tr J and variance ½Σ_{i≠j}(J_ij + J_ji)² for
    // Rademacher v. The mean of M = 4000 single-probe estimates must be within 5 standard
    // errors of the exact divergence (a failure by chance: < 1e-6).
    let c5 = components(&parts_5d());
    let score = Diffused::new(VpSde::default(), GaussianMixture::new(&c5).unwrap());
    let (x, t) = ([0.3f32, -0.2, 0.1, 0.5, 0.0], 0.2f32);
    let (_, exact) = score.score_divergence(&x, t, 5);
    let columns: Vec<[f32; 5]> = (0..5)
        .map(|j| {
            let mut unit = [0.0f32; 5];
            unit[j] = 1.0;
            score.score_jvp(&x, t, &unit).1
        })
        .collect();
    let jacobian = |i: usize, j: usize| columns[j][i] as f64;
    let mut variance = 0.0;
    for i in 0..5 {
        for j in 0..5 {
            if i != j {
                variance += 0.5 * (jacobian(i, j) + jacobian(j, i)).powi(2);
            }
        }
    }
    let m = 4000;
    let mut noise = particle_noise(3, 0);
    let mut sum = 0.0f64;
    for _ in 0..m {
        let z: [f32; 5] = noise.normal();
        let v = z.map(|z| if z < 0.0 { -1.0f32 } else { 1.0 });
        let (_, jv) = score.score_jvp(&x, t, &v);
        sum += v.iter().zip(&jv).map(|(a, b)| (a * b) as f64).sum::<f64>();
    }
    let mean = sum / m as f64;
    let standard_error = (variance / m as f64).sqrt();
    assert!(variance > 0.0);
    assert!(
        (mean - exact as f64).abs() < 5.0 * standard_error,
        "mean {mean}, exact {exact}, standard error {standard_error}"
    );
}

/// `log p(x)` of the mixture pushed to `(α, σ)` (means αμ_k, variances α²s_k² + σ²), in f64.
fn diffused_log_density<const N: usize>(
    parts: &Parts<N>,
    x: &[f32; N],
    alpha: f64,
    sigma: f64,
) -> f64 {
    let total: f64 = parts.iter().map(|p| p.0).sum();
    let logs: Vec<f64> = parts
        .iter()
        .map(|(w, mean, std)| {
            let mut log = (w / total).ln();
            for d in 0..N {
                let var = alpha * alpha * (std[d] as f64).powi(2) + sigma * sigma;
                let diff = x[d] as f64 - alpha * mean[d] as f64;
                log -= 0.5 * (diff * diff / var + var.ln() + (2.0 * std::f64::consts::PI).ln());
            }
            log
        })
        .collect();
    let max = logs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    max + logs.iter().map(|l| (l - max).exp()).sum::<f64>().ln()
}

/// Encodes points drawn from the mixture and compares `log p_{t_end}` with the closed form:
/// with the exact `p_T` at the end it is the solver's error alone; with the N(0, I) prior the
/// difference is the prior's mismatch at T, `log p_T − log N(0, I)` at the latent.
fn likelihood_matches_the_closed_form<const N: usize>(parts: &Parts<N>, points: usize) {
    let sde = VpSde::default();
    let c = components(parts);
    let score = Diffused::new(sde, GaussianMixture::new(&c).unwrap());
    let likelihood =
        Likelihood::new(Dopri5::new(1e-5, 1e-5, 100_000).unwrap(), Divergence::Exact).unwrap();
    let t_end = 1e-3f32;
    let at = |t: f32| (sde.alpha(t) as f64, sde.sigma(t) as f64);
    let mut draws = particle_noise(11, 0);
    let mut worst = 0.0f64;
    for k in 0..points {
        let (_, mean, std) = parts[k % parts.len()];
        let z: [f32; N] = draws.normal();
        let x: [f32; N] = core::array::from_fn(|d| mean[d] + std[d] * z[d]);
        let encoded = likelihood
            .encode(&sde, &score, &x, t_end, N, &mut particle_noise(5, k as u64))
            .unwrap();
        let (alpha, sigma) = at(t_end);
        let want = diffused_log_density(parts, &x, alpha, sigma);
        let (alpha_t, sigma_t) = at(sde.t_max());
        let end = diffused_log_density(parts, &encoded.latent, alpha_t, sigma_t);
        let got = end + encoded.delta_log_p as f64;
        worst = worst.max((got - want).abs());
        let prior = gaussian_log_density(&encoded.latent, sde.prior_std()) as f64;
        let mismatch = (end - prior).abs();
        let with_prior = prior + encoded.delta_log_p as f64;
        assert!(
            (with_prior - want).abs() <= mismatch + 5e-3,
            "point {k}: with the prior {with_prior}, closed form {want}, mismatch {mismatch}"
        );
    }
    // rtol = atol = 1e-5 on an integral of size ≈ 10: the solver's error stays below 5e-3
    // nats (f32 rounding of the divergence at t ≈ t_end, ≈ 1e-7 × 10⁴ per evaluation,
    // averages out).
    assert!(worst < 5e-3, "{N}-D: worst error {worst} nats");
}

#[test]
fn the_likelihood_of_a_2d_mixture_is_its_closed_form_density() {
    likelihood_matches_the_closed_form(&parts_2d(), 24);
}

#[test]
fn the_likelihood_of_a_5d_mixture_is_its_closed_form_density() {
    likelihood_matches_the_closed_form(&parts_5d(), 12);
}

#[test]
fn diffused_mixture_log_density_is_the_closed_form() {
    // Two components of unequal weights and stds, diffused to (α, σ) = (0.8, 0.5); the f32
    // log-sum-exp against the same formula in f64, to f32 rounding of a dozen operations.
    let components = [
        Component::new(3.0, [1.0, -0.5], [0.3, 0.6]).unwrap(),
        Component::new(1.0, [-1.5, 0.5], [0.8, 0.2]).unwrap(),
    ];
    let mixture = GaussianMixture::new(&components).unwrap();
    let (alpha, sigma) = (0.8f64, 0.5f64);
    let closed_form = |x: [f64; 2]| {
        let terms: Vec<f64> = components
            .iter()
            .map(|c| {
                let weight = if c.mean()[0] > 0.0 { 0.75 } else { 0.25 };
                let mut log = f64::ln(weight);
                for (d, x) in x.iter().enumerate() {
                    let var = (alpha * c.std()[d] as f64).powi(2) + sigma * sigma;
                    let diff = x - alpha * c.mean()[d] as f64;
                    log -= 0.5 * (diff * diff / var + var.ln() + (2.0 * std::f64::consts::PI).ln());
                }
                log
            })
            .collect();
        terms.iter().map(|l| l.exp()).sum::<f64>().ln()
    };
    for x in [[0.0f32, 0.0], [1.0, -0.5], [-3.0, 2.0], [6.0, 6.0]] {
        let got = mixture.perturbed_log_density(&x, alpha as f32, sigma as f32) as f64;
        let want = closed_form([x[0] as f64, x[1] as f64]);
        assert!(
            (got - want).abs() <= 1e-5 * want.abs().max(1.0),
            "{x:?}: {got} vs {want}"
        );
        // Its gradient is the score: central differences of the f64 form, step 1e-4, to 1e-4.
        let score =
            tinyscore::GaussianData::perturbed_score(&mixture, &x, alpha as f32, sigma as f32);
        for d in 0..2 {
            let (mut up, mut down) = ([x[0] as f64, x[1] as f64], [x[0] as f64, x[1] as f64]);
            up[d] += 1e-4;
            down[d] -= 1e-4;
            let slope = (closed_form(up) - closed_form(down)) / 2e-4;
            assert!(
                (score[d] as f64 - slope).abs() < 1e-4 * slope.abs().max(1.0),
                "{x:?} d{d}"
            );
        }
    }
}
