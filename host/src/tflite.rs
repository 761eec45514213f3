//! TFLite flatbuffers of an integer model: one hidden layer of an int8 model alone
//! ([`hidden_layer`], which `tests/tests/litert.rs` runs in LiteRT against the project's
//! requantization) or the whole network of an int8 or int16x8 model ([`network`], `tinyscore
//! export --format tflite`, for TFLite Micro; int16x8 as TFLite's 16×8 mode: int16
//! activations, int8 weights, int64 biases).
//!
//! The file is written with the FlatBuffers builder from the fields of TFLite's `schema.fbs`
//! (field `i` of a table sits in vtable slot `4 + 2i`); only the tables and fields these
//! models need are written, the others keep their defaults.

use anyhow::{ensure, Context, Result};
use flatbuffers::{FlatBufferBuilder, TableFinishedWIPOffset, WIPOffset};
use tinyscore::model::{Int8Layer, Model, Precision, QuantParams};

/// `schema.fbs`'s `BuiltinOperator` codes.
const DEQUANTIZE: i32 = 6;
const FULLY_CONNECTED: i32 = 9;
const LOGISTIC: i32 = 14;
const MUL: i32 = 18;
const QUANTIZE: i32 = 114;
/// `BuiltinOptions.FullyConnectedOptions`.
const FULLY_CONNECTED_OPTIONS: u8 = 8;
/// `TensorType` codes.
const FLOAT32: i8 = 0;
const INT32: i8 = 2;
const INT64: i8 = 4;
const INT16: i8 = 7;
const INT8: i8 = 9;

/// How a model's activations and biases are stored, and the operator versions TFLite's
/// converter gives the operators that take them (`GetBuiltinOperatorVersion` in
/// `tools/versioning/op_version.cc`).
#[derive(Clone, Copy)]
struct Width {
    /// The activations' `TensorType`.
    activation: i8,
    /// The biases' `TensorType`.
    bias: i8,
    /// TFLite's fixed quantization of a LOGISTIC output of this width.
    logistic: QuantParams,
    /// The versions of DEQUANTIZE, FULLY_CONNECTED (weights per channel), LOGISTIC, MUL and
    /// QUANTIZE, in that order.
    versions: [i32; 5],
}

impl Width {
    /// int8 activations, int32 biases.
    const INT8: Width = Width {
        activation: INT8,
        bias: INT32,
        logistic: QuantParams {
            scale: 1.0 / 256.0,
            zero_point: -128,
        },
        versions: [2, 4, 2, 2, 1],
    };
    /// int16 activations (zero point 0), int64 biases: the 16×8 mode.
    const INT16: Width = Width {
        activation: INT16,
        bias: INT64,
        logistic: QuantParams {
            scale: 1.0 / 32768.0,
            zero_point: 0,
        },
        versions: [3, 1, 3, 4, 2],
    };

    /// MUL of the pre-activation (`pre`) and its LOGISTIC into `post`: int8's version 3
    /// where the rescale `s_pre·s_logistic/s_post` is at least 1.
    fn silu_mul(&self, pre: QuantParams, post: QuantParams) -> (i32, i32) {
        let rescale = pre.scale as f64 * self.logistic.scale as f64 / post.scale as f64;
        match (self.activation, rescale >= 1.0) {
            (INT8, true) => (MUL, 3),
            _ => self.op(MUL),
        }
    }

    /// `code` with its version at this width.
    fn op(&self, code: i32) -> (i32, i32) {
        let index = [DEQUANTIZE, FULLY_CONNECTED, LOGISTIC, MUL, QUANTIZE]
            .iter()
            .position(|&c| c == code)
            .unwrap_or(0);
        (code, self.versions[index])
    }
}

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

    /// An activation tensor `[batch, width]` of `kind` in `q`.
    fn activation(
        &mut self,
        name: &str,
        (batch, width): (i32, usize),
        kind: i8,
        q: QuantParams,
    ) -> Result<i32> {
        let shape = [batch, i32::try_from(width)?];
        let quantization = (&[q.scale][..], &[q.zero_point as i64][..]);
        Ok(self.tensor(name, &shape, kind, &[], Some(quantization)))
    }

    fn operator(&mut self, (code, version): (i32, i32), inputs: &[i32], outputs: &[i32]) {
        let index = match self.codes.iter().position(|&c| c == (code, version)) {
            Some(i) => i,
            None => {
                self.codes.push((code, version));
                self.codes.len() - 1
            }
        };
        let options = (code == FULLY_CONNECTED).then(|| {
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

    /// A FULLY_CONNECTED operator with `layer`'s weights and biases from the tensor `input`
    /// (in `layer.input()`) to a new tensor in `output`, at `width`; returns it.
    fn dense(
        &mut self,
        name: &str,
        layer: &Int8Layer<'_>,
        input: i32,
        (batch, width): (i32, Width),
        output: QuantParams,
    ) -> Result<i32> {
        let (inputs, outputs) = (layer.inputs(), layer.outputs());
        let weights: Vec<u8> = (0..outputs)
            .flat_map(|o| (0..inputs).map(move |j| layer.weight(o, j) as u8))
            .collect();
        let bias: Vec<u8> = (0..outputs)
            .flat_map(|o| match width.bias {
                INT64 => (layer.bias(o) as i64).to_le_bytes().to_vec(),
                _ => layer.bias(o).to_le_bytes().to_vec(),
            })
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
            width.bias,
            &bias,
            Some((&bias_scales, &zeros)),
        );
        let out = self.activation(name, (batch, outputs), width.activation, output)?;
        self.operator(width.op(FULLY_CONNECTED), &[input, w, b], &[out]);
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

/// The layers of `model`, an int8 or int16x8 file, and the width of its activations.
fn integer_layers<'a>(model: &Model<'a>) -> Result<(Vec<Int8Layer<'a>>, Width)> {
    let width = match model.header().precision {
        Precision::Int8 => Width::INT8,
        Precision::Int16x8 => Width::INT16,
        Precision::F32 => anyhow::bail!(
            "TFLite export takes a quantized model (made by `tinyscore quantize`), not an f32 one"
        ),
        Precision::Int8Packed | Precision::Int16x8Packed => anyhow::bail!(
            "TFLite export takes the model a packed one was made from, not the packed one"
        ),
    };
    let layers = (0..=model.header().dims.layers)
        .map(|i| model.int8_layer(i).context("an integer layer"))
        .collect::<Result<_>>()?;
    Ok((layers, width))
}

/// Hidden layer `index` of the int8 `model` as a one-operator model: an int8 input `[batch,
/// inputs]` in the layer's input quantization, the layer's weights (per output channel) and
/// int32 biases, and an int8 output in its pre-activation quantization: the requantized sums,
/// before the SiLU table.
pub fn hidden_layer(model: &Model<'_>, index: usize, batch: usize) -> Result<Vec<u8>> {
    let (layers, width) = integer_layers(model)?;
    ensure!(
        width.activation == INT8,
        "one layer alone is written for int8 models"
    );
    let layer = layers
        .get(index)
        .filter(|l| l.activation().is_some())
        .with_context(|| format!("layer {index} is no hidden layer"))?;
    let (pre, _) = layer.activation().context("a hidden layer")?;
    let batch = i32::try_from(batch)?;
    let mut builder = Builder::new();
    let input = builder.activation("input", (batch, layer.inputs()), INT8, layer.input())?;
    let output = builder.dense("pre_activation", layer, input, (batch, width), pre)?;
    Ok(builder.finish(&[input], &[output]))
}

/// The whole network of an int8 or int16x8 `model` for TFLite Micro: f32 features `[batch,
/// inputs]` (the normalised coordinates, then `sin`, then `cos` of the time features) →
/// QUANTIZE → per hidden layer FULLY_CONNECTED to the pre-activation tensor, LOGISTIC, and
/// MUL of the two into the post-activation tensor (SiLU) → FULLY_CONNECTED to an output in
/// `output` (see [`output_quantization`]) → DEQUANTIZE to f32 `[batch, dim]`: the network's
/// output before the Gaussian part of ε̂. Activations are int8, or int16 with int64 biases.
pub fn network(model: &Model<'_>, output: QuantParams, batch: usize) -> Result<Vec<u8>> {
    let (layers, width) = integer_layers(model)?;
    let first = layers.first().context("a network has layers")?;
    let batch = i32::try_from(batch)?;
    let inputs = i32::try_from(first.inputs())?;
    let kind = width.activation;
    let mut builder = Builder::new();
    let features = builder.tensor("features", &[batch, inputs], FLOAT32, &[], None);
    let mut x = builder.activation(
        "features/quantized",
        (batch, first.inputs()),
        kind,
        first.input(),
    )?;
    builder.operator(width.op(QUANTIZE), &[features], &[x]);
    for (i, layer) in layers.iter().enumerate() {
        let name = format!("layer{i}");
        let shape = (batch, layer.outputs());
        match layer.activation() {
            Some((pre, post)) => {
                let z = builder.dense(&format!("{name}/pre"), layer, x, (batch, width), pre)?;
                let s =
                    builder.activation(&format!("{name}/sigmoid"), shape, kind, width.logistic)?;
                builder.operator(width.op(LOGISTIC), &[z], &[s]);
                x = builder.activation(&format!("{name}/silu"), shape, kind, post)?;
                builder.operator(width.silu_mul(pre, post), &[z, s], &[x]);
            }
            None => {
                let q = builder.dense(
                    &format!("{name}/quantized"),
                    layer,
                    x,
                    (batch, width),
                    output,
                )?;
                let out_shape = [batch, i32::try_from(layer.outputs())?];
                let out = builder.tensor("output", &out_shape, FLOAT32, &[], None);
                builder.operator(width.op(DEQUANTIZE), &[q], &[out]);
                return Ok(builder.finish(&[features], &[out]));
            }
        }
    }
    anyhow::bail!("the network has no output layer")
}

/// The quantization [`network`] gives the network's output: the range the integer network's
/// output (ε̂ before its Gaussian part) takes on 4 096 points `x ~ N(0, I)` at times evenly
/// spread over `[t_end, T]`, widened by a quarter on each side; int8, or symmetric int16 for
/// an int16x8 model.
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
    let int8 = QuantParams::covering(low - margin, high + margin);
    Ok(match header.precision {
        Precision::Int16x8 => int8.int16_over(),
        _ => int8,
    })
}
