//! Pinned bits (`f32::to_bits`) per seed, in the convention of rand_distr's `value_stability`:
//! the noise, the first steps of every sampler with an exact score, and the f32, int8 and
//! packed networks' outputs on fixed inputs. The project promises the same bits on every
//! target and across releases; a change to the RNG streams, Box–Muller, a solver's
//! arithmetic or an evaluator changes every sample a user has ever drawn, and must show up
//! here as a failure, not pass within a tolerance.
//!
//! The pins were recorded from this implementation (`TINYSCORE_RECORD=1 cargo test --release
//! --test value_stability -- --nocapture` prints them); the noise was cross-checked against
//! the f64 Box–Muller formula in `pinned_noise_matches_f64_box_muller`.

mod common;

use tinyscore::model::format::{
    write_file, Int8ActivationValues, Int8LayerValues, LayerValues, Payload,
};
use tinyscore::model::packed::{pack, packed_len};
use tinyscore::model::quant::{silu_lut, QuantParams};
use tinyscore::model::{Dims, Header, ModelError, Output, Precision};
use tinyscore::{
    box_muller, particle_noise, particle_rng, Ancestral, AnnealedLangevin, Component, Ddim,
    Diffused, DpmSolverPp2M, EulerMaruyama, GaussianMixture, LangevinCorrector, LinearSde, Model,
    ModelSde, OdeEuler, OdeHeun, OdeRk4, PredictorCorrector, ReverseDiffusion, Sampler, Score,
    Solver, TimeGrid, Ula, Underdamped, VpSde,
};

/// Whether to print the values instead of checking them.
fn recording() -> bool {
    std::env::var_os("TINYSCORE_RECORD").is_some()
}

/// Checks `got` against the pinned bits `expected`, or prints it when recording.
fn check(name: &str, got: &[f32], expected: &[u32]) {
    let bits: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
    if recording() {
        let hex: Vec<String> = bits.iter().map(|b| format!("0x{b:08x}")).collect();
        println!("{name}: [{}]", hex.join(", "));
        return;
    }
    assert_eq!(bits, expected, "{name}: got {got:?}");
}

#[test]
fn pinned_noise_per_seed_and_particle() {
    let cases: [(u64, u64, [u32; 6]); 3] =
        [(0, 0, NOISE_0_0), (42, 0, NOISE_42_0), (42, 7, NOISE_42_7)];
    for (seed, particle, expected) in cases {
        let mut noise = particle_noise(seed, particle);
        let got: [f32; 6] = core::array::from_fn(|_| noise.sample());
        check(&format!("noise {seed} {particle}"), &got, &expected);
    }
}

#[test]
fn pinned_noise_matches_f64_box_muller() {
    use rand_core::Rng;
    let mut rng = particle_rng(42, 7);
    for pair in NOISE_42_7.chunks(2) {
        let (w1, w2) = (rng.next_u32(), rng.next_u32());
        let u1 = ((w1 >> 8) + 1) as f64 / (1u64 << 24) as f64;
        let u2 = (w2 >> 8) as f64 / (1u64 << 24) as f64;
        let r = (-2.0 * u1.ln()).sqrt();
        let angle = 2.0 * std::f64::consts::PI * u2;
        let (z1, z2) = box_muller(w1, w2);
        // The f32 kernels' stated error (`math`), far below the spacing of distinct pins.
        assert!((z1 as f64 - r * angle.cos()).abs() < 1e-6 * r.max(1.0));
        assert!((z2 as f64 - r * angle.sin()).abs() < 1e-6 * r.max(1.0));
        assert_eq!([z1.to_bits(), z2.to_bits()], pair);
    }
}

/// A two-component mixture in 2-D with unequal spreads (so the log-determinants count).
fn mixture() -> [Component<2>; 2] {
    [
        Component::new(0.3, [-1.0, 0.5], [0.2, 0.4]).unwrap(),
        Component::new(0.7, [1.5, -0.25], [0.5, 0.1]).unwrap(),
    ]
}

/// The states of particle 0 of seed 7 after each of the first three steps of `solver` on a
/// 20-step uniform grid, flattened.
fn first_steps<P: Solver<VpSde, 2>>(solver: P) -> Vec<f32> {
    let components = mixture();
    let sde = VpSde::default();
    let score = Diffused::new(sde, GaussianMixture::new(&components).unwrap());
    let sampler = Sampler::new(solver, TimeGrid::uniform(1.0, 1e-3, 20).unwrap());
    let mut noise = particle_noise(7, 0);
    let mut states = Vec::new();
    let _: [f32; 2] = sampler
        .sample(&sde, &score, &mut noise, &mut first_three(&mut states))
        .unwrap();
    states
}

/// An observer keeping the states after steps 1, 2 and 3, flattened into `states`.
fn first_three(states: &mut Vec<f32>) -> impl FnMut(u32, f32, &[f32; 2]) + '_ {
    |step, _t, x| {
        if (1..=3).contains(&step) {
            states.extend_from_slice(x);
        }
    }
}

#[test]
fn pinned_first_steps_of_every_sampler() {
    let pc = PredictorCorrector {
        predictor: ReverseDiffusion,
        corrector: LangevinCorrector::default(),
    };
    let sigma_end = VpSde::default().sigma(1e-3);
    let ald = AnnealedLangevin::new(sigma_end * sigma_end, 2, sigma_end).unwrap();
    let cases: [(&str, Vec<f32>, [u32; 6]); 10] = [
        ("em", first_steps(EulerMaruyama), STEPS_EM),
        ("rd", first_steps(ReverseDiffusion), STEPS_RD),
        ("ancestral", first_steps(Ancestral), STEPS_ANCESTRAL),
        ("pc", first_steps(pc), STEPS_PC),
        ("ode-euler", first_steps(OdeEuler), STEPS_ODE_EULER),
        ("ode-heun", first_steps(OdeHeun), STEPS_ODE_HEUN),
        ("ode-rk4", first_steps(OdeRk4), STEPS_ODE_RK4),
        ("ddim", first_steps(Ddim), STEPS_DDIM),
        ("dpm2", first_steps(DpmSolverPp2M::default()), STEPS_DPM2),
        ("ald", first_steps(ald), STEPS_ALD),
    ];
    for (name, got, expected) in cases {
        check(name, &got, &expected);
    }
}

#[test]
fn pinned_first_steps_of_langevin_mcmc() {
    let components = mixture();
    let target = GaussianMixture::new(&components).unwrap();
    let mut states = Vec::new();
    let mut x = [0.25f32, -0.5];
    let mut noise = particle_noise(3, 1);
    Ula::new(1e-2)
        .unwrap()
        .run(
            &target,
            &mut x,
            3,
            &mut noise,
            &mut first_three(&mut states),
        )
        .unwrap();
    check("ula", &states, &STEPS_ULA);

    let mut states = Vec::new();
    let dynamics = Underdamped::new(1.0, 2.0, 1.0, 0.05).unwrap();
    let mut state = dynamics.start(&target, [0.25, -0.5], [0.1, 0.0]).unwrap();
    let mut noise = particle_noise(3, 2);
    dynamics
        .run(
            &target,
            &mut state,
            3,
            &mut noise,
            &mut first_three(&mut states),
        )
        .unwrap();
    check("underdamped", &states, &STEPS_UNDERDAMPED);
}

/// The header shared by the pinned networks: 2-D data, 3 frequencies, two hidden layers of
/// 6 (so blocks of four rows and a remainder), residual output on the VP-SDE.
fn header(precision: Precision) -> Header {
    Header {
        precision,
        dims: Dims {
            dim: 2,
            fourier: 3,
            hidden: 6,
            layers: 2,
        },
        sde: ModelSde::Vp(VpSde::default()),
        t_end: 1e-3,
        output: Output::GaussianResidual,
        rounding: tinyscore::model::Rounding::Double,
        trained_activations: tinyscore::model::TrainedActivations::None,
    }
}

fn encode(header: &Header, payload: &Payload<'_>) -> Vec<u8> {
    let mut bytes = Vec::new();
    write_file(header, payload, |piece| bytes.extend_from_slice(piece)).unwrap();
    bytes
}

fn f32_model() -> Vec<u8> {
    common::f32_network(
        &header(Precision::F32),
        11,
        &[0.5, -0.25],
        &[0.9, 0.5],
        &[0.3, 1.7, -4.0],
    )
}

fn int8_model() -> Vec<u8> {
    let header = header(Precision::Int8);
    let mut next = common::values(23);
    let input = QuantParams {
        scale: 0.02,
        zero_point: -3,
    };
    let (pre, post) = (
        QuantParams {
            scale: 0.05,
            zero_point: 10,
        },
        QuantParams {
            scale: 0.03,
            zero_point: -120,
        },
    );
    let lut = silu_lut(pre, post);
    struct Layer {
        weights: Vec<i8>,
        bias: Vec<i32>,
        weight_scale: Vec<f32>,
        multiplier: Vec<i32>,
        shift: Vec<i8>,
    }
    let layers: Vec<Layer> = (0..=header.dims.layers)
        .map(|i| {
            let (inputs, outputs) = header.dims.layer_shape(i);
            Layer {
                weights: (0..inputs * outputs)
                    .map(|_| (127.0 * next()) as i8)
                    .collect(),
                bias: (0..outputs).map(|_| (3000.0 * next()) as i32).collect(),
                weight_scale: (0..outputs).map(|_| 0.01 + 0.005 * next()).collect(),
                multiplier: (0..outputs)
                    .map(|_| (1 << 30) + (((1u32 << 30) as f32 * 0.5 * (1.0 + next())) as i32))
                    .collect(),
                shift: (0..outputs).map(|o| -2 - (o % 3) as i8).collect(),
            }
        })
        .collect();
    let last = layers.len() - 1;
    let values: Vec<Int8LayerValues<'_>> = layers
        .iter()
        .enumerate()
        .map(|(i, l)| Int8LayerValues {
            weights: &l.weights,
            bias: &l.bias,
            weight_scale: &l.weight_scale,
            activation: (i < last).then_some(Int8ActivationValues {
                multiplier: &l.multiplier,
                shift: &l.shift,
                pre,
                lut: tinyscore::model::format::SiluTable::Int8(&lut),
                post,
            }),
        })
        .collect();
    encode(
        &header,
        &Payload {
            mean: &[0.5, -0.25],
            std: &[0.9, 0.5],
            fourier: &[0.3, 1.7, -4.0],
            layers: LayerValues::Int8 {
                input,
                layers: &values,
            },
        },
    )
}

/// The model's ε̂ at three fixed points and times, flattened, one point at a time and as a
/// batch score (which must agree to the bit).
fn outputs(bytes: &[u8]) -> Vec<f32> {
    let model = Model::parse(bytes).unwrap();
    let points = [
        ([0.1f32, -0.2], 0.5f32),
        ([1.5, 0.75], 0.05),
        ([-3.0, 2.0], 0.9),
    ];
    let mut out = Vec::new();
    for (x, t) in points {
        let mut eps = [0.0f32; 2];
        model.predict_noise(&x, t, &mut eps).unwrap();
        out.extend_from_slice(&eps);
        let score = tinyscore::NeuralScore::<2>::new(model).unwrap();
        let sigma = model.header().sde.sigma(t);
        let s = score.score(&x, t);
        let from_eps = eps.map(|e| -e / sigma);
        assert_eq!(
            s.map(f32::to_bits),
            from_eps.map(f32::to_bits),
            "score at {x:?}"
        );
    }
    out
}

#[test]
fn pinned_network_outputs_per_precision() {
    check("f32 network", &outputs(&f32_model()), &NETWORK_F32);
    let int8 = int8_model();
    check("int8 network", &outputs(&int8), &NETWORK_INT8);
    let mut packed = vec![0u8; packed_len(&int8).unwrap()];
    pack(&int8, &mut packed).unwrap();
    // The packed layout computes the int8 network's integers: the same pins.
    check("packed network", &outputs(&packed), &NETWORK_INT8);
}

/// A file of precision 3 (int16x8) is refused by name in a build without the `int16x8`
/// feature, and read on (here to its size check) in one with it. `cargo xtask test` runs this
/// file both ways, so the pins above also hold in the smaller build.
#[test]
fn int16x8_files_need_their_feature() {
    let mut bytes = int8_model();
    bytes[6] = 3; // the precision code of int16x8
    let body = bytes.len() - 4;
    let crc = tinyscore::model::crc32(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_le_bytes());
    let error = Model::parse(&bytes).unwrap_err();
    if cfg!(feature = "int16x8") {
        // Its SiLU tables are 1 026 bytes where the int8 file has 256.
        assert!(
            matches!(error, ModelError::InconsistentSize { .. }),
            "{error}"
        );
    } else {
        assert_eq!(error, ModelError::LeftOut { feature: "int16x8" });
    }
}

const NOISE_0_0: [u32; 6] = [
    0x3f8215bd, 0xbe9a651f, 0x3c9418f4, 0x3e8245d9, 0xbf8db790, 0x3ed6c9ca,
];
const NOISE_42_0: [u32; 6] = [
    0xbfcf3c75, 0xbee98659, 0xbed1561c, 0x3f0f7b9b, 0xbfbed245, 0xbf5c8de0,
];
const NOISE_42_7: [u32; 6] = [
    0xbf92f836, 0xc0035fdc, 0xbeb10135, 0xbe8fea93, 0xbf818980, 0xbee1866a,
];
const STEPS_EM: [u32; 6] = [
    0xc009299e, 0xc01c2919, 0xc02b9ce8, 0xbff981ea, 0xbfdd9da0, 0xbf6c93dd,
];
const STEPS_RD: [u32; 6] = [
    0xc00a172f, 0xc016b90a, 0xc03956d4, 0xc015a367, 0xc01c3ffa, 0xbfd7877e,
];
const STEPS_ANCESTRAL: [u32; 6] = [
    0xbffbe26c, 0xc00ba23a, 0xc01e9624, 0xbff40228, 0xbfe6e6df, 0xbf8e458b,
];
const STEPS_PC: [u32; 6] = [
    0xc01be5de, 0xbfd8858c, 0xbf06468a, 0xbf9038dc, 0x3ec639d8, 0xbf9008be,
];
const STEPS_ODE_EULER: [u32; 6] = [
    0xbfa172e6, 0xbf9535df, 0xbfa0f66e, 0xbf95376d, 0xbfa03b6d, 0xbf953779,
];
const STEPS_ODE_HEUN: [u32; 6] = [
    0xbfa15cf1, 0xbf9535d3, 0xbfa0c135, 0xbf9536a0, 0xbf9fdb2c, 0xbf953432,
];
const STEPS_ODE_RK4: [u32; 6] = [
    0xbfa15e4c, 0xbf9535e4, 0xbfa0c451, 0xbf9536e0, 0xbf9fe072, 0xbf9534dc,
];
const STEPS_DDIM: [u32; 6] = [
    0xbfa15de4, 0xbf9535fb, 0xbfa0c2fc, 0xbf953727, 0xbf9fdd10, 0xbf95358e,
];
const STEPS_DPM2: [u32; 6] = [
    0xbfa15de6, 0xbf9535f9, 0xbfa0c392, 0xbf953708, 0xbf9fdef5, 0xbf95352a,
];
const STEPS_ALD: [u32; 6] = [
    0xc010b431, 0xbf781488, 0x401d6ba1, 0x3e5f5cda, 0x3fabd83d, 0xbdffa771,
];
const STEPS_ULA: [u32; 6] = [
    0x3e4127be, 0xbe147ef1, 0x3ec99958, 0xbeea83ee, 0x3ec2811a, 0xbeb67ba3,
];
const STEPS_UNDERDAMPED: [u32; 6] = [
    0x3e894711, 0xbef67f11, 0x3ea0bba6, 0xbec63f49, 0x3ebbbfe2, 0xbe76169e,
];
const NETWORK_F32: [u32; 6] = [
    0x3f5c4c6d, 0xbe9b484d, 0x3e5eeb3f, 0x3d8a0068, 0xc0012236, 0x3d133320,
];
const NETWORK_INT8: [u32; 6] = [
    0xbe2cb1d4, 0x409bfccd, 0x3f60eb3e, 0x40c94c3b, 0xc0a78bfd, 0xc0980432,
];
