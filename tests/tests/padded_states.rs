//! Every data dimension 1 to 64 on the host's compiled state sizes (`tinyscore_host::dims`):
//! a dimension between them runs padded in the next size up, and must give, coordinate for
//! coordinate, the bits of a state of its own size, which this test compiles for each of the
//! 64 dimensions and runs through the core directly, particle by particle. Exact mixture
//! scores (unequal spreads, so the log-determinants count) with Euler–Maruyama,
//! predictor–corrector (its corrector draws noise too) and DPM-Solver++(2M); a network of
//! each dimension with Euler–Maruyama; ULA chains on a mixture target. 40 particles: a group
//! of the host's vectorised noise lanes and a remainder drawn one by one.

use tinyscore::model::{Dims, Output};
use tinyscore::{
    particle_noise, Diffused, DpmSolverPp2M, EulerMaruyama, GaussianMixture, LangevinCorrector,
    LinearSde, Model, ModelSde, NeuralScore, NullObserver, PredictorCorrector, ReverseDiffusion,
    Sampler, Schedule, Score, Solver, TimeGrid, Ula, VpSde,
};
use tinyscore_host::data::Mixture;
use tinyscore_host::model_file::Network;
use tinyscore_host::progress::Progress;
use tinyscore_host::sampling::langevin::{run_target, LangevinOptions, Method};
use tinyscore_host::sampling::{sample_exact, sample_model, SampleOptions, SamplerKind};

const PARTICLES: usize = 40;
const STEPS: u32 = 8;
const SEED: u64 = 5;
const T_END: f32 = 1e-3;

fn sde() -> ModelSde {
    ModelSde::Vp(VpSde::default())
}

/// Two components with spreads that differ between them and across coordinates.
fn mixture(dim: usize) -> Mixture {
    let coordinate = |k: usize, d: usize| ((k * 7 + d * 3) % 5) as f32 * 0.5 - 1.0;
    let spread = |k: usize, d: usize| 0.2 + 0.1 * ((k + d) % 3) as f32;
    Mixture {
        name: format!("{dim}-D test mixture"),
        weights: vec![0.4, 0.6],
        means: (0..2)
            .map(|k| (0..dim).map(|d| coordinate(k, d)).collect())
            .collect(),
        stds: (0..2)
            .map(|k| (0..dim).map(|d| spread(k, d)).collect())
            .collect(),
    }
}

/// A small network of `dim` dimensions with deterministic weights.
fn network(dim: usize) -> Vec<u8> {
    let dims = Dims {
        dim: dim as u32,
        fourier: 2,
        hidden: 8,
        layers: 1,
    };
    let mut state = 0x9E37_79B9u32 ^ dim as u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        ((state >> 8) as f32 / (1 << 23) as f32 - 1.0) * 0.3
    };
    let layers = (0..=dims.layers)
        .map(|i| {
            let (inputs, outputs) = dims.layer_shape(i);
            let weights = (0..inputs * outputs).map(|_| next()).collect();
            let bias = (0..outputs).map(|_| next()).collect();
            (weights, bias)
        })
        .collect();
    Network {
        dims,
        sde: sde(),
        t_end: T_END,
        output: Output::GaussianResidual,
        mean: vec![0.0; dim],
        std: vec![1.0; dim],
        fourier: vec![0.5, 3.0],
        layers,
        activations: Vec::new(),
        activation_width: tinyscore_host::quantize::ActivationWidth::Int8,
    }
    .to_bytes()
    .unwrap()
}

fn options(sampler: SamplerKind) -> SampleOptions<'static> {
    SampleOptions {
        threads: 2,
        ..SampleOptions::uniform(sampler, STEPS, PARTICLES, SEED, T_END)
    }
}

/// Particles `0..PARTICLES` of `solver` on a state of exactly `N` coordinates, one at a time.
fn unpadded<P, S, const N: usize>(solver: P, score: &S) -> Vec<u32>
where
    P: Solver<ModelSde, N>,
    S: Score<N>,
{
    let grid = TimeGrid::new(Schedule::Uniform, sde().t_max(), T_END, STEPS).unwrap();
    let sampler = Sampler::new(solver, grid);
    (0..PARTICLES as u64)
        .flat_map(|i| {
            let mut noise = particle_noise(SEED, i);
            let x: [f32; N] = sampler
                .sample(&sde(), score, &mut noise, &mut NullObserver)
                .unwrap();
            x.map(f32::to_bits)
        })
        .collect()
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn check_dimension<const N: usize>() {
    let mixture = mixture(N);
    let components = mixture.components::<N>().unwrap();
    let exact = Diffused::new(sde(), GaussianMixture::new(&components).unwrap());
    let pc = PredictorCorrector {
        predictor: ReverseDiffusion,
        corrector: LangevinCorrector::default(),
    };
    for (sampler, expected) in [
        (SamplerKind::Em, unpadded(EulerMaruyama, &exact)),
        (SamplerKind::Pc, unpadded(pc, &exact)),
        (
            SamplerKind::Dpm2,
            unpadded(DpmSolverPp2M::default(), &exact),
        ),
    ] {
        let got = sample_exact(&options(sampler), sde(), &mixture, &Progress::silent()).unwrap();
        assert_eq!(got.dim, N);
        assert!(
            bits(&got.values) == expected,
            "{N}-D mixture, {}: the padded state's bits differ",
            sampler.name()
        );
    }

    let bytes = network(N);
    let model = Model::parse(&bytes).unwrap();
    let expected = unpadded(EulerMaruyama, &NeuralScore::<N>::new(model).unwrap());
    let got = sample_model(model, &options(SamplerKind::Em), &Progress::silent()).unwrap();
    assert!(
        bits(&got.values) == expected,
        "{N}-D network, em: the padded state's bits differ"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("target.json");
    let json = serde_json::json!({
        "weights": mixture.weights, "means": mixture.means, "stds": mixture.stds,
    });
    std::fs::write(&path, json.to_string()).unwrap();
    let langevin = LangevinOptions {
        method: Method::Ula,
        step: 1e-2,
        steps: STEPS,
        mass: 1.0,
        friction: 1.0,
        kt: 1.0,
        n: PARTICLES,
        seed: SEED,
        threads: 2,
    };
    let got = run_target(path.to_str().unwrap(), &langevin).unwrap();
    let target = GaussianMixture::new(&components).unwrap();
    let ula = Ula::new(langevin.step).unwrap();
    let expected: Vec<u32> = (0..PARTICLES as u64)
        .flat_map(|i| {
            let mut noise = particle_noise(SEED, i);
            let mut x: [f32; N] = noise.normal();
            ula.run(&target, &mut x, STEPS, &mut noise, &mut NullObserver)
                .unwrap();
            x.map(f32::to_bits)
        })
        .collect();
    assert!(
        bits(&got.values) == expected,
        "{N}-D ULA: the padded state's bits differ"
    );
}

#[test]
fn every_dimension_gives_the_bits_of_its_own_state_size() {
    seq_macro::seq!(N in 1..=64 {
        check_dimension::<N>();
    });
}

#[test]
fn dimensions_run_in_the_smallest_compiled_size_that_holds_them() {
    use tinyscore_host::dims::{state_size, MAX_DIM, STATE_SIZES};
    assert_eq!(state_size(0), None);
    assert_eq!(state_size(MAX_DIM + 1), None);
    for dim in 1..=MAX_DIM {
        let size = state_size(dim).unwrap();
        assert!(size >= dim);
        assert!(STATE_SIZES.iter().all(|&s| s < dim || s >= size));
    }
}
