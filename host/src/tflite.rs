//! TFLite flatbuffers of the int8 network's layers, so that a real TFLite interpreter can run
//! the arithmetic of the project's evaluator (`tests/tests/litert.rs` compares the two).
//!
//! The file is written with the FlatBuffers builder from the fields of TFLite's `schema.fbs`
//! (field `i` of a table sits in vtable slot `4 + 2i`); only the tables and fields a fully
//! connected int8 layer needs are written, the others keep their defaults.

use crate::quantize::QuantizedLayer;
use anyhow::{ensure, Context, Result};
use flatbuffers::{FlatBufferBuilder, TableFinishedWIPOffset, WIPOffset};
use tinyscore::model::QuantParams;

/// `schema.fbs`'s `BuiltinOperator.FULLY_CONNECTED`.
const FULLY_CONNECTED: i32 = 9;
/// The FULLY_CONNECTED version that takes int8 weights quantized per channel.
const FULLY_CONNECTED_VERSION: i32 = 12;
/// `BuiltinOptions.FullyConnectedOptions`.
const FULLY_CONNECTED_OPTIONS: u8 = 8;
/// `TensorType.INT32`.
const INT32: i8 = 2;
/// `TensorType.INT8`.
const INT8: i8 = 9;

type Table = WIPOffset<TableFinishedWIPOffset>;

/// The vtable slot of field `id` of a table.
const fn slot(id: u16) -> u16 {
    4 + 2 * id
}

/// A tensor: its shape, element type, buffer, name and quantization (one scale and zero
/// point, or one per channel along dimension 0).
struct TensorSpec<'a> {
    shape: &'a [i32],
    kind: i8,
    buffer: u32,
    name: &'a str,
    scales: &'a [f32],
    zero_points: &'a [i64],
}

fn tensor(b: &mut FlatBufferBuilder<'_>, t: &TensorSpec<'_>) -> Table {
    let scale = b.create_vector(t.scales);
    let zero_point = b.create_vector(t.zero_points);
    let quantization = b.start_table();
    b.push_slot_always(slot(2), scale);
    b.push_slot_always(slot(3), zero_point);
    let quantization = b.end_table(quantization);
    let shape = b.create_vector(t.shape);
    let name = b.create_string(t.name);
    let table = b.start_table();
    b.push_slot_always(slot(0), shape);
    b.push_slot::<i8>(slot(1), t.kind, 0);
    b.push_slot::<u32>(slot(2), t.buffer, 0);
    b.push_slot_always(slot(3), name);
    b.push_slot_always(slot(4), quantization);
    b.end_table(table)
}

fn buffer(b: &mut FlatBufferBuilder<'_>, data: &[u8]) -> Table {
    let data = (!data.is_empty()).then(|| b.create_vector(data));
    let table = b.start_table();
    if let Some(data) = data {
        b.push_slot_always(slot(0), data);
    }
    b.end_table(table)
}

/// Hidden layer `layer` of an int8 network as a one-operator TFLite model: an int8 input
/// `[batch, inputs]` in the quantization `input`, the layer's int8 weights (per output
/// channel) and int32 biases, and an int8 output `[batch, outputs]` in the layer's
/// pre-activation quantization: the requantized sums, before the SiLU table.
pub fn fully_connected(
    layer: &QuantizedLayer,
    input: QuantParams,
    batch: usize,
) -> Result<Vec<u8>> {
    let activation = layer
        .activation
        .as_ref()
        .context("the output layer has no int8 output to compare")?;
    let outputs = layer.bias.len();
    ensure!(
        outputs > 0 && layer.weights.len().is_multiple_of(outputs),
        "a layer's weights are outputs × inputs"
    );
    let inputs = layer.weights.len() / outputs;
    let (batch, inputs_i32, outputs_i32) = (
        i32::try_from(batch)?,
        i32::try_from(inputs)?,
        i32::try_from(outputs)?,
    );
    let bias_scales: Vec<f32> = layer
        .weight_scale
        .iter()
        .map(|s| (input.scale as f64 * *s as f64) as f32)
        .collect();
    let zeros = vec![0i64; outputs];
    let weight_bytes: Vec<u8> = layer.weights.iter().map(|&w| w as u8).collect();
    let bias_bytes: Vec<u8> = layer.bias.iter().flat_map(|b| b.to_le_bytes()).collect();

    let mut b = FlatBufferBuilder::new();
    let tensors = [
        tensor(
            &mut b,
            &TensorSpec {
                shape: &[batch, inputs_i32],
                kind: INT8,
                buffer: 0,
                name: "input",
                scales: &[input.scale],
                zero_points: &[input.zero_point as i64],
            },
        ),
        tensor(
            &mut b,
            &TensorSpec {
                shape: &[outputs_i32, inputs_i32],
                kind: INT8,
                buffer: 1,
                name: "weights",
                scales: &layer.weight_scale,
                zero_points: &zeros,
            },
        ),
        tensor(
            &mut b,
            &TensorSpec {
                shape: &[outputs_i32],
                kind: INT32,
                buffer: 2,
                name: "bias",
                scales: &bias_scales,
                zero_points: &zeros,
            },
        ),
        tensor(
            &mut b,
            &TensorSpec {
                shape: &[batch, outputs_i32],
                kind: INT8,
                buffer: 0,
                name: "pre_activation",
                scales: &[activation.pre.scale],
                zero_points: &[activation.pre.zero_point as i64],
            },
        ),
    ];
    let buffers = [
        buffer(&mut b, &[]),
        buffer(&mut b, &weight_bytes),
        buffer(&mut b, &bias_bytes),
    ];
    let options = {
        let table = b.start_table(); // fused activation NONE, default weights format
        b.end_table(table)
    };
    let operator = {
        let inputs = b.create_vector(&[0i32, 1, 2]);
        let outputs = b.create_vector(&[3i32]);
        let table = b.start_table();
        b.push_slot::<u32>(slot(0), 0, 0); // opcode 0
        b.push_slot_always(slot(1), inputs);
        b.push_slot_always(slot(2), outputs);
        b.push_slot::<u8>(slot(3), FULLY_CONNECTED_OPTIONS, 0);
        b.push_slot_always(slot(4), options);
        b.end_table(table)
    };
    let subgraph = {
        let tensors = b.create_vector(&tensors);
        let inputs = b.create_vector(&[0i32]);
        let outputs = b.create_vector(&[3i32]);
        let operators = b.create_vector(&[operator]);
        let name = b.create_string("main");
        let table = b.start_table();
        b.push_slot_always(slot(0), tensors);
        b.push_slot_always(slot(1), inputs);
        b.push_slot_always(slot(2), outputs);
        b.push_slot_always(slot(3), operators);
        b.push_slot_always(slot(4), name);
        b.end_table(table)
    };
    let code = {
        let table = b.start_table();
        b.push_slot::<i8>(slot(0), FULLY_CONNECTED as i8, 0);
        b.push_slot::<i32>(slot(2), FULLY_CONNECTED_VERSION, 1);
        b.push_slot::<i32>(slot(3), FULLY_CONNECTED, 0);
        b.end_table(table)
    };
    let model = {
        let codes = b.create_vector(&[code]);
        let subgraphs = b.create_vector(&[subgraph]);
        let description = b.create_string("tinyscore int8 layer");
        let buffers = b.create_vector(&buffers);
        let table = b.start_table();
        b.push_slot::<u32>(slot(0), 3, 0);
        b.push_slot_always(slot(1), codes);
        b.push_slot_always(slot(2), subgraphs);
        b.push_slot_always(slot(3), description);
        b.push_slot_always(slot(4), buffers);
        b.end_table(table)
    };
    b.finish(model, Some("TFL3"));
    Ok(b.finished_data().to_vec())
}
