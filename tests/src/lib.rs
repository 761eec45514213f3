//! Helpers shared by the cross-crate tests.

use std::path::PathBuf;
use tinyscore_host::data::{Dataset, MOONS_MEAN, MOONS_STD};
use tinyscore_host::model_file::{import_safetensors_file, Network};
use tinyscore_host::points::Points;
use tinyscore_host::quantize::{diffused_inputs, quantize, ActivationWidth, QuantizedNetwork};

/// The shared reference vectors, `../shared/reference/` beside the checkout.
pub fn reference_file(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: the tests need ../shared/reference/ beside the checkout",
        path.display()
    );
    path
}

/// A reference JSON file, parsed.
pub fn reference_json(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(reference_file(name)).expect("reference file is readable");
    serde_json::from_str(&text).expect("reference file is valid JSON")
}

/// A JSON array of pairs as `[f64; 2]` rows.
pub fn pairs(value: &serde_json::Value) -> Vec<[f64; 2]> {
    value
        .as_array()
        .expect("an array of pairs")
        .iter()
        .map(|p| {
            [
                p[0].as_f64().expect("a number"),
                p[1].as_f64().expect("a number"),
            ]
        })
        .collect()
}

/// The PyTorch reference model (`moons_ref.safetensors`) as a `.tsm` (f32), sampling to
/// t = 1e-3.
pub fn reference_model_bytes() -> Vec<u8> {
    reference_network()
        .to_bytes()
        .expect("the reference model writes")
}

/// The PyTorch reference model as a float network.
pub fn reference_network() -> Network {
    import_safetensors_file(&reference_file("moons_ref.safetensors"), 1e-3)
        .expect("the reference model imports")
}

/// `n` two-moons points in the reference model's data units (its metadata's mean and std
/// undo the standardisation of the `moons` dataset).
pub fn raw_moons(n: usize, seed: u64) -> Points {
    let mut points = Dataset::Moons.sample(n, seed);
    for row in points.values.chunks_exact_mut(2) {
        for d in 0..2 {
            row[d] = MOONS_MEAN[d] + MOONS_STD[d] * row[d];
        }
    }
    points
}

/// Calibration points used to quantize the reference model (the `quantize` command's
/// default).
pub const CALIBRATION_POINTS: usize = 16384;

/// The reference model quantized to int8 with [`CALIBRATION_POINTS`] diffused two-moons
/// points (seed 0), and its bytes.
pub fn reference_int8() -> (QuantizedNetwork, Vec<u8>) {
    reference_int8_rounding(tinyscore::model::Rounding::Double)
}

/// [`reference_int8`] with the requantization's `rounding`.
pub fn reference_int8_rounding(
    rounding: tinyscore::model::Rounding,
) -> (QuantizedNetwork, Vec<u8>) {
    reference_quantized(ActivationWidth::Int8, rounding)
}

/// The reference model quantized as [`reference_int8`] is, with int16 activations (precision
/// 3, int16x8).
pub fn reference_int16x8() -> (QuantizedNetwork, Vec<u8>) {
    reference_quantized(ActivationWidth::Int16, tinyscore::model::Rounding::Double)
}

/// The reference model quantized with activations of `width` and the requantization's
/// `rounding`.
pub fn reference_quantized(
    width: ActivationWidth,
    rounding: tinyscore::model::Rounding,
) -> (QuantizedNetwork, Vec<u8>) {
    let network = reference_network();
    let calibration = diffused_inputs(
        &network,
        &raw_moons(CALIBRATION_POINTS, 0),
        CALIBRATION_POINTS,
        0,
    )
    .expect("calibration inputs");
    let (quantized, _) = quantize(
        &network,
        &calibration,
        width,
        rounding,
        &tinyscore_host::progress::Progress::silent(),
    )
    .expect("the reference model quantizes");
    let bytes = quantized.to_bytes().expect("the int8 model writes");
    (quantized, bytes)
}

/// `bytes` with `value` written at `offset` and the CRC-32 trailer recomputed, so that only
/// the parser's own checks stand between a corruption and a wrong model.
pub fn with_field(bytes: &[u8], offset: usize, value: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[offset..offset + value.len()].copy_from_slice(value);
    let end = b.len() - 4;
    let checksum = tinyscore::model::crc32(&b[..end]);
    b[end..].copy_from_slice(&checksum.to_le_bytes());
    b
}

/// A small int8 model of 3-D data (a noisy helix), trained for a few hundred steps (the last
/// third quantization-aware) and quantized: a model of another dimension than the reference's, and with `train`'s default
/// residual output ([`tinyscore::model::Output::GaussianResidual`]), for the firmware.
pub fn helix_int8() -> Vec<u8> {
    use tinyscore_host::train::{train, TrainConfig, TrainState, TrainingData};
    let mut noise = tinyscore::particle_noise(11, 0);
    let rows: Vec<[f32; 3]> = (0..4096)
        .map(|i| {
            let t = i as f32 * 0.003;
            [
                t.cos() + 0.05 * noise.sample(),
                t.sin() + 0.05 * noise.sample(),
                0.25 * t + 0.05 * noise.sample(),
            ]
        })
        .collect();
    let points = Points::from_rows(&rows);
    let config = TrainConfig {
        hidden: 32,
        steps: 300,
        qat_steps: 100,
        batch: 256,
        threads: 1,
        ..TrainConfig::default()
    };
    let mut state = TrainState::new(config, &points).expect("a valid configuration");
    let data = TrainingData::new(&state, &points).expect("the data fit");
    let never = std::sync::atomic::AtomicBool::new(false);
    train(&mut state, &data, 0, &never, |_, _| (), |_| Ok(())).expect("training runs");
    let network = state.network().expect("the trained network");
    let calibration = diffused_inputs(&network, &points, 2048, 0).expect("calibration inputs");
    let (quantized, _) = quantize(
        &network,
        &calibration,
        ActivationWidth::Int8,
        tinyscore::model::Rounding::Double,
        &tinyscore_host::progress::Progress::silent(),
    )
    .expect("the model quantizes");
    quantized.to_bytes().expect("the int8 model writes")
}

/// The packed form (precision 2) of the int8 model `int8`, as the firmware build writes it.
pub fn packed(int8: &[u8]) -> Vec<u8> {
    let len = tinyscore::model::packed::packed_len(int8).expect("an int8 model parses");
    let mut out = vec![0u8; len];
    let written = tinyscore::model::packed::pack(int8, &mut out).expect("an int8 model packs");
    assert_eq!(written, len);
    out
}

/// A small random network (2-D data, 3 frequencies, two hidden layers of 12) with trained
/// activation ranges narrow enough that every clamp is met — the input at ±1.5, each
/// pre-activation at [−1, 1.2], each SiLU output at [−0.2, 0.6] — trained for `width`.
pub fn narrow_range_network(width: ActivationWidth) -> Network {
    use tinyscore::model::{Dims, ModelSde, Output, QuantParams};
    let dims = Dims {
        dim: 2,
        fourier: 3,
        hidden: 12,
        layers: 2,
    };
    let mut noise = tinyscore::particle_noise(8, 0);
    let layers = (0..=dims.layers)
        .map(|i| {
            let (inputs, outputs) = dims.layer_shape(i);
            let scale = 1.5 / (inputs as f32).sqrt();
            let weights = (0..inputs * outputs)
                .map(|_| scale * noise.sample())
                .collect();
            let bias = (0..outputs).map(|_| 0.5 * noise.sample()).collect();
            (weights, bias)
        })
        .collect();
    Network {
        dims,
        sde: ModelSde::Vp(tinyscore::VpSde::default()),
        t_end: 1e-3,
        output: Output::GaussianResidual,
        mean: vec![0.0; 2],
        std: vec![1.0; 2],
        fourier: vec![0.3, 1.7, -4.0],
        layers,
        activations: vec![
            QuantParams::covering(-1.5, 1.5),
            QuantParams::covering(-1.0, 1.2),
            QuantParams::covering(-0.2, 0.6),
            QuantParams::covering(-1.0, 1.2),
            QuantParams::covering(-0.2, 0.6),
        ],
        activation_width: width,
    }
}
