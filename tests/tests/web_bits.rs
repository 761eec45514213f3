//! The web page's simulation, stepped as the page steps it, ends on the host's bits: the
//! samplers of its scripting surface against `sample_exact` and Langevin against
//! `langevin::run`, for two seeds and both processes. (The browser tests check the same of
//! the page's WebAssembly against the command line.)

use tinyscore::Component;
use tinyscore_host::data::Mixture;
use tinyscore_host::progress::Progress;
use tinyscore_host::sampling::langevin::{run, LangevinOptions, Method};
use tinyscore_host::sampling::{sample_exact, SampleOptions, SamplerKind, SdeKind};
use tinyscore_web::live::{Live, Pairing, Settings};
use tinyscore_web::target::Target;

fn mixture() -> Mixture {
    Mixture {
        name: "three".into(),
        weights: vec![2.0, 1.0, 1.0],
        means: vec![vec![-1.5, 0.0], vec![1.5, 0.5], vec![0.0, -2.0]],
        stds: vec![vec![0.3, 0.3], vec![0.5, 0.2], vec![0.2, 0.6]],
    }
}

fn target() -> Target {
    let m = mixture();
    let flat = |v: &[Vec<f32>]| v.concat();
    Target::mixture(&m.weights, &flat(&m.means), &flat(&m.stds)).unwrap()
}

fn settings(sampler: &str, sde: &str, schedule: &str, seed: u64) -> Settings {
    Settings {
        sampler: sampler.into(),
        sde: sde.into(),
        schedule: schedule.into(),
        steps: 25,
        n: 150, // two full chunks of 64 and a partial one
        seed,
        step_size: 0.01,
        pairing: Pairing::Full,
    }
}

/// Steps the simulation as the page does, a few steps per frame.
fn finish(mut live: Live) -> Vec<u32> {
    while live.advance(3).unwrap() > 0 {}
    live.positions().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn grid_samplers_end_on_the_hosts_bits() {
    let samplers = [
        ("em", SamplerKind::Em),
        ("pc", SamplerKind::Pc),
        ("ode-heun", SamplerKind::OdeHeun),
        ("dpm2", SamplerKind::Dpm2),
        ("ald", SamplerKind::Ald),
    ];
    for (name, kind) in samplers {
        for (sde, sde_kind, schedule) in [
            ("vp", SdeKind::Vp, "karras"),
            ("ve", SdeKind::Ve, "uniform"),
        ] {
            for seed in [0, 7] {
                let web =
                    finish(Live::new(target(), &settings(name, sde, schedule, seed)).unwrap());
                let mut options = SampleOptions::uniform(kind, 25, 150, seed, 1e-3);
                if schedule == "karras" {
                    options.schedule = tinyscore_host::sampling::ScheduleKind::Karras;
                }
                let host = sample_exact(
                    &options,
                    sde_kind.model_sde(),
                    &mixture(),
                    &Progress::silent(),
                )
                .unwrap();
                let host: Vec<u32> = host.values.iter().map(|v| v.to_bits()).collect();
                assert_eq!(web, host, "{name} {sde} {schedule} seed {seed}");
            }
        }
    }
}

#[test]
fn langevin_ends_on_the_hosts_bits() {
    let m = mixture();
    let components: Vec<Component<2>> = m.components().unwrap();
    let score = tinyscore::GaussianMixture::new(&components).unwrap();
    for seed in [0, 7] {
        let web = finish(Live::new(target(), &settings("ula", "vp", "uniform", seed)).unwrap());
        let options = LangevinOptions {
            method: Method::Ula,
            step: 0.01,
            steps: 25,
            mass: 1.0,
            friction: 1.0,
            kt: 1.0,
            n: 150,
            seed,
            threads: 1,
        };
        let host: Vec<u32> = run(&score, &options, 2)
            .unwrap()
            .as_flattened()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(web, host, "ula seed {seed}");
    }
}

/// The mismatched pairing `(ε/2)·s` with `√(2ε)·η` is ULA of step h = ε/2 at temperature 2,
/// so it samples `p^{1/2}`. On a Gaussian of variance v, ULA of step h at temperature T
/// settles at the variance `T·v/(1 − h/2v)`: 1.020·v for `ε·s, √(2ε)·η` (h = ε, T = 1),
/// 1.010·v for `(ε/2)·s, √ε·η` (h = ε/2, T = 1) and 2.020·v for the mismatch.
/// 4 000 chains in 2-D after 3 000 steps of ε = 0.01 (t = 30, a hundred relaxation times
/// v = 0.25): the variance estimate's relative standard error is √(2/8000) ≈ 1.6 %, so
/// bounds of 5σ (8 %) hold with room and a 2× error cannot pass.
#[test]
fn the_mismatched_langevin_pairing_doubles_a_gaussians_variance() {
    let gaussian = Target::mixture(&[1.0], &[0.0, 0.0], &[0.5, 0.5]).unwrap();
    let variance = |pairing| {
        let mut s = settings("ula", "vp", "uniform", 3);
        s.steps = 3000;
        s.n = 4000;
        s.pairing = pairing;
        let mut live = Live::new(gaussian.clone(), &s).unwrap();
        live.advance(3000).unwrap();
        let xs = live.raw();
        let v: f64 = xs
            .iter()
            .map(|x| (x[0] as f64).powi(2) + (x[1] as f64).powi(2))
            .sum::<f64>()
            / (2 * xs.len()) as f64;
        v / 0.25
    };
    let (full, half, mismatched) = (
        variance(Pairing::Full),
        variance(Pairing::Half),
        variance(Pairing::Mismatched),
    );
    eprintln!("variance / v: full {full:.4}, half {half:.4}, mismatched {mismatched:.4}");
    assert!((full / 1.0204 - 1.0).abs() < 0.08, "full pairing: {full}");
    assert!((half / 1.0101 - 1.0).abs() < 0.08, "half pairing: {half}");
    assert!(
        (mismatched / 2.0202 - 1.0).abs() < 0.08,
        "mismatched pairing: {mismatched}"
    );
}
