//! Pinned outputs per seed: a change to the RNG streams, Box–Muller or the angle kernel
//! changes every sample a user has ever drawn, and must show up here (the convention of
//! rand_distr's `value_stability`). Values were recorded from this implementation and cross-
//! checked against the f64 Box–Muller formula to 1e-6 in `pinned_values_match_f64_box_muller`.

use tinyscore::{box_muller, particle_noise, particle_rng};

fn first<const K: usize>(seed: u64, particle: u64) -> [f32; K] {
    let mut noise = particle_noise(seed, particle);
    core::array::from_fn(|_| noise.sample())
}

#[test]
fn pinned_normals_per_seed_and_particle() {
    let cases: [(u64, u64, [f32; 6]); 3] = [
        (0, 0, PINNED_0_0),
        (42, 0, PINNED_42_0),
        (42, 7, PINNED_42_7),
    ];
    for (seed, particle, expected) in cases {
        let got = first::<6>(seed, particle);
        for (g, e) in got.iter().zip(expected) {
            assert!(
                (g - e).abs() <= 1e-6 * e.abs().max(1.0),
                "seed {seed} particle {particle}: {got:?}"
            );
        }
    }
}

#[test]
fn pinned_values_match_f64_box_muller() {
    use rand_core::Rng;
    let mut rng = particle_rng(42, 7);
    let mut out = [0.0f32; 6];
    for pair in out.chunks_mut(2) {
        let (w1, w2) = (rng.next_u32(), rng.next_u32());
        let u1 = ((w1 >> 8) + 1) as f64 / (1u64 << 24) as f64;
        let u2 = (w2 >> 8) as f64 / (1u64 << 24) as f64;
        let r = (-2.0 * u1.ln()).sqrt();
        let angle = 2.0 * std::f64::consts::PI * u2;
        let (z1, z2) = box_muller(w1, w2);
        assert!((z1 as f64 - r * angle.cos()).abs() < 1e-6 * r.max(1.0));
        assert!((z2 as f64 - r * angle.sin()).abs() < 1e-6 * r.max(1.0));
        pair.copy_from_slice(&[z1, z2]);
    }
    assert_eq!(out, PINNED_42_7);
}

const PINNED_0_0: [f32; 6] = [
    1.0162884,
    -0.30155274,
    0.018078305,
    0.25443915,
    -1.1071644,
    0.41950828,
];
const PINNED_42_0: [f32; 6] = [
    -1.6190325,
    -0.45610312,
    -0.4088601,
    0.5604798,
    -1.4907919,
    -0.86153984,
];
const PINNED_42_7: [f32; 6] = [
    -1.1481998,
    -2.0527258,
    -0.34571233,
    -0.28108653,
    -1.0120087,
    -0.44047862,
];
