//! The int8 requantization against a real TFLite interpreter: LiteRT (`ai-edge-litert` from
//! PyPI, in the virtual environment `cargo xtask setup` makes) runs one FULLY_CONNECTED int8
//! layer built from a `.tsm` layer's weights, scales and biases (`tinyscore_host::tflite`),
//! and its int8 outputs are compared with the project's requantization of the same sums.

use std::path::PathBuf;
use std::process::Command;
use tinyscore::model::quant::{requantize_parsed, requantize_with, rounding_doubling_high_mul};
use tinyscore::model::{QuantParams, Rounding};
use tinyscore_host::quantize::QuantizedLayer;

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

/// The layer's int8 outputs for `rows`, as the project's evaluator requantizes its sums.
fn project_outputs(
    layer: &QuantizedLayer,
    input: QuantParams,
    rows: &[i8],
    rounding: Rounding,
) -> Vec<i8> {
    let activation = layer.activation.as_ref().unwrap();
    let outputs = layer.bias.len();
    let width = layer.weights.len() / outputs;
    rows.chunks_exact(width)
        .flat_map(|row| {
            (0..outputs).map(move |o| {
                let weights = &layer.weights[o * width..(o + 1) * width];
                let acc = weights
                    .iter()
                    .zip(row)
                    .fold(layer.bias[o], |acc, (&w, &q)| {
                        acc + w as i32 * (q as i32 - input.zero_point)
                    });
                let (multiplier, shift) = (activation.multiplier[o], activation.shift[o] as i32);
                let level = requantize_with(rounding, acc, multiplier, shift);
                (level + activation.pre.zero_point).clamp(-128, 127) as i8
            })
        })
        .collect()
}

/// LiteRT's outputs of `layer` for `rows` with its `kernels` (`reference` or `optimized`).
fn litert_outputs(
    layer: &QuantizedLayer,
    input: QuantParams,
    rows: &[i8],
    kernels: &str,
) -> Vec<i8> {
    const BATCH: usize = 1000;
    let width = layer.weights.len() / layer.bias.len();
    assert_eq!(rows.len() % (BATCH * width), 0);
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("layer.tflite");
    std::fs::write(
        &model,
        tinyscore_host::tflite::fully_connected(layer, input, BATCH).unwrap(),
    )
    .unwrap();
    let (inputs, outputs) = (dir.path().join("in.i8"), dir.path().join("out.i8"));
    std::fs::write(&inputs, rows.iter().map(|&q| q as u8).collect::<Vec<_>>()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/litert_layer.py");
    let run = Command::new(python())
        .arg(&script)
        .args([&model, &inputs, &outputs])
        .arg(kernels)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "LiteRT failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::read(&outputs)
        .unwrap()
        .into_iter()
        .map(|b| b as i8)
        .collect()
}

#[test]
fn litert_reference_kernels_give_the_single_rounding_bits() {
    let (network, _) = tinyscore_tests::reference_int8_rounding(Rounding::Single);
    let mut input = network.input;
    let mut checked = 0;
    for (index, layer) in network.layers.iter().enumerate() {
        let Some(activation) = &layer.activation else {
            break;
        };
        let width = layer.weights.len() / layer.bias.len();
        let rows = input_rows(width, 50_000, input.zero_point, index as u64);
        let want = project_outputs(layer, input, &rows, Rounding::Single);
        let got = litert_outputs(layer, input, &rows, "reference");
        let mismatches = want.iter().zip(&got).filter(|(a, b)| a != b).count();
        assert_eq!(got.len(), want.len());
        assert_eq!(
            mismatches,
            0,
            "layer {index}: {mismatches} of {} outputs differ",
            want.len()
        );
        checked += rows.len() / width;
        input = activation.post;
    }
    assert!(checked >= 100_000);
}

#[test]
fn litert_optimized_kernels_differ_from_double_rounding_only_at_negative_ties() {
    // LiteRT's optimized FULLY_CONNECTED on x86-64 (its builtin resolver without the default
    // XNNPACK delegate) requantizes with gemmlowp's SaturatingRoundingDoublingHighMul, as
    // the double rounding does, but then shifts right rounding ties up, `(x + 2^(e−1)) >>
    // e`, where RoundingDivideByPOT rounds them away from zero. So the two agree everywhere
    // but where the high product x is negative and exactly halfway: there LiteRT is one level
    // higher.
    let (network, _) = tinyscore_tests::reference_int8_rounding(Rounding::Double);
    let layer = &network.layers[1];
    let input = network.layers[0].activation.as_ref().unwrap().post;
    let activation = layer.activation.as_ref().unwrap();
    let (outputs, width) = (layer.bias.len(), layer.weights.len() / layer.bias.len());
    let rows = input_rows(width, 100_000, input.zero_point, 7);
    let got = litert_outputs(layer, input, &rows, "optimized");
    let want = project_outputs(layer, input, &rows, Rounding::Double);
    let (mut ties, mut differ) = (0, 0);
    for (r, row) in rows.chunks_exact(width).enumerate() {
        for o in 0..outputs {
            let k = r * outputs + o;
            let (acc, multiplier) = (sum(layer, input, row, o), activation.multiplier[o]);
            let e = -(activation.shift[o] as i32);
            let high = rounding_doubling_high_mul(acc, multiplier);
            let negative_tie = e >= 1 && high < 0 && high & ((1 << e) - 1) == 1 << (e - 1);
            let double = requantize_parsed(acc, multiplier, -e) + activation.pre.zero_point;
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

/// The int32 sum of output `o` of `layer` for one input row.
fn sum(layer: &QuantizedLayer, input: QuantParams, row: &[i8], o: usize) -> i32 {
    let width = row.len();
    let weights = &layer.weights[o * width..(o + 1) * width];
    weights
        .iter()
        .zip(row)
        .fold(layer.bias[o], |acc, (&w, &q)| {
            acc + w as i32 * (q as i32 - input.zero_point)
        })
}
