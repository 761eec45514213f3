//! The reverse-time samplers on the 8-Gaussians mixture with its exact score, and the
//! contracts around them: SDE consistency, grids, observers, errors.

use tinyscore::*;

/// 8 isotropic Gaussians of std 0.1 at 2·(cos kπ/4, sin kπ/4), equal weights.
fn eight_gaussians() -> [Component<2>; 8] {
    core::array::from_fn(|k| {
        let angle = k as f64 * std::f64::consts::FRAC_PI_4;
        let mean = [(2.0 * angle.cos()) as f32, (2.0 * angle.sin()) as f32];
        Component::new(1.0, mean, [0.1, 0.1]).unwrap()
    })
}

/// Draws `n` samples with `solver` over a 1000-step uniform grid from t = 1 to 10⁻³ and checks
/// each mode's mass and spread.
///
/// Mass: 1/8 ± 5 binomial standard errors √(p(1 − p)/n). Spread: the per-mode sample std
/// (pooled over both dimensions) within 10% of 0.1; with ≈ n/8 points per mode its standard
/// error is ≈ 0.1/√(2·2n/8) ≈ 1.6% at n = 8000, so 10% is 6 standard errors. The marginal at
/// t = 10⁻³ has std √(α²·0.01 + σ²) = 0.1005, inside that.
fn assert_modes<P: Solver<VpSde, 2>>(name: &str, solver: P, denoise: bool) {
    let components = eight_gaussians();
    let data = GaussianMixture::new(&components).unwrap();
    let sde = VpSde::default();
    let score = Diffused::new(sde, data);
    let sampler =
        Sampler::new(solver, TimeGrid::uniform(1.0, 1e-3, 1000).unwrap()).with_denoise(denoise);
    let n = 8000u64;
    let mut members: [Vec<[f64; 2]>; 8] = Default::default();
    for p in 0..n {
        let mut noise = particle_noise(8, p);
        let x = sampler
            .sample(&sde, &score, &mut noise, &mut NullObserver)
            .unwrap();
        let nearest = (0..8)
            .min_by(|&a, &b| {
                let d = |k: usize| {
                    let m = components[k].mean();
                    (x[0] - m[0]).powi(2) + (x[1] - m[1]).powi(2)
                };
                d(a).total_cmp(&d(b))
            })
            .unwrap();
        members[nearest].push([x[0] as f64, x[1] as f64]);
    }
    let se = (1.0 / 8.0 * 7.0 / 8.0 / n as f64).sqrt();
    for (k, points) in members.iter().enumerate() {
        let mass = points.len() as f64 / n as f64;
        assert!(
            (mass - 0.125).abs() < 5.0 * se,
            "{name}: mode {k} has mass {mass}"
        );
        let count = points.len() as f64;
        let centre = [0, 1].map(|d| points.iter().map(|p| p[d]).sum::<f64>() / count);
        let var = points
            .iter()
            .map(|p| (p[0] - centre[0]).powi(2) + (p[1] - centre[1]).powi(2))
            .sum::<f64>()
            / (2.0 * (count - 1.0));
        let spread = var.sqrt();
        assert!(
            (spread - 0.1).abs() < 0.01,
            "{name}: mode {k} has spread {spread}"
        );
    }
}

#[test]
fn euler_maruyama_finds_every_mode() {
    assert_modes("em", EulerMaruyama, false);
}

#[test]
fn reverse_diffusion_finds_every_mode() {
    assert_modes("rd", ReverseDiffusion, false);
}

#[test]
fn ancestral_finds_every_mode() {
    assert_modes("ancestral", Ancestral, false);
}

#[test]
fn predictor_corrector_finds_every_mode() {
    let pc = PredictorCorrector {
        predictor: ReverseDiffusion,
        corrector: LangevinCorrector::default(),
    };
    assert_modes("pc", pc, false);
}

#[test]
fn probability_flow_solvers_find_every_mode() {
    assert_modes("ode-euler", OdeEuler, false);
    assert_modes("ode-heun", OdeHeun, false);
    assert_modes("ode-rk4", OdeRk4, false);
    assert_modes("ddim", Ddim, false);
    assert_modes("dpm2m", DpmSolverPp2M::default(), false);
    assert_modes("dpm3m", DpmSolverPp3M::default(), false);
    assert_modes("unipc", UniPc::default(), false);
}

#[test]
fn annealed_langevin_finds_every_mode() {
    // NCSN's scaling ε_i ∝ σ_i² assumes data much narrower than σ_L; here the modes (std 0.1)
    // are ten times wider than σ_L ≈ 0.0105, so the last levels need ε ≈ σ_L² to move at
    // all: ε/v ≈ 10⁻² per step at the end (bias ε/2v = 0.5%), ε_i/v_i → 0.9 < 2 (stable) at
    // the top.
    let sde = VpSde::default();
    let sigma_last = sde.sigma(1e-3);
    let ald = AnnealedLangevin::new(sigma_last * sigma_last, 2, sigma_last).unwrap();
    assert_modes("ald", ald, false);
}

#[test]
fn denoising_removes_the_last_noise_level() {
    // Tweedie's step maps p_ε to the posterior means: the spread shrinks by the factor
    // s²α/(α²s² + σ²) ≈ 0.989 at ε = 10⁻³, still 0.1 within 10%.
    assert_modes("em+denoise", EulerMaruyama, true);
}

// ---------------------------------------------------------------------------------------

/// Each SDE's α and σ solve the moment equations of its drift and diffusion:
/// dα/dt = a(t)α and dσ²/dt = 2a(t)σ² + g(t)², checked by central differences in f64 of
/// the f32 closed forms (step 10⁻³: truncation ≈ 10⁻⁶ relative, round-off ≈ 10⁻⁴ relative).
#[test]
fn closed_form_marginals_solve_the_moment_equations() {
    fn check<D: LinearSde>(name: &str, sde: D) {
        let h = 1e-3f32;
        for i in 1..20 {
            let t = sde.t_max() * i as f32 / 20.0;
            let (a, g) = (sde.drift_coeff(t) as f64, sde.diffusion_coeff(t) as f64);
            let alpha = sde.alpha(t) as f64;
            let dalpha = (sde.alpha(t + h) as f64 - sde.alpha(t - h) as f64) / (2.0 * h as f64);
            assert!(
                (dalpha - a * alpha).abs() < 1e-3 * (1.0 + (a * alpha).abs()),
                "{name} t={t}: dα/dt {dalpha} vs {}",
                a * alpha
            );
            let var = |t: f32| (sde.sigma(t) as f64).powi(2);
            let dvar = (var(t + h) - var(t - h)) / (2.0 * h as f64);
            let rhs = 2.0 * a * var(t) + g * g;
            assert!(
                (dvar - rhs).abs() < 2e-3 * (1.0 + rhs.abs()),
                "{name} t={t}: dσ²/dt {dvar} vs {rhs}"
            );
        }
    }
    check("vp", VpSde::default());
    check("subvp", SubVpSde::default());
    check("ve", VeSde::new(0.01, 5.0).unwrap());
    check("ou", OrnsteinUhlenbeck::new(1.5, 0.7, 2.0).unwrap());
}

#[test]
fn time_at_log_snr_inverts_log_snr() {
    fn check<D: LinearSde>(name: &str, sde: D) {
        for i in 1..50 {
            let t = sde.t_max() * i as f32 / 50.0;
            let back = sde.time_at_log_snr(sde.log_snr(t));
            assert!(
                (back - t).abs() < 1e-4 * sde.t_max(),
                "{name}: t {t} → {back}"
            );
        }
    }
    check("vp", VpSde::default());
    check("subvp", SubVpSde::default());
    check("ve", VeSde::default());
    check("ou", OrnsteinUhlenbeck::langevin(3.0).unwrap());
}

#[test]
fn grids_start_and_end_exactly_and_decrease() {
    let sde = VpSde::default();
    for schedule in [
        Schedule::Uniform,
        Schedule::Karras { rho: 7.0 },
        Schedule::LogSnr,
    ] {
        let grid = TimeGrid::new(schedule, 1.0, 1e-3, 50).unwrap();
        assert_eq!(grid.time(&sde, 0), 1.0);
        assert_eq!(grid.time(&sde, 50), 1e-3);
        for i in 0..50 {
            assert!(
                grid.time(&sde, i + 1) < grid.time(&sde, i),
                "{schedule:?} at {i}"
            );
        }
    }
    // Karras' grid is evenly spaced in σ̃^{1/ρ}; log-SNR's in λ.
    let karras = TimeGrid::new(Schedule::Karras { rho: 7.0 }, 1.0, 1e-3, 10).unwrap();
    let root = |i| (-sde.log_snr(karras.time(&sde, i)) / 7.0).exp();
    let first_gap = root(0) - root(1);
    for i in 1..10 {
        let gap = root(i) - root(i + 1);
        assert!(
            (gap - first_gap).abs() < 1e-3 * first_gap,
            "Karras gap {i}: {gap} vs {first_gap}"
        );
    }
    let log_snr = TimeGrid::new(Schedule::LogSnr, 1.0, 1e-3, 10).unwrap();
    let first_gap = sde.log_snr(log_snr.time(&sde, 1)) - sde.log_snr(1.0);
    for i in 1..10 {
        let gap = sde.log_snr(log_snr.time(&sde, i + 1)) - sde.log_snr(log_snr.time(&sde, i));
        assert!(
            (gap - first_gap).abs() < 1e-3 * first_gap.abs().max(1.0),
            "log-SNR gap {i}"
        );
    }
}

#[test]
fn observers_see_every_state_and_trajectories_record_into_a_fixed_buffer() {
    let components = eight_gaussians();
    let sde = VpSde::default();
    let score = Diffused::new(sde, GaussianMixture::new(&components).unwrap());
    let sampler = Sampler::new(EulerMaruyama, TimeGrid::uniform(1.0, 1e-3, 100).unwrap());
    let mut steps = Vec::new();
    let x = sampler
        .sample(
            &sde,
            &score,
            &mut particle_noise(1, 1),
            &mut |i: u32, t: f32, _x: &[f32; 2]| steps.push((i, t)),
        )
        .unwrap();
    assert_eq!(steps.len(), 101);
    assert_eq!(steps[0], (0, 1.0));
    assert_eq!(steps[100], (100, 1e-3));
    let mut trajectory = Trajectory::<2, 8>::new(10);
    let y = sampler
        .sample(&sde, &score, &mut particle_noise(1, 1), &mut trajectory)
        .unwrap();
    assert_eq!(x, y, "observing must not change the sample");
    assert_eq!(trajectory.points().len(), 8);
    assert_eq!(trajectory.dropped(), 3); // steps 0, 10, …, 100: 11 points, 8 kept
    assert_eq!(trajectory.points()[1].0, sampler.grid.time(&sde, 10));
}

/// A score that turns NaN after the first `good` calls.
struct FailsAfter {
    good: std::cell::Cell<u32>,
}

impl Score<2> for FailsAfter {
    fn score(&self, x: &[f32; 2], _t: f32) -> [f32; 2] {
        let left = self.good.get();
        if left == 0 {
            return [f32::NAN, 0.0];
        }
        self.good.set(left - 1);
        [-x[0], -x[1]]
    }
}

#[test]
fn a_non_finite_score_stops_the_sampler_at_its_step() {
    let sde = VpSde::default();
    let grid = TimeGrid::uniform(1.0, 1e-3, 20).unwrap();
    // Heun evaluates twice per step: the 7th evaluation belongs to step 3.
    let score = FailsAfter { good: 6.into() };
    let mut x = [0.5f32, 0.5];
    let err = Sampler::new(OdeHeun, grid)
        .run(
            &sde,
            &score,
            &mut x,
            &mut particle_noise(0, 0),
            &mut NullObserver,
        )
        .unwrap_err();
    assert_eq!(err, SampleError::NonFiniteScore { step: 3 });
    assert!(
        x.iter().all(|v| v.is_finite()),
        "x keeps its last finite value"
    );
    // The denoising step is step K.
    let score = FailsAfter { good: 20.into() };
    let err = Sampler::new(EulerMaruyama, grid)
        .with_denoise(true)
        .run(
            &sde,
            &score,
            &mut x,
            &mut particle_noise(0, 0),
            &mut NullObserver,
        )
        .unwrap_err();
    assert_eq!(err, SampleError::NonFiniteScore { step: 20 });
}

#[test]
fn a_diverging_sampler_reports_the_step_instead_of_returning_nan() {
    // ULA with ε far beyond 2v is unstable: |x| grows by |1 − ε/v| per step until it overflows.
    let target = Component::new(1.0, [0.0], [0.01]).unwrap();
    let ula = Ula::new(1.0).unwrap();
    let mut x = [1.0f32];
    let err = ula
        .run(
            &target,
            &mut x,
            1000,
            &mut particle_noise(0, 0),
            &mut NullObserver,
        )
        .unwrap_err();
    assert!(
        matches!(err, SampleError::NonFiniteState { step } | SampleError::NonFiniteScore { step } if step < 100),
        "{err:?}"
    );
    assert!(x[0].is_finite());
}

#[test]
fn impossible_parameters_are_errors_not_panics() {
    let bad = [
        VpSde::new(0.0, 20.0).map(|_| ()),
        VpSde::new(1.0, 0.5).map(|_| ()),
        VpSde::new(f32::NAN, 20.0).map(|_| ()),
        SubVpSde::new(0.1, f32::INFINITY).map(|_| ()),
        VeSde::new(1.0, 1.0).map(|_| ()),
        VeSde::new(-1.0, 1.0).map(|_| ()),
        OrnsteinUhlenbeck::new(0.0, 1.0, 1.0).map(|_| ()),
        TimeGrid::uniform(1.0, 1e-3, 0).map(|_| ()),
        TimeGrid::uniform(1e-3, 1.0, 10).map(|_| ()),
        TimeGrid::uniform(1.0, 0.0, 10).map(|_| ()),
        TimeGrid::new(Schedule::Karras { rho: 0.0 }, 1.0, 1e-3, 10).map(|_| ()),
        Component::new(0.0, [0.0], [1.0]).map(|_| ()),
        Component::new(1.0, [f32::NAN], [1.0]).map(|_| ()),
        Component::new(1.0, [0.0], [0.0]).map(|_| ()),
        GaussianMixture::<1>::new(&[]).map(|_| ()),
        Ula::new(-0.1).map(|_| ()),
        Underdamped::new(1.0, 0.0, 1.0, 0.1).map(|_| ()),
        LangevinCorrector::new(f32::NAN, 1).map(|_| ()),
        AnnealedLangevin::new(1e-5, 0, 0.01).map(|_| ()),
        DoubleWell::new(-1.0).map(|_| ()),
        Bespoke::new(&[]).map(|_| ()),
        Bespoke::new(&[[1.0, 0.5, 0.0, 0.0]; 33]).map(|_| ()),
        Bespoke::new(&[[1.0, f32::NAN, 0.0, 0.0]]).map(|_| ()),
        Bespoke::new(&[[1.0, 0.5, 0.1, 0.0]]).map(|_| ()),
    ];
    for (i, result) in bad.iter().enumerate() {
        let err = result.expect_err(&format!("case {i} must be rejected"));
        let message = err.to_string();
        assert!(
            message.starts_with("invalid `") && message.contains("must be"),
            "case {i}: {message}"
        );
    }
}

#[test]
fn double_well_score_is_minus_the_gradient_of_its_potential() {
    let well = DoubleWell::new(2.0).unwrap();
    for x in [[0.3f32, -0.7, 1.1], [-1.2, 0.4, 0.0], [1.0, 2.0, -2.0]] {
        let s = well.score(&x, 0.0);
        for d in 0..3 {
            let h = 1e-3f32;
            let (mut up, mut down) = (x, x);
            up[d] += h;
            down[d] -= h;
            let grad =
                (well.potential(&up) as f64 - well.potential(&down) as f64) / (2.0 * h as f64);
            assert!(
                (s[d] as f64 + grad).abs() < 1e-2 * (1.0 + grad.abs()),
                "d {d}: {} vs {}",
                s[d],
                -grad
            );
        }
    }
}

/// `sample_batch` (lockstep, 16-lane vectorised scores) against `sample` (one particle, one
/// lane): the same bits for every particle, whatever chunk it falls in.
fn assert_batch_matches_single<P: Solver<VpSde, 2> + Copy>(name: &str, solver: P) {
    let components = eight_gaussians();
    let sde = VpSde::default();
    let score = Diffused::new(sde, GaussianMixture::new(&components).unwrap());
    let sampler =
        Sampler::new(solver, TimeGrid::uniform(1.0, 1e-3, 60).unwrap()).with_denoise(true);
    let n = 45; // one full chunk of 32 (two full 16-lane score blocks) and a partial one
    let mut noises: Vec<_> = (0..n).map(|i| particle_noise(3, i)).collect();
    let mut batch = vec![[0.0f32; 2]; n as usize];
    sampler
        .sample_batch::<_, _, _, 2, 32>(&sde, &score, &mut noises, &mut batch)
        .unwrap();
    for (i, got) in batch.iter().enumerate() {
        let single = sampler
            .sample(
                &sde,
                &score,
                &mut particle_noise(3, i as u64),
                &mut NullObserver,
            )
            .unwrap();
        assert_eq!(
            got.map(f32::to_bits),
            single.map(f32::to_bits),
            "{name}: particle {i}"
        );
    }
}

#[test]
fn batched_sampling_gives_the_bits_of_single_particle_sampling() {
    assert_batch_matches_single("em", EulerMaruyama);
    assert_batch_matches_single("rd", ReverseDiffusion);
    assert_batch_matches_single("ancestral", Ancestral);
    assert_batch_matches_single(
        "pc",
        PredictorCorrector {
            predictor: ReverseDiffusion,
            corrector: LangevinCorrector::default(),
        },
    );
    assert_batch_matches_single("ode-euler", OdeEuler);
    assert_batch_matches_single("ode-heun", OdeHeun);
    assert_batch_matches_single("ode-rk4", OdeRk4);
    assert_batch_matches_single("ddim", Ddim);
    assert_batch_matches_single("dpm2", DpmSolverPp2M::default());
    let lower_order_final = true;
    assert_batch_matches_single("dpm3", DpmSolverPp3M { lower_order_final });
    assert_batch_matches_single("unipc", UniPc { lower_order_final });
    let sde = VpSde::default();
    let sigma_last = sde.sigma(1e-3);
    assert_batch_matches_single(
        "ald",
        AnnealedLangevin::new(sigma_last * sigma_last, 2, sigma_last).unwrap(),
    );
}

#[test]
fn lockstep_langevin_gives_the_bits_of_one_chain_at_a_time() {
    // 45 chains on 8 Gaussians: one full chunk of 32 (a vectorised score block) and a partial
    // one, 200 steps each, against `Ula::run` chain by chain.
    let components = eight_gaussians();
    let target = GaussianMixture::new(&components).unwrap();
    let ula = Ula::new(0.01).unwrap();
    let n = 45;
    let mut noises: Vec<_> = (0..n).map(|i| particle_noise(5, i)).collect();
    let mut xs: Vec<[f32; 2]> = noises.iter_mut().map(|noise| noise.normal()).collect();
    for step in 0..200 {
        ula.step_batch::<_, _, 2, 32>(&target, &mut xs, &mut noises, step)
            .unwrap();
    }
    for (i, got) in xs.iter().enumerate() {
        let mut noise = particle_noise(5, i as u64);
        let mut x: [f32; 2] = noise.normal();
        ula.run(&target, &mut x, 200, &mut noise, &mut NullObserver)
            .unwrap();
        assert_eq!(got.map(f32::to_bits), x.map(f32::to_bits), "chain {i}");
    }
    // A chain whose score fails is named by its index among all chains, with the step.
    struct FailsFar;
    impl Score<1> for FailsFar {
        fn score(&self, x: &[f32; 1], _t: f32) -> [f32; 1] {
            [if x[0] > 5.0 { f32::NAN } else { -x[0] }]
        }
    }
    let mut xs = vec![[0.0f32]; 40];
    xs[37] = [10.0];
    let mut noises: Vec<_> = (0..40).map(|i| particle_noise(0, i)).collect();
    let failure = ula
        .step_batch::<_, _, 1, 16>(&FailsFar, &mut xs, &mut noises, 7)
        .unwrap_err();
    assert_eq!(
        failure,
        ParticleError {
            particle: 37,
            error: SampleError::NonFiniteScore { step: 7 }
        }
    );
}

#[test]
fn a_batch_reports_which_particle_failed() {
    // A score that fails beyond x₀ = 60, and a VE prior (std 50) that starts some particles there.
    struct FailsFar;
    impl Score<2> for FailsFar {
        fn score(&self, x: &[f32; 2], _t: f32) -> [f32; 2] {
            if x[0] > 60.0 {
                [f32::NAN, 0.0]
            } else {
                [-x[0], -x[1]]
            }
        }
    }
    let sde = VeSde::default();
    let sampler = Sampler::new(EulerMaruyama, TimeGrid::uniform(1.0, 1e-3, 10).unwrap());
    let mut noises: Vec<_> = (0..64).map(|i| particle_noise(11, i)).collect();
    let mut xs = vec![[0.0f32; 2]; 64];
    let err = sampler
        .sample_batch::<_, _, _, 2, 16>(&sde, &FailsFar, &mut noises, &mut xs)
        .unwrap_err();
    // The reported particle is the first whose prior draw is beyond 60, at step 0.
    let first_far = (0..64)
        .find(|&i| {
            let x: [f32; 2] = sde.sample_prior(&mut particle_noise(11, i));
            x[0] > 60.0
        })
        .unwrap() as usize;
    assert_eq!(
        err,
        ParticleError {
            particle: first_far,
            error: SampleError::NonFiniteScore { step: 0 }
        }
    );
}

/// The bespoke solver with DDIM's coefficients (`a = σ'/σ`, `b = α' − α·σ'/σ`, no other
/// terms) is DDIM: the same samples up to f32 rounding of the two formulas (10⁻⁵ on states of
/// size 2 after 10 steps, against a step's size of 10⁻¹), so each step takes its own row.
#[test]
fn bespoke_with_ddims_coefficients_is_ddim() {
    let components = eight_gaussians();
    let sde = VpSde::default();
    let score = Diffused::new(sde, GaussianMixture::new(&components).unwrap());
    let grid = TimeGrid::new(Schedule::LogSnr, 1.0, 1e-3, 10).unwrap();
    let rows: Vec<StepCoefficients> = (0..10)
        .map(|i| {
            let (t, t_next) = (grid.time(&sde, i), grid.time(&sde, i + 1));
            let ratio = sde.sigma(t_next) / sde.sigma(t);
            [ratio, sde.alpha(t_next) - sde.alpha(t) * ratio, 0.0, 0.0]
        })
        .collect();
    let bespoke = Sampler::new(Bespoke::new(&rows).unwrap(), grid);
    let ddim = Sampler::new(Ddim, grid);
    for p in 0..64 {
        let draw = |sampler: &dyn Fn(&mut GaussianStream<DefaultRng>) -> [f32; 2]| {
            sampler(&mut particle_noise(3, p))
        };
        let a = draw(&|n| bespoke.sample(&sde, &score, n, &mut NullObserver).unwrap());
        let b = draw(&|n| ddim.sample(&sde, &score, n, &mut NullObserver).unwrap());
        for d in 0..2 {
            assert!((a[d] - b[d]).abs() <= 1e-5, "particle {p}: {a:?} vs {b:?}");
        }
    }
    // A grid of another length is refused rather than run on the wrong rows.
    struct Steps;
    impl WithSolver<2> for Steps {
        type Output = ();
        fn run<D, P>(self, _: P, _: D) {}
    }
    let settings = Settings {
        bespoke: Some(Bespoke::new(&rows[..9]).unwrap()),
        ..Settings::default()
    };
    let model_sde = ModelSde::Vp(sde);
    assert!(Method::Bespoke
        .with_solver(model_sde, &grid, &settings, Steps)
        .is_err());
    assert!(Method::Bespoke
        .with_solver(model_sde, &grid, &Settings::default(), Steps)
        .is_err());
}
