//! TFLite flatbuffers of an int8 model: one hidden layer alone ([`hidden_layer`], which
//! `tests/tests/litert.rs` runs in LiteRT against the project's requantization) or the whole
//! network ([`network`], `tinyscore export --format tflite`, for TFLite Micro).
//!
//! The file is written with the FlatBuffers builder from the fields of TFLite's `schema.fbs`
//! (field `i` of a table sits in vtable slot `4 + 2i`); only the tables and fields these
//! models need are written, the others keep their defaults.

use anyhow::{ensure, Context, Result};
use flatbuffers::{FlatBufferBuilder, TableFinishedWIPOffset, WIPOffset};
use tinyscore::model::{Int8Layer, Model, Precision, QuantParams};

/// `schema.fbs`'s `BuiltinOperator` codes, with the versions these models need.
const DEQUANTIZE: (i32, i32) = (6, 2);
const FULLY_CONNECTED: (i32, i32) = (9, 12); // int8 weights quantized per channel
const LOGISTIC: (i32, i32) = (14, 2);
const MUL: (i32, i32) = (18, 2);
const QUANTIZE: (i32, i32) = (114, 2);
/// `BuiltinOptions.FullyConnectedOptions`.
const FULLY_CONNECTED_OPTIONS: u8 = 8;
/// `TensorType` codes.
const FLOAT32: i8 = 0;
const INT32: i8 = 2;
const INT8: i8 = 9;
/// TFLite's fixed quantization of an int8 LOGISTIC output: scale 1/256, zero point −128.
const LOGISTIC_OUTPUT: QuantParams = QuantParams {
    scale: 1.0 / 256.0,
    zero_point: -128,
};

type Table = WIPOffset<TableFinishedWIPOffset>;

/// The vtable slot of field `id` of a table.
const fn slot(id: u16) -> u16 {
    4 + 2 * id
}

/// A model under construction: its tensors, constant buffers, operators and operator codes.
struct Builder<'b> {
    fb: FlatBufferBuilder<'b>,
    tensors: Vec<Table>,
    buffers: Vec<Table>,
    operators: Vec<Table>,
    codes: Vec<(i32, i32)>,
}

impl Builder<'_> {
    fn new() -> Self {
        let mut builder = Builder {
            fb: FlatBufferBuilder::new(),
            tensors: Vec::new(),
            buffers: Vec::new(),
            operators: Vec::new(),
            codes: Vec::new(),
        };
        builder.buffer(&[]); // buffer 0: the empty buffer of every tensor without data
        builder
    }

    fn buffer(&mut self, data: &[u8]) -> u32 {
        let data = (!data.is_empty()).then(|| self.fb.create_vector(data));
        let table = self.fb.start_table();
        if let Some(data) = data {
            self.fb.push_slot_always(slot(0), data);
        }
        self.buffers.push(self.fb.end_table(table));
        self.buffers.len() as u32 - 1
    }

    /// A tensor of `shape` and element type `kind` with the constant `data` (none if empty)
    /// and, for a quantized one, its scales and zero points (one, or one per channel along
    /// dimension 0). Returns its index.
    fn tensor(
        &mut self,
        name: &str,
        shape: &[i32],
        kind: i8,
        data: &[u8],
        quantization: Option<(&[f32], &[i64])>,
    ) -> i32 {
        let buffer = if data.is_empty() {
            0
        } else {
            self.buffer(data)
        };
        let quantization = quantization.map(|(scales, zero_points)| {
            let scale = self.fb.create_vector(scales);
            let zero_point = self.fb.create_vector(zero_points);
            let table = self.fb.start_table();
            self.fb.push_slot_always(slot(2), scale);
            self.fb.push_slot_always(slot(3), zero_point);
            self.fb.end_table(table)
        });
        let shape = self.fb.create_vector(shape);
        let name = self.fb.create_string(name);
        let table = self.fb.start_table();
        self.fb.push_slot_always(slot(0), shape);
        self.fb.push_slot::<i8>(slot(1), kind, 0);
        self.fb.push_slot::<u32>(slot(2), buffer, 0);
        self.fb.push_slot_always(slot(3), name);
        if let Some(quantization) = quantization {
            self.fb.push_slot_always(slot(4), quantization);
        }
        self.tensors.push(self.fb.end_table(table));
        self.tensors.len() as i32 - 1
    }

    /// An int8 activation tensor `[batch, width]` in `q`.
    fn activation(&mut self, name: &str, batch: i32, width: usize, q: QuantParams) -> Result<i32> {
        let shape = [batch, i32::try_from(width)?];
        let quantization = (&[q.scale][..], &[q.zero_point as i64][..]);
        Ok(self.tensor(name, &shape, INT8, &[], Some(quantization)))
    }

    fn operator(&mut self, (code, version): (i32, i32), inputs: &[i32], outputs: &[i32]) {
        let index = match self.codes.iter().position(|&c| c == (code, version)) {
            Some(i) => i,
            None => {
                self.codes.push((code, version));
                self.codes.len() - 1
            }
        };
        let options = (code == FULLY_CONNECTED.0).then(|| {
            let table = self.fb.start_table(); // no fused activation, default weights format
            self.fb.end_table(table)
        });
        let inputs = self.fb.create_vector(inputs);
        let outputs = self.fb.create_vector(outputs);
        let table = self.fb.start_table();
        self.fb.push_slot::<u32>(slot(0), index as u32, 0);
        self.fb.push_slot_always(slot(1), inputs);
        self.fb.push_slot_always(slot(2), outputs);
        if let Some(options) = options {
            self.fb.push_slot::<u8>(slot(3), FULLY_CONNECTED_OPTIONS, 0);
            self.fb.push_slot_always(slot(4), options);
        }
        self.operators.push(self.fb.end_table(table));
    }

    /// A FULLY_CONNECTED operator with `layer`'s weights and biases from the int8 tensor
    /// `input` (in `layer.input()`) to a new int8 tensor in `output`; returns it.
    fn dense(
        &mut self,
        name: &str,
        layer: &Int8Layer<'_>,
        input: i32,
        batch: i32,
        output: QuantParams,
    ) -> Result<i32> {
        let (inputs, outputs) = (layer.inputs(), layer.outputs());
        let weights: Vec<u8> = (0..outputs)
            .flat_map(|o| (0..inputs).map(move |j| layer.weight(o, j) as u8))
            .collect();
        let bias: Vec<u8> = (0..outputs)
            .flat_map(|o| layer.bias(o).to_le_bytes())
            .collect();
        let weight_scales: Vec<f32> = (0..outputs).map(|o| layer.weight_scale(o)).collect();
        let bias_scales: Vec<f32> = weight_scales
            .iter()
            .map(|s| (layer.input().scale as f64 * *s as f64) as f32)
            .collect();
        let zeros = vec![0i64; outputs];
        let shape = [i32::try_from(outputs)?, i32::try_from(inputs)?];
        let w = self.tensor(
            &format!("{name}/weights"),
            &shape,
            INT8,
            &weights,
            Some((&weight_scales, &zeros)),
        );
        let b = self.tensor(
            &format!("{name}/bias"),
            &shape[..1],
            INT32,
            &bias,
            Some((&bias_scales, &zeros)),
        );
        let out = self.activation(name, batch, outputs, output)?;
        self.operator(FULLY_CONNECTED, &[input, w, b], &[out]);
        Ok(out)
    }

    fn finish(mut self, inputs: &[i32], outputs: &[i32]) -> Vec<u8> {
        let fb = &mut self.fb;
        let tensors = fb.create_vector(&self.tensors);
        let (sub_inputs, sub_outputs) = (fb.create_vector(inputs), fb.create_vector(outputs));
        let operators = fb.create_vector(&self.operators);
        let name = fb.create_string("main");
        let table = fb.start_table();
        fb.push_slot_always(slot(0), tensors);
        fb.push_slot_always(slot(1), sub_inputs);
        fb.push_slot_always(slot(2), sub_outputs);
        fb.push_slot_always(slot(3), operators);
        fb.push_slot_always(slot(4), name);
        let subgraph = fb.end_table(table);
        let codes: Vec<Table> = self
            .codes
            .iter()
            .map(|&(code, version)| {
                let table = fb.start_table();
                // The deprecated byte field holds codes below 127 too, as TFLite writes them.
                fb.push_slot::<i8>(slot(0), code.min(127) as i8, 0);
                fb.push_slot::<i32>(slot(2), version, 1);
                fb.push_slot::<i32>(slot(3), code, 0);
                fb.end_table(table)
            })
            .collect();
        let codes = fb.create_vector(&codes);
        let subgraphs = fb.create_vector(&[subgraph]);
        let description = fb.create_string("tinyscore");
        let buffers = fb.create_vector(&self.buffers);
        let table = fb.start_table();
        fb.push_slot::<u32>(slot(0), 3, 0);
        fb.push_slot_always(slot(1), codes);
        fb.push_slot_always(slot(2), subgraphs);
        fb.push_slot_always(slot(3), description);
        fb.push_slot_always(slot(4), buffers);
        let model = fb.end_table(table);
        fb.finish(model, Some("TFL3"));
        fb.finished_data().to_vec()
    }
}

/// The int8 layers of `model` (a precision-1 file).
fn int8_layers<'a>(model: &Model<'a>) -> Result<Vec<Int8Layer<'a>>> {
    ensure!(
        model.header().precision == Precision::Int8,
        "TFLite export takes an int8 model (made by `tinyscore quantize`), not {}",
        match model.header().precision {
            Precision::F32 => "an f32 one",
            Precision::Int16x8 => "an int16x8 one (int16 activations: quantize --activations int8)",
            _ => "an int8 packed one",
        }
    );
    (0..=model.header().dims.layers)
        .map(|i| model.int8_layer(i).context("an int8 layer"))
        .collect()
}

/// Hidden layer `index` of the int8 `model` as a one-operator model: an int8 input `[batch,
/// inputs]` in the layer's input quantization, the layer's weights (per output channel) and
/// int32 biases, and an int8 output in its pre-activation quantization: the requantized sums,
/// before the SiLU table.
pub fn hidden_layer(model: &Model<'_>, index: usize, batch: usize) -> Result<Vec<u8>> {
    let layers = int8_layers(model)?;
    let layer = layers
        .get(index)
        .filter(|l| l.activation().is_some())
        .with_context(|| format!("layer {index} is no hidden layer"))?;
    let (pre, _) = layer.activation().context("a hidden layer")?;
    let batch = i32::try_from(batch)?;
    let mut builder = Builder::new();
    let input = builder.activation("input", batch, layer.inputs(), layer.input())?;
    let output = builder.dense("pre_activation", layer, input, batch, pre)?;
    Ok(builder.finish(&[input], &[output]))
}

/// The whole int8 network of `model` for TFLite Micro: f32 features `[batch, inputs]` (the
/// normalised coordinates, then `sin`, then `cos` of the time features) → QUANTIZE → per
/// hidden layer FULLY_CONNECTED to the pre-activation tensor, LOGISTIC, and MUL of the two
/// into the post-activation tensor (SiLU) → FULLY_CONNECTED to an int8 output in `output`
/// → DEQUANTIZE to f32 `[batch, dim]`: the network's output before the Gaussian part of ε̂.
pub fn network(model: &Model<'_>, output: QuantParams, batch: usize) -> Result<Vec<u8>> {
    let layers = int8_layers(model)?;
    let first = layers.first().context("a network has layers")?;
    let batch = i32::try_from(batch)?;
    let width = i32::try_from(first.inputs())?;
    let mut builder = Builder::new();
    let features = builder.tensor("features", &[batch, width], FLOAT32, &[], None);
    let mut x = builder.activation("features/int8", batch, first.inputs(), first.input())?;
    builder.operator(QUANTIZE, &[features], &[x]);
    for (i, layer) in layers.iter().enumerate() {
        let name = format!("layer{i}");
        match layer.activation() {
            Some((pre, post)) => {
                let z = builder.dense(&format!("{name}/pre"), layer, x, batch, pre)?;
                let s = builder.activation(
                    &format!("{name}/sigmoid"),
                    batch,
                    layer.outputs(),
                    LOGISTIC_OUTPUT,
                )?;
                builder.operator(LOGISTIC, &[z], &[s]);
                x = builder.activation(&format!("{name}/silu"), batch, layer.outputs(), post)?;
                builder.operator(MUL, &[z, s], &[x]);
            }
            None => {
                let q = builder.dense(&format!("{name}/int8"), layer, x, batch, output)?;
                let shape = [batch, i32::try_from(layer.outputs())?];
                let out = builder.tensor("output", &shape, FLOAT32, &[], None);
                builder.operator(DEQUANTIZE, &[q], &[out]);
                return Ok(builder.finish(&[features], &[out]));
            }
        }
    }
    anyhow::bail!("the network has no output layer")
}

/// The quantization [`network`] gives the network's output: the range the int8 network's
/// output (ε̂ before its Gaussian part) takes on 4 096 points `x ~ N(0, I)` at times evenly
/// spread over `[t_end, T]`, widened by a quarter on each side.
pub fn output_quantization(model: &Model<'_>) -> Result<QuantParams> {
    use tinyscore::LinearSde;
    let header = *model.header();
    let dim = header.dims.dim as usize;
    let (t_end, t_max) = (header.t_end, header.sde.t_max());
    let (mut low, mut high) = (0.0f32, 0.0f32);
    let (mut x, mut eps) = (vec![0.0f32; dim], vec![0.0f32; dim]);
    const POINTS: u32 = 4096;
    for i in 0..POINTS {
        let mut noise = tinyscore::particle_noise(0x7f1e, i as u64);
        x.iter_mut().for_each(|v| *v = noise.normal::<1>()[0]);
        let t = t_end + (t_max - t_end) * i as f32 / (POINTS - 1) as f32;
        model.predict_noise(&x, t, &mut eps)?;
        let gain = header.gaussian_gain(t).unwrap_or(0.0);
        for (e, x) in eps.iter().zip(&x) {
            let raw = e - gain * x;
            (low, high) = (low.min(raw), high.max(raw));
        }
    }
    let margin = 0.25 * (high - low);
    Ok(QuantParams::covering(low - margin, high + margin))
}
