//! The host's batch evaluation of the network (`tinyscore_host::network`, compiled for AVX2
//! where the CPU has it) against the baseline build of the same code, bit for bit, for the
//! f32, int8 and packed int8 models: the wider vectors must not change a single result.

use rand_core::Rng;
use tinyscore::model::packed::pack_int8;
use tinyscore::{particle_rng, Model, NeuralScore, Score};
use tinyscore_host::network::neural_score;
use tinyscore_tests::{reference_int8, reference_model_bytes};

fn assert_same_bits(bytes: &[u8], seed: u64) {
    let model = Model::parse(bytes).unwrap();
    let baseline = NeuralScore::<2>::new(model).unwrap();
    let fastest = neural_score::<2>(model).unwrap();
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
            assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits), "x {x:?} t {t}");
        }
    }
}

#[test]
fn the_fastest_batch_path_gives_the_baseline_bits() {
    #[cfg(target_arch = "x86_64")]
    assert!(
        std::arch::is_x86_feature_detected!("avx2"),
        "this test checks the AVX2 copy: run it on a CPU with AVX2"
    );
    assert_same_bits(&reference_model_bytes(), 1);
    let int8 = reference_int8().1;
    assert_same_bits(&int8, 2);
    let mut packed = vec![0u8; int8.len()];
    pack_int8(&int8, &mut packed).unwrap();
    assert_same_bits(&packed, 3);
}
