//! The int8 network against a real TFLite interpreter: LiteRT (`ai-edge-litert` from PyPI, in
//! the virtual environment `cargo xtask setup` makes) runs TFLite models that
//! `tinyscore_host::tflite` builds from a `.tsm` file, and its outputs are compared with the
//! project's evaluator.

use std::path::{Path, PathBuf};
use std::process::Command;
use tinyscore::model::quant::{requantize_parsed, requantize_with, rounding_doubling_high_mul};
use tinyscore::model::{Int8Layer, Model, Rounding};
use tinyscore_host::model_file::Network;
use tinyscore_tests::reference_int8_rounding;

/// Rows LiteRT takes at once.
const BATCH: usize = 1000;

/// The Python of the virtual environment `cargo xtask setup` makes.
fn python() -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = workspace.join("target/python/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `cargo xtask setup`, which makes the virtual environment with \
         ai-edge-litert",
        python.display()
    );
    python
}

/// Runs the TFLite `model` in LiteRT with its `kernels` (`reference` or `optimized`) on
/// `inputs` (raw bytes of whole batches); returns the raw bytes of its outputs.
fn litert(model: &[u8], inputs: &[u8], kernels: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("model.tflite"), model).unwrap();
    std::fs::write(path("in.bin"), inputs).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/litert_layer.py");
    let run = Command::new(python())
        .arg(script)
        .args([path("model.tflite"), path("in.bin"), path("out.bin")])
        .arg(kernels)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "LiteRT failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::read(path("out.bin")).unwrap()
}

/// Rows of int8 inputs: every extreme (all −128, all 127, alternating, all the zero point),
/// then random levels, some spread over the whole range and some near the zero point.
fn input_rows(width: usize, rows: usize, zero_point: i32, seed: u64) -> Vec<i8> {
    let mut rng = tinyscore::particle_rng(seed, 0);
    let mut next = || rand_core::Rng::next_u32(&mut rng);
    let mut out = Vec::with_capacity(width * rows);
    let z = zero_point as i8;
    for extreme in [[-128i8, -128], [127, 127], [-128, 127], [127, -128], [z, z]] {
        out.extend((0..width).map(|j| extreme[j % 2]));
    }
    while out.len() < width * rows {
        let narrow = next() % 2 == 0;
        out.extend((0..width).map(|_| {
            let r = next();
            if narrow {
                (zero_point + (r % 17) as i32 - 8).clamp(-128, 127) as i8
            } else {
                r as i8
            }
        }));
    }
    out.truncate(width * rows);
    out
}

/// The int32 sum of output `o` of `layer` for one input row, as the int8 network forms it.
fn sum(layer: &Int8Layer<'_>, row: &[i8], o: usize) -> i32 {
    let zero_point = layer.input().zero_point;
    row.iter().enumerate().fold(layer.bias(o), |acc, (j, &q)| {
        acc + layer.weight(o, j) as i32 * (q as i32 - zero_point)
    })
}

/// The pre-activation levels of hidden `layer` for `rows`, as the project's evaluator
/// requantizes its sums with `rounding`.
fn project_levels(layer: &Int8Layer<'_>, rows: &[i8], rounding: Rounding) -> Vec<i8> {
    let (pre, _) = layer.activation().unwrap();
    rows.chunks_exact(layer.inputs())
        .flat_map(|row| {
            (0..layer.outputs()).map(move |o| {
                let (multiplier, shift) = layer.requantization(o).unwrap();
                let level = requantize_with(rounding, sum(layer, row, o), multiplier, shift);
                (level + pre.zero_point).clamp(-128, 127) as i8
            })
        })
        .collect()
}

/// LiteRT's pre-activation levels of hidden layer `index` of `model` for `rows`.
fn litert_levels(model: &Model<'_>, index: usize, rows: &[i8], kernels: &str) -> Vec<i8> {
    let tflite = tinyscore_host::tflite::hidden_layer(model, index, BATCH).unwrap();
    let bytes: Vec<u8> = rows.iter().map(|&q| q as u8).collect();
    litert(&tflite, &bytes, kernels)
        .into_iter()
        .map(|b| b as i8)
        .collect()
}

#[test]
fn litert_reference_kernels_give_the_single_rounding_bits() {
    let bytes = reference_int8_rounding(Rounding::Single).1;
    let model = Model::parse(&bytes).unwrap();
    let mut rows_checked = 0;
    for index in 0..model.header().dims.layers as usize {
        let layer = model.int8_layer(index as u32).unwrap();
        let rows = input_rows(
            layer.inputs(),
            50_000,
            layer.input().zero_point,
            index as u64,
        );
        let want = project_levels(&layer, &rows, Rounding::Single);
        let got = litert_levels(&model, index, &rows, "reference");
        assert_eq!(got.len(), want.len());
        let mismatches = want.iter().zip(&got).filter(|(a, b)| a != b).count();
        assert_eq!(
            mismatches,
            0,
            "layer {index}: {mismatches} of {} outputs differ",
            want.len()
        );
        rows_checked += rows.len() / layer.inputs();
    }
    assert!(rows_checked >= 100_000);
}

#[test]
fn litert_optimized_kernels_differ_from_double_rounding_only_at_negative_ties() {
    // LiteRT's optimized FULLY_CONNECTED on x86-64 (its builtin resolver without the default
    // XNNPACK delegate) requantizes with gemmlowp's SaturatingRoundingDoublingHighMul, as
    // the double rounding does, but then shifts right rounding ties up, `(x + 2^(e−1)) >>
    // e`, where RoundingDivideByPOT rounds them away from zero. So the two agree everywhere
    // but where the high product x is negative and exactly halfway: there LiteRT is one level
    // higher.
    let bytes = reference_int8_rounding(Rounding::Double).1;
    let model = Model::parse(&bytes).unwrap();
    let layer = model.int8_layer(1).unwrap();
    let (pre, _) = layer.activation().unwrap();
    let rows = input_rows(layer.inputs(), 100_000, layer.input().zero_point, 7);
    let got = litert_levels(&model, 1, &rows, "optimized");
    let want = project_levels(&layer, &rows, Rounding::Double);
    let (mut ties, mut differ) = (0, 0);
    for (r, row) in rows.chunks_exact(layer.inputs()).enumerate() {
        for o in 0..layer.outputs() {
            let k = r * layer.outputs() + o;
            let (acc, (multiplier, shift)) =
                (sum(&layer, row, o), layer.requantization(o).unwrap());
            let e = -shift;
            let high = rounding_doubling_high_mul(acc, multiplier);
            let negative_tie = e >= 1 && high < 0 && high & ((1 << e) - 1) == 1 << (e - 1);
            let double = requantize_parsed(acc, multiplier, shift) + pre.zero_point;
            let expected = (double + negative_tie as i32).clamp(-128, 127) as i8;
            assert_eq!(
                got[k], expected,
                "row {r}, output {o} (negative tie: {negative_tie})"
            );
            ties += negative_tie as usize;
            differ += (got[k] != want[k]) as usize;
        }
    }
    println!(
        "optimized kernels against double rounding: {} outputs, {ties} negative ties, {differ} \
         outputs one level apart there, none elsewhere",
        want.len()
    );
    assert!(differ > 0, "the inputs reach the ties the rule is about");
}

/// The f32 network's input features of one point (coordinates, sines, cosines), as the
/// int8 network quantizes them.
#[derive(Default)]
struct Features(Vec<f32>);

impl tinyscore::model::LayerObserver for Features {
    fn input(&mut self, feature: usize, values: &[f32]) {
        if self.0.len() <= feature {
            self.0.resize(feature + 1, 0.0);
        }
        self.0[feature] = values[0];
    }
}

/// The whole network as `tinyscore export --format tflite` writes it from the quantized
/// reference model `quantized` (made from the f32 `network`), run in LiteRT's reference
/// kernels on 10 000 diffused moons points: the relative RMS of ε̂ of LiteRT against the
/// project's quantized model, of that model against f32, and of LiteRT against f32.
fn exported_network_errors(network: &Network, quantized: &[u8]) -> [f64; 3] {
    let float_bytes = tinyscore_tests::reference_model_bytes();
    let (float, model) = (
        Model::parse(&float_bytes).unwrap(),
        Model::parse(quantized).unwrap(),
    );
    let points = tinyscore_host::quantize::diffused_inputs(
        network,
        &tinyscore_tests::raw_moons(10_000, 5),
        10_000,
        5,
    )
    .unwrap();
    let mut features = Vec::new();
    let (mut eps_float, mut eps_model) = (Vec::new(), Vec::new());
    for (x, t) in &points {
        let mut observed = Features::default();
        let mut out = [0.0f32; 2];
        float
            .predict_noise_observed(x, *t, &mut out, &mut observed)
            .unwrap();
        eps_float.extend(out);
        model.predict_noise(x, *t, &mut out).unwrap();
        eps_model.extend(out);
        features.extend(observed.0.iter().flat_map(|v| v.to_le_bytes()));
    }
    let output = tinyscore_host::tflite::output_quantization(&model).unwrap();
    let tflite = tinyscore_host::tflite::network(&model, output, BATCH).unwrap();
    let raw: Vec<f32> = litert(&tflite, &features, "reference")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(raw.len(), eps_model.len());
    let mut eps_litert = Vec::with_capacity(raw.len());
    for ((x, t), r) in points.iter().zip(raw.chunks_exact(2)) {
        let gain = model.header().gaussian_gain(*t).unwrap_or(0.0);
        eps_litert.extend([r[0] + gain * x[0], r[1] + gain * x[1]]);
    }
    let rms = |a: &[f32], b: &[f32]| {
        let s: f64 = a
            .iter()
            .zip(b)
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum();
        (s / a.len() as f64).sqrt()
    };
    let scale = rms(&eps_float, &vec![0.0; eps_float.len()]);
    let errors = [
        rms(&eps_litert, &eps_model) / scale,
        rms(&eps_model, &eps_float) / scale,
        rms(&eps_litert, &eps_float) / scale,
    ];
    println!(
        "ε̂ relative RMS: LiteRT vs the quantized model {:.3} %, that model vs f32 {:.3} %, \
         LiteRT vs f32 {:.3} % (output step {:.3e})",
        100.0 * errors[0],
        100.0 * errors[1],
        100.0 * errors[2],
        output.scale
    );
    errors
}

#[test]
fn the_exported_network_runs_in_litert_close_to_the_projects_int8() {
    // What differs: TFLite's SiLU is LOGISTIC then MUL (the project's table rounds SiLU
    // once), the output is rounded to an int8 level (the project dequantizes the sum), and
    // the double rounding's negative ties. The int8 model's own distance to the f32 model is
    // the scale to judge it by.
    let (network, bytes) = reference_int8_rounding(Rounding::Double);
    let [litert_vs_int8, int8_vs_float, _] = exported_network_errors(&network.float, &bytes);
    assert!(
        litert_vs_int8 < int8_vs_float,
        "{litert_vs_int8} vs {int8_vs_float}"
    );
}

#[test]
fn the_exported_int16x8_network_runs_in_litert_close_to_the_projects() {
    // TFLite's 16×8 mode (int16 activations, int64 biases): LOGISTIC and MUL in int16, an
    // int16 output level. Both roundings' steps are 256 times finer than int8's, so LiteRT
    // must follow the project's int16x8 model far more closely than the int8 export follows
    // the int8 model; a tenth of the int8 model's distance to f32 bounds it.
    let (network, bytes) = tinyscore_tests::reference_int16x8();
    let int8 = reference_int8_rounding(Rounding::Double).1;
    let [litert_vs_int16, int16_vs_float, _] = exported_network_errors(&network.float, &bytes);
    let [_, int8_vs_float, _] = exported_network_errors(&network.float, &int8);
    assert!(
        litert_vs_int16 < int8_vs_float / 10.0,
        "LiteRT is {litert_vs_int16} from the int16x8 model; int8 is {int8_vs_float} from f32"
    );
    assert!(int16_vs_float < int8_vs_float);
}
