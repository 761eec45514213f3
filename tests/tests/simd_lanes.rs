//! The host's batch evaluations (`tinyscore_host::simd`, compiled for AVX2 and AVX-512 where
//! the CPU has them) against the baseline build of the same code, bit for bit: the network
//! for the f32, int8 and packed int8 models, the exact mixture score and the noise. The wider vectors
//! must not change a single result. Every copy the CPU runs is compared; the CI machines run
//! both (an AMD EPYC with AVX-512), and AVX2 is required.

use rand_core::Rng;
use tinyscore::{
    particle_rng, Component, GaussianData, GaussianMixture, GaussianStream, Model, NeuralScore,
    Score,
};
use tinyscore_host::simd::{exact_mixture_on, neural_score_on, particle_noises_on, Vectors};
use tinyscore_tests::{packed, reference_int8, reference_model_bytes};

/// The copies compared with the baseline: every wider one this CPU runs.
fn wider_copies() -> Vec<Vectors> {
    let copies: Vec<Vectors> = Vectors::supported()
        .into_iter()
        .filter(|&v| v != Vectors::Baseline)
        .collect();
    println!("comparing the baseline with {copies:?}");
    copies
}

fn assert_same_bits(bytes: &[u8], seed: u64) {
    for vectors in wider_copies() {
        assert_same_bits_on(vectors, bytes, seed);
    }
}

fn assert_same_bits_on(vectors: Vectors, bytes: &[u8], seed: u64) {
    let model = Model::parse(bytes).unwrap();
    let baseline = NeuralScore::<2>::new(model).unwrap();
    let fastest = neural_score_on::<2>(vectors, model).unwrap();
    let mut rng = particle_rng(seed, 0);
    let mut uniform = || (rng.next_u32() >> 8) as f32 / (1 << 24) as f32;
    // Full batches of 16 take the fastest path; points far outside the data too.
    let xs: Vec<[f32; 2]> = (0..4096)
        .map(|_| [10.0 * uniform() - 5.0, 10.0 * uniform() - 5.0])
        .collect();
    for _ in 0..20 {
        let t = uniform();
        let (mut a, mut b) = (vec![[0.0f32; 2]; xs.len()], vec![[0.0f32; 2]; xs.len()]);
        fastest.score_batch(&xs, t, &mut a);
        baseline.score_batch(&xs, t, &mut b);
        for ((x, a), b) in xs.iter().zip(&a).zip(&b) {
            let bits = (a.map(f32::to_bits), b.map(f32::to_bits));
            assert_eq!(bits.0, bits.1, "{vectors:?}: x {x:?} t {t}");
        }
    }
}

fn require_avx2() {
    #[cfg(target_arch = "x86_64")]
    assert!(
        std::arch::is_x86_feature_detected!("avx2"),
        "this test checks the AVX2 copy: run it on a CPU with AVX2"
    );
}

#[test]
fn the_fastest_batch_path_gives_the_baseline_bits() {
    require_avx2();
    assert_same_bits(&reference_model_bytes(), 1);
    let int8 = reference_int8().1;
    assert_same_bits(&int8, 2);
    let packed = packed(&int8);
    assert_same_bits(&packed, 3);
}

/// The mixture's AVX2 and AVX-512 copies against the baseline, on a shared-std mixture (one set of
/// inverse variances) and one with its own std per component, in 3-D, at times from pure
/// noise to the data, with points far out and a partial last batch.
#[test]
fn the_fastest_mixture_score_gives_the_baseline_bits() {
    require_avx2();
    let mut rng = particle_rng(4, 0);
    let mut uniform = || (rng.next_u32() >> 8) as f32 / (1 << 24) as f32;
    let shared: Vec<Component<3>> = (0..11)
        .map(|k| Component::new(1.0 + k as f32, [k as f32, -1.0, 0.5], [0.1, 0.2, 0.3]).unwrap())
        .collect();
    let own: Vec<Component<3>> = (0..11)
        .map(|k| {
            let s = 0.05 + 0.1 * k as f32;
            Component::new(1.0, [0.3 * k as f32, 1.0, -0.5], [s, 2.0 * s, 0.5]).unwrap()
        })
        .collect();
    for (components, vectors) in [&shared, &own]
        .into_iter()
        .flat_map(|c| wider_copies().into_iter().map(move |v| (c, v)))
    {
        let baseline = GaussianMixture::new(components).unwrap();
        let fastest = exact_mixture_on(vectors, components).unwrap();
        let xs: Vec<[f32; 3]> = (0..1000)
            .map(|_| core::array::from_fn(|_| 24.0 * uniform() - 12.0))
            .collect();
        for sigma in [1e-3, 0.1, 0.7, 1.0] {
            let alpha = (1.0f32 - sigma * sigma).sqrt().max(1e-3);
            let (mut a, mut b) = (vec![[0.0f32; 3]; xs.len()], vec![[0.0f32; 3]; xs.len()]);
            fastest.perturbed_score_batch(&xs, alpha, sigma, &mut a);
            baseline.perturbed_score_batch(&xs, alpha, sigma, &mut b);
            for ((x, a), b) in xs.iter().zip(&a).zip(&b) {
                assert_eq!(
                    a.map(f32::to_bits),
                    b.map(f32::to_bits),
                    "{vectors:?}: x {x:?} σ {sigma}"
                );
            }
        }
    }
}

/// The noise streams' Box–Muller copies against the baseline's, bit for bit: 100 streams
/// (three full groups of 32 and a partial one, drawn stream by stream) drawing 2-D and 3-D
/// vectors in turn (a 3-D vector leaves a spare, which sends the next draw down the
/// spare-handling path), 4·10⁵ normals per copy.
#[test]
fn the_fastest_noise_gives_the_baseline_bits() {
    require_avx2();
    const STREAMS: u64 = 100;
    for vectors in wider_copies() {
        let mut fastest = particle_noises_on(vectors, 7, 0..STREAMS);
        let mut baseline = particle_noises_on(Vectors::Baseline, 7, 0..STREAMS);
        let same_bits = |round: usize, a: &[f32], b: &[f32]| {
            let bits = |v: &[f32]| v.iter().map(|z| z.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(a), bits(b), "{vectors:?}: round {round}");
        };
        for round in 0..800 {
            if round % 2 == 0 {
                let (mut a, mut b) = ([[0.0f32; 2]; 100], [[0.0f32; 2]; 100]);
                GaussianStream::normals(&mut fastest, &mut a);
                GaussianStream::normals(&mut baseline, &mut b);
                same_bits(round, a.as_flattened(), b.as_flattened());
            } else {
                let (mut a, mut b) = ([[0.0f32; 3]; 100], [[0.0f32; 3]; 100]);
                GaussianStream::normals(&mut fastest, &mut a);
                GaussianStream::normals(&mut baseline, &mut b);
                same_bits(round, a.as_flattened(), b.as_flattened());
            }
        }
    }
}

/// Training's bias and SiLU on this CPU's fastest path (AVX2 with FMA here) against the
/// formula in f64, over pre-activations from −100 to 100 (both saturated ends), in rows of 61
/// (not a multiple of the vector width, so the formula's tail runs too) with a bias per
/// column. The fast path computes σ to about 4·2⁻²⁴ relative (e^(−z) within 2 units in the
/// last place, a 2⁻²² reciprocal, the roundings of 1 + e); SiLU = z·σ inherits that relative
/// error, and SiLU' = σ(1 + z(1 − σ)) an absolute one of about (1 + |z|)·|Δσ| — below the
/// bounds 10⁻⁶·|SiLU| and 10⁻⁶·(1 + |z|), which an error of one bit in 2¹⁹ would break. Below
/// z ≈ −65, where |SiLU| < 10⁻³⁰, flushing to 0 is allowed (f32's `exp` overflows there).
#[test]
fn the_fastest_silu_is_accurate() {
    const ROW: usize = 61;
    let z: Vec<f32> = (0..ROW * 1640).map(|i| -100.0 + 0.002 * i as f32).collect();
    let bias: Vec<f32> = (0..ROW).map(|j| 0.37 * j as f32 - 11.0).collect();
    let (mut fast, mut slope) = (z.clone(), vec![0.0f32; z.len()]);
    tinyscore_host::train::kernels::bias_silu_with_slope(&mut fast, &bias, &mut slope);
    for (i, ((&v, &f), &d)) in z.iter().zip(&fast).zip(&slope).enumerate() {
        let v = (v + bias[i % ROW]) as f64;
        let s = 1.0 / (1.0 + (-v).exp());
        let (want, want_slope) = (v * s, s * (1.0 + v * (1.0 - s)));
        assert!(
            (f as f64 - want).abs() <= 1e-6 * want.abs() + 1e-30,
            "SiLU({v}) = {f}, want {want}"
        );
        assert!(
            (d as f64 - want_slope).abs() <= 1e-6 * (1.0 + v.abs()),
            "SiLU'({v}) = {d}, want {want_slope}"
        );
    }
}

/// Training's time features through this CPU's fastest copy against the model's
/// `sin_cos_bounded` one value at a time, bit for bit: times over [0, 1] with reference-scale
/// frequencies (angles up to ±6434 rad, the bound the model's time features stay within), in
/// rows with data columns before the features and a frequency count that leaves a partial
/// vector.
#[test]
fn the_fastest_time_features_give_the_models_bits() {
    require_avx2();
    const DIM: usize = 3;
    let frequencies: Vec<f32> = (0..13).map(|j| (j as f32 - 6.0) * 170.7).collect();
    let width = DIM + 2 * frequencies.len();
    let times: Vec<f32> = (0..4001).map(|i| i as f32 / 4000.0).collect();
    let mut rows = vec![-7.0f32; width * times.len()];
    tinyscore_host::train::kernels::time_features(&mut rows, width, DIM, &times, &frequencies);
    for (row, &t) in rows.chunks_exact(width).zip(&times) {
        assert_eq!(&row[..DIM], &[-7.0; DIM], "the data columns are left alone");
        for (j, &w) in frequencies.iter().enumerate() {
            let angle = std::hint::black_box(t * w * 2.0 * std::f32::consts::PI);
            let (sin, cos) = tinyscore::math::sin_cos_bounded(angle);
            let f = frequencies.len();
            assert_eq!(
                (row[DIM + j].to_bits(), row[DIM + f + j].to_bits()),
                (sin.to_bits(), cos.to_bits()),
                "t {t}, w {w}"
            );
        }
    }
}
