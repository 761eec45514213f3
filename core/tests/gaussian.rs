//! The Box–Muller sampler against the standard normal law.
//!
//! Every tolerance is 5 standard errors of the statistic under the null hypothesis (a
//! false alarm probability below 6·10⁻⁷ per check), except the Kolmogorov–Smirnov test,
//! which uses its α = 0.01 critical value 1.628/√n (asymptotic Kolmogorov distribution).

mod common;
use common::*;
use rand_core::Rng;
use tinyscore::{particle_noise, particle_rng, GaussianStream};

const N: usize = 1_000_000;

fn draws(seed: u64, particle: u64, n: usize) -> Vec<f64> {
    let mut noise = particle_noise(seed, particle);
    (0..n).map(|_| noise.sample() as f64).collect()
}

#[test]
fn moments_match_the_standard_normal() {
    let xs = draws(1, 0, N);
    let n = N as f64;
    let (mean, var) = mean_var(&xs);
    let (skew, kurt) = skew_kurtosis(&xs);
    // Standard errors under N(0,1): mean 1/√n, variance √(2/n), skewness √(6/n),
    // excess kurtosis √(24/n).
    assert!(mean.abs() < 5.0 / n.sqrt(), "mean {mean}");
    assert!((var - 1.0).abs() < 5.0 * (2.0 / n).sqrt(), "variance {var}");
    assert!(skew.abs() < 5.0 * (6.0 / n).sqrt(), "skewness {skew}");
    assert!(
        kurt.abs() < 5.0 * (24.0 / n).sqrt(),
        "excess kurtosis {kurt}"
    );
}

#[test]
fn kolmogorov_smirnov_accepts_the_normal_cdf() {
    for seed in [2, 3] {
        let xs = draws(seed, 5, N);
        let d = ks_statistic(&xs, normal_cdf);
        let critical = 1.628 / (N as f64).sqrt();
        assert!(d < critical, "seed {seed}: D = {d} ≥ {critical}");
    }
}

#[test]
fn the_two_outputs_of_a_pair_are_uncorrelated() {
    let xs = draws(4, 0, 2 * N);
    let first: Vec<f64> = xs.iter().step_by(2).copied().collect();
    let second: Vec<f64> = xs.iter().skip(1).step_by(2).copied().collect();
    // Under independence the sample correlation has standard error 1/√n.
    let bound = 5.0 / (N as f64).sqrt();
    let within_pair = correlation(&first, &second);
    assert!(
        within_pair.abs() < bound,
        "lag-1 within pairs {within_pair}"
    );
    let across_pairs = correlation(&second[..N - 1], &first[1..]);
    assert!(
        across_pairs.abs() < bound,
        "lag-1 across pairs {across_pairs}"
    );
}

#[test]
fn neighbouring_particle_streams_are_uncorrelated() {
    let bound = 5.0 / ((N / 4) as f64).sqrt();
    for particle in [0, 1, 1000] {
        let a = draws(9, particle, N / 4);
        let b = draws(9, particle + 1, N / 4);
        let r = correlation(&a, &b);
        assert!(
            r.abs() < bound,
            "particles {particle}, {}: r = {r}",
            particle + 1
        );
    }
}

#[test]
fn ten_million_draws_are_all_finite_and_bounded() {
    let mut noise = GaussianStream::new(particle_rng(5, 0));
    // u₁ ≥ 2⁻²⁴ bounds |z| by √(−2 ln 2⁻²⁴) = √(48 ln 2).
    let bound = (48.0f32 * core::f32::consts::LN_2).sqrt() * (1.0 + 1e-6);
    for i in 0..10_000_000 {
        let z = noise.sample();
        assert!(z.is_finite() && z.abs() <= bound, "draw {i}: {z}");
    }
}

#[test]
fn box_muller_never_takes_the_log_of_zero() {
    // The all-zero and all-one words are the extreme uniforms.
    for (w1, w2) in [
        (0, 0),
        (0, u32::MAX),
        (u32::MAX, 0),
        (u32::MAX, u32::MAX),
        (255, 1 << 31),
    ] {
        let (a, b) = tinyscore::box_muller(w1, w2);
        assert!(a.is_finite() && b.is_finite(), "words {w1:#x} {w2:#x}");
    }
    // u₁ = 1 (the largest word) gives radius 0 exactly.
    assert_eq!(tinyscore::box_muller(u32::MAX, 12345), (0.0, 0.0));
}

#[test]
fn brownian_increments_have_variance_dt() {
    let mut noise = particle_noise(6, 0);
    let dt = 0.01f32;
    let xs: Vec<f64> = (0..N / 4)
        .flat_map(|_| noise.brownian_increment::<4>(-dt))
        .map(f64::from)
        .collect();
    let (mean, var) = mean_var(&xs);
    let n = xs.len() as f64;
    let dt = dt as f64;
    assert!(mean.abs() < 5.0 * (dt / n).sqrt(), "mean {mean}");
    assert!(
        (var - dt).abs() < 5.0 * dt * (2.0 / n).sqrt(),
        "variance {var}"
    );
}

/// `GaussianStream::normals` draws many streams together; each stream must give the bits
/// of drawing its vectors one by one, and end in the same state, whatever the dimension and
/// whether a stream starts with a spare normal. Fresh streams take the path with no decision
/// per stream until an odd dimension leaves them all a spare; streams advanced by 0, 1 or 2
/// normals mix both kinds in every group of 16.
#[test]
fn batched_normals_equal_each_stream_drawn_alone() {
    fn check<const D: usize>(mixed: bool) {
        // 37 streams: two full lanes of 16 and a partial one.
        let mut batched: Vec<_> = (0..37).map(|i| particle_noise(9, i)).collect();
        for (i, s) in batched.iter_mut().enumerate() {
            for _ in 0..if mixed { i % 3 } else { 0 } {
                s.sample(); // an odd count leaves a spare
            }
        }
        let mut alone = batched.clone();
        for round in 0..5 {
            let mut out = vec![[0.0f32; D]; batched.len()];
            GaussianStream::normals(&mut batched, &mut out);
            for (i, (stream, got)) in alone.iter_mut().zip(&out).enumerate() {
                let want: [f32; D] = stream.normal();
                assert_eq!(
                    got.map(f32::to_bits),
                    want.map(f32::to_bits),
                    "dimension {D}, stream {i}, round {round}, mixed {mixed}"
                );
            }
        }
        for (i, (a, b)) in batched.iter_mut().zip(&mut alone).enumerate() {
            assert_eq!(
                a.sample().to_bits(),
                b.sample().to_bits(),
                "state of stream {i}"
            );
        }
    }
    for mixed in [false, true] {
        check::<1>(mixed);
        check::<2>(mixed);
        check::<3>(mixed);
        check::<5>(mixed);
    }
}

/// The vectorised Box–Muller gives each lane the scalar function's bits.
#[test]
fn box_muller_lanes_equal_the_scalar_pairs() {
    let mut rng = particle_rng(10, 0);
    for _ in 0..100_000 {
        let word1: [u32; 16] = core::array::from_fn(|_| rng.next_u32());
        let word2: [u32; 16] = core::array::from_fn(|_| rng.next_u32());
        let (z1, z2) = tinyscore::box_muller_lanes(&word1, &word2);
        for p in 0..16 {
            let (a, b) = tinyscore::box_muller(word1[p], word2[p]);
            assert_eq!(
                (z1[p].to_bits(), z2[p].to_bits()),
                (a.to_bits(), b.to_bits())
            );
        }
    }
    // The extremes of the 24-bit uniforms.
    for (w1, w2) in [
        (0, 0),
        (u32::MAX, u32::MAX),
        (0, 1 << 30),
        (u32::MAX, 3 << 30),
    ] {
        let (z1, z2) = tinyscore::box_muller_lanes(&[w1; 16], &[w2; 16]);
        let (a, b) = tinyscore::box_muller(w1, w2);
        assert!(z1.iter().all(|z| z.to_bits() == a.to_bits()));
        assert!(z2.iter().all(|z| z.to_bits() == b.to_bits()));
    }
}
