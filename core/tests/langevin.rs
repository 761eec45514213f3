//! Langevin MCMC against the laws it must sample.
//!
//! Tolerances are 5 standard errors of the estimator over independent chains (each chain
//! ends far past its relaxation time, so the chains' final states are independent draws),
//! plus the discretisation bias where theory bounds it.

mod common;
use common::{mean_var, normal_cdf};
use tinyscore::*;

/// Independent ULA chains from 0, each run `steps` steps; returns the final states.
fn ula_chains<S: Score<1>>(score: &S, step_size: f32, chains: u64, steps: u32) -> Vec<f64> {
    let ula = Ula::new(step_size).unwrap();
    (0..chains)
        .map(|c| {
            let mut noise = particle_noise(77, c);
            let mut x = [0.0f32];
            ula.run(score, &mut x, steps, &mut noise, &mut NullObserver)
                .unwrap();
            x[0] as f64
        })
        .collect()
}

#[test]
fn ula_on_a_gaussian_has_the_known_order_eps_bias() {
    // x ← x + ε(μ − x)/v + √(2ε)η is an AR(1) chain with stationary mean μ and variance
    // v/(1 − ε/2v): ULA's O(ε) bias, exactly. The update with ε/2·s would give twice as much.
    let (mean, std) = (1.0f32, 0.5f32);
    let target = Component::new(1.0, [mean], [std]).unwrap();
    let v = (std * std) as f64;
    let chains = 20_000;
    for eps in [0.02f32, 0.05, 0.1] {
        // Relaxation factor per step (1 − ε/v): 300 steps leave < e^{−24} of the start.
        let xs = ula_chains(&target, eps, chains, 300);
        let (m, var) = mean_var(&xs);
        let expected = v / (1.0 - eps as f64 / (2.0 * v));
        let n = chains as f64;
        assert!(
            (m - mean as f64).abs() < 5.0 * (expected / n).sqrt(),
            "ε {eps}: mean {m}"
        );
        assert!(
            (var - expected).abs() < 5.0 * expected * (2.0 / n).sqrt(),
            "ε {eps}: variance {var}, expected {expected} (unbiased {v})"
        );
    }
}

#[test]
fn ula_on_a_two_component_mixture_puts_the_right_mass_in_each_mode() {
    // Weights 0.3 at −1 and 0.7 at +1, std 0.5: P(x > 0) = 0.3(1 − Φ(2)) + 0.7Φ(2) ≈ 0.691.
    // With ε = 0.01 the variance of each mode grows by ε/2v = 2%, moving the mass across 0
    // by about 2·φ(2)·1% ≈ 10⁻³; the binomial standard error with 20000 chains is 3.3·10⁻³.
    // The wrong update (ε/2·s) samples p^{1/2}, whose mass above 0 is about 0.60.
    let components = [
        Component::new(0.3, [-1.0], [0.5]).unwrap(),
        Component::new(0.7, [1.0], [0.5]).unwrap(),
    ];
    let target = GaussianMixture::new(&components).unwrap();
    let chains = 20_000u64;
    // 5000 steps = 50 time units, many barrier-crossing times for a barrier of e².
    let xs = ula_chains(&target, 0.01, chains, 5000);
    let above = xs.iter().filter(|&&x| x > 0.0).count() as f64 / chains as f64;
    let expected = 0.3 * (1.0 - normal_cdf(2.0)) + 0.7 * normal_cdf(2.0);
    let se = (expected * (1.0 - expected) / chains as f64).sqrt();
    assert!(
        (above - expected).abs() < 5.0 * se + 2e-3,
        "mass above 0: {above}, expected {expected}"
    );
}

/// A force-free particle.
struct Free;

impl Score<1> for Free {
    fn score(&self, _x: &[f32; 1], _t: f32) -> [f32; 1] {
        [0.0]
    }
}

#[test]
fn underdamped_free_particle_obeys_equipartition_fluctuation_dissipation_and_einstein() {
    let (mass, friction, kt, dt) = (2.0f32, 1.0f32, 0.5f32, 0.1f32);
    let dynamics = Underdamped::new(mass, friction, kt, dt).unwrap();
    let thermal = (kt / mass) as f64; // ⟨v²⟩ = kT/m
    let relaxation = (mass / friction) as f64; // m/γ
    let diffusion = (kt / friction) as f64; // D = kT/γ
    let particles = 40_000u64;
    let lags = [10u32, 20, 40]; // γt/m = 0.5, 1, 2
    let long = 4000u32; // t = 400 = 200 m/γ
    let mut v0_vk = [0.0f64; 3];
    let mut v2_end = 0.0f64;
    let mut msd = 0.0f64;
    for p in 0..particles {
        let mut noise = particle_noise(31, p);
        let v0 = (thermal.sqrt() as f32) * noise.sample(); // start in equilibrium
        let mut state = dynamics.start(&Free, [0.0], [v0]).unwrap();
        for step in 1..=long {
            dynamics.step(&Free, &mut state, &mut noise).unwrap();
            if let Some(i) = lags.iter().position(|&l| l == step) {
                v0_vk[i] += (v0 * state.v[0]) as f64;
            }
        }
        v2_end += (state.v[0] as f64).powi(2);
        msd += (state.x[0] as f64).powi(2);
    }
    let n = particles as f64;
    // Equipartition: v² of a N(0, kT/m) velocity has standard deviation √2·kT/m.
    let v2 = v2_end / n;
    assert!(
        (v2 - thermal).abs() < 5.0 * 2f64.sqrt() * thermal / n.sqrt(),
        "⟨v²⟩ = {v2}"
    );
    // Velocity autocorrelation kT/m·e^{−γt/m} (the O-step is the exact OU flow); the product
    // v₀v_k has standard deviation ≤ √2·kT/m.
    for (i, &lag) in lags.iter().enumerate() {
        let t = (lag as f32 * dt) as f64;
        let expected = thermal * (-t / relaxation).exp();
        let got = v0_vk[i] / n;
        assert!(
            (got - expected).abs() < 5.0 * 2f64.sqrt() * thermal / n.sqrt(),
            "VACF at t = {t}: {got}, expected {expected}"
        );
    }
    // Mean square displacement 2D[t − m/γ(1 − e^{−γt/m})] → 2Dt. BAOAB's trapezoidal position
    // update makes the long-time D exact up to (γdt/m)²/12 = 2·10⁻⁴; the estimator of a
    // Gaussian displacement's variance V has standard error V√(2/n).
    let t = (long as f32 * dt) as f64;
    let expected = 2.0 * diffusion * (t - relaxation * (1.0 - (-t / relaxation).exp()));
    let got = msd / n;
    assert!(
        (got - expected).abs() < 5.0 * expected * (2.0 / n).sqrt() + 2e-4 * expected,
        "MSD({t}) = {got}, expected {expected}"
    );
    let einstein = got / (2.0 * diffusion * t);
    assert!((einstein - 1.0).abs() < 0.04, "MSD / 2Dt = {einstein}");
}
