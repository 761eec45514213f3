//! Convergence orders against theory, each measured as the least-squares slope of ln(error)
//! against ln(step size) over at least four step sizes, and accepted within ±0.25 of the
//! order the solver documents (`Solver::ORDER`).
//!
//! The step ranges are where the error is in the asymptotic regime and at least ten times
//! the f32 round-off floor (≈3·10⁻⁷ here), so the slope measures truncation error, not noise.

mod common;
use common::loglog_slope;
use tinyscore::*;

// ---------------------------------------------------------------------------------------
// Euler–Maruyama on the Ornstein–Uhlenbeck process dx = −θx dt + √(2θ)s dW.

const THETA: f64 = 2.0;
const OU_STD: f64 = 1.0;
const X0: f64 = 1.0;
const FINE_STEPS: usize = 4096;
const COARSE: [usize; 5] = [8, 16, 32, 64, 128];

/// For `paths` Brownian paths on a grid of 4096 steps over [0, 1]: the exact OU solution (f64;
/// the stochastic integral over each fine step δ taken at its midpoint, strong error ≈ θδ/3 ≈
/// 2·10⁻⁴, far below the coarse errors ≥ 10⁻²) and Euler–Maruyama (f32, tinyscore) on each
/// coarse grid driven by the same path's increments summed.
fn ou_endpoints(paths: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let ou = OrnsteinUhlenbeck::new(THETA as f32, OU_STD as f32, 1.0).unwrap();
    let g = (2.0 * THETA).sqrt() * OU_STD;
    let delta = 1.0 / FINE_STEPS as f64;
    let mut exact = Vec::with_capacity(paths);
    let mut coarse = vec![Vec::with_capacity(paths); COARSE.len()];
    let mut dw = vec![0.0f64; FINE_STEPS];
    for p in 0..paths {
        let mut noise = particle_noise(2024, p as u64);
        for w in dw.iter_mut() {
            *w = delta.sqrt() * noise.sample() as f64;
        }
        let mut x = X0;
        for w in &dw {
            x = (-THETA * delta).exp() * x + g * (-THETA * delta / 2.0).exp() * w;
        }
        exact.push(x);
        for (level, &steps) in COARSE.iter().enumerate() {
            let per = FINE_STEPS / steps;
            let dt = 1.0 / steps as f32;
            let mut y = [X0 as f32];
            for (k, chunk) in dw.chunks(per).enumerate() {
                let increment = [chunk.iter().sum::<f64>() as f32];
                y = EulerMaruyama::step_sde(&ou, &y, k as f32 * dt, dt, &increment);
            }
            coarse[level].push(y[0] as f64);
        }
    }
    (exact, coarse)
}

#[test]
fn euler_maruyama_has_strong_order_one_for_additive_noise() {
    let (exact, coarse) = ou_endpoints(2000);
    let errors: Vec<f64> = coarse
        .iter()
        .map(|ys| {
            let mse = ys
                .iter()
                .zip(&exact)
                .map(|(y, x)| (y - x).powi(2))
                .sum::<f64>();
            (mse / exact.len() as f64).sqrt()
        })
        .collect();
    let h: Vec<f64> = COARSE.iter().map(|&k| 1.0 / k as f64).collect();
    let slope = loglog_slope(&h, &errors);
    println!("EM strong errors {errors:.3?}, slope {slope:.3}");
    assert!((slope - 1.0).abs() <= 0.25, "strong order {slope}");
}

#[test]
fn euler_maruyama_has_weak_order_one() {
    // Weak error in E[X_T²], estimated on common paths: E[X_h² − X²]. Its Monte Carlo
    // standard error, ≈ 2·E|X|·(strong error)/√M ≈ 10⁻⁴ at h = 1/128 with M = 20000, is two
    // orders below the bias (θh/2·Var X_T ≈ 8·10⁻³ there).
    let (exact, coarse) = ou_endpoints(20_000);
    let errors: Vec<f64> = coarse
        .iter()
        .map(|ys| {
            let diff = ys
                .iter()
                .zip(&exact)
                .map(|(y, x)| y * y - x * x)
                .sum::<f64>();
            (diff / exact.len() as f64).abs()
        })
        .collect();
    let h: Vec<f64> = COARSE.iter().map(|&k| 1.0 / k as f64).collect();
    let slope = loglog_slope(&h, &errors);
    println!("EM weak errors {errors:.3?}, slope {slope:.3}");
    assert!((slope - 1.0).abs() <= 0.25, "weak order {slope}");
}

// ---------------------------------------------------------------------------------------
// Probability-flow ODE solvers on the VP-SDE with Gaussian data N(μ, s²I): the marginal is
// N(α_t μ, (α_t²s² + σ_t²)I) and the ODE moves each point along its quantile, so the exact
// solution is x(t₁) = α₁μ + v₁^{½}·(x(t₀) − α₀μ)/v₀^{½}.

const MEAN: [f32; 2] = [0.5, -0.3];

fn vp_exact(x_start: f64, mean: f64, std: f64, t0: f64, t1: f64) -> f64 {
    let b = |t: f64| 0.1 * t + 9.95 * t * t;
    let alpha = |t: f64| (-0.5 * b(t)).exp();
    let spread = |t: f64| (alpha(t).powi(2) * std * std + 1.0 - (-b(t)).exp()).sqrt();
    alpha(t1) * mean + spread(t1) * (x_start - alpha(t0) * mean) / spread(t0)
}

/// Worst absolute endpoint error over 8 starting points, from t = 1 to `t_end` in `steps`
/// steps of the grid of `schedule`.
fn ode_error_on<P: Solver<VpSde, 2>>(
    schedule: Schedule,
    solver: P,
    steps: u32,
    std: f32,
    t_end: f32,
) -> f64 {
    let sde = VpSde::default();
    let score = Diffused::new(sde, Component::new(1.0, MEAN, [std; 2]).unwrap());
    let sampler = Sampler::new(solver, TimeGrid::new(schedule, 1.0, t_end, steps).unwrap());
    let mut worst = 0.0f64;
    for i in 0..8 {
        let start = [-2.0 + 0.5 * i as f32, 1.5 - 0.4 * i as f32];
        let mut x = start;
        let mut unused_noise = particle_noise(0, 0);
        sampler
            .run(&sde, &score, &mut x, &mut unused_noise, &mut NullObserver)
            .unwrap();
        for d in 0..2 {
            let exact = vp_exact(
                start[d] as f64,
                MEAN[d] as f64,
                std as f64,
                1.0,
                t_end as f64,
            );
            worst = worst.max((x[d] as f64 - exact).abs());
        }
    }
    worst
}

fn measured_order<P: Solver<VpSde, 2> + Copy>(
    solver: P,
    steps: &[u32],
    std: f32,
    t_end: f32,
) -> f64 {
    measured_order_on(Schedule::Uniform, solver, steps, std, t_end)
}

/// The log-log slope of the endpoint error against the step on the grids of `schedule`
/// with `steps` steps; fails where an error reaches the f32 floor.
fn measured_order_on<P: Solver<VpSde, 2> + Copy>(
    schedule: Schedule,
    solver: P,
    steps: &[u32],
    std: f32,
    t_end: f32,
) -> f64 {
    let errors: Vec<f64> = steps
        .iter()
        .map(|&k| ode_error_on(schedule, solver, k, std, t_end))
        .collect();
    let h: Vec<f64> = steps.iter().map(|&k| 1.0 / k as f64).collect();
    let slope = loglog_slope(&h, &errors);
    println!("errors {errors:.3?} → slope {slope:.3}");
    assert!(
        errors.iter().all(|&e| e > 3e-6),
        "errors reach the f32 floor"
    );
    slope
}

fn assert_order<P: Solver<VpSde, 2> + Copy>(solver: P, steps: &[u32], std: f32, t_end: f32) {
    let slope = measured_order(solver, steps, std, t_end);
    let theory = P::ORDER as f64;
    assert!(
        (slope - theory).abs() <= 0.25,
        "order {slope}, theory {theory}"
    );
}

#[test]
fn ode_euler_has_order_one() {
    assert_order(OdeEuler, &[64, 128, 256, 512], 0.3, 1e-3);
}

#[test]
fn ode_heun_has_order_two() {
    assert_order(OdeHeun, &[64, 128, 256, 512], 0.3, 1e-3);
}

#[test]
fn ode_rk4_has_order_four() {
    // On [10⁻³, 1] RK4's error is pre-asymptotic (local slopes 4.6 → 4.3) down to where f32
    // round-off takes over; on [0.1, 1] the asymptotic regime starts at errors of 10⁻⁴.
    assert_order(OdeRk4, &[11, 16, 23, 32], 0.3, 0.1);
}

#[test]
fn ddim_has_order_one() {
    assert_order(Ddim, &[64, 128, 256, 512], 0.3, 1e-3);
}

#[test]
fn dpm_solver_pp_2m_has_order_two() {
    assert_order(DpmSolverPp2M::default(), &[128, 256, 512, 1024], 0.3, 1e-3);
}

#[test]
fn dpm_solver_pp_3m_has_order_three() {
    // On equal log-SNR steps, as DPM-Solver is meant to run: a multistep method of order 3
    // extrapolates its history, and on the uniform-t grid the log-SNR steps grow 50-fold
    // towards t_end, too uneven for the extrapolation. On Gaussian data the error falls
    // faster than h³ (slope 3.7–4: its error constants cancel further), so the test asks for
    // at least third order. With the φ₃·D₂ of dpm_solver_pytorch and diffusers instead of
    // 2φ₃·D₂ the slope is 2.0 (measured on 64–256 steps): that update is second order.
    let steps = [16, 24, 32, 48];
    let solver = DpmSolverPp3M::default();
    let slope = measured_order_on(Schedule::LogSnr, solver, &steps, 0.3, 1e-3);
    assert!(slope >= 3.0 - 0.25, "order {slope}, theory at least 3");
}

#[test]
fn edm_heun_has_order_two() {
    assert_order(EdmHeun, &[64, 128, 256, 512], 0.3, 1e-3);
}

#[test]
fn unipc_has_order_three() {
    // UniP-2 alone is second order; its corrector UniC raises the order to 3 with the
    // evaluation the next step takes anyway. On equal log-SNR steps, as for DPM-Solver++(3M);
    // the local slopes rise towards 3 (2.7, 2.9, 2.9 on 16–48 steps).
    let slope = measured_order_on(
        Schedule::LogSnr,
        UniPc::default(),
        &[32, 48, 64, 96],
        0.3,
        1e-3,
    );
    assert!((slope - 3.0).abs() <= 0.25, "order {slope}, theory 3");
}
