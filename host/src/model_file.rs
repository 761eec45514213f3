//! Model files on the host: reading one ([`read`], then [`parse`] once per command), writing
//! (through the core's `tinyscore::model::format`, the one place that knows the layout),
//! importing PyTorch models from safetensors and exporting to safetensors or a Rust include.

use crate::io::write_atomically;
use crate::points::Samples;
use crate::quantize::ActivationWidth;
use anyhow::{bail, ensure, Context, Result};
use safetensors::SafeTensors;
use std::path::Path;
use tinyscore::model::format::{write_file, F32LayerValues, LayerValues, Payload};
use tinyscore::model::{Dims, Header, Output, Precision, QuantParams, TrainedActivations};
use tinyscore::{Model, ModelSde, SubVpSde, VeSde, VpSde};

/// The bytes of the model file `path`.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The model in `bytes`, read from `path` (named in the error if it does not parse).
pub fn parse<'a>(bytes: &'a [u8], path: &Path) -> Result<Model<'a>> {
    Model::parse(bytes).with_context(|| format!("{}", path.display()))
}

/// `samples` in `model`'s normalised coordinates mapped to data units.
pub fn denormalize(model: &Model<'_>, samples: &Samples) -> Result<Samples> {
    let dim = model.header().dims.dim as usize;
    ensure!(
        samples.dim == dim,
        "{}-D samples for a {dim}-D model",
        samples.dim
    );
    let values = samples
        .rows()
        .flat_map(|x| {
            x.iter().enumerate().map(move |(d, v)| {
                let (mean, std) = model.normalization(d);
                mean + std * v
            })
        })
        .collect();
    Ok(Samples { dim, values })
}

/// A float network held in memory, ready to write.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    /// Dimensions.
    pub dims: Dims,
    /// The forward process it was trained with.
    pub sde: ModelSde,
    /// Where sampling stops.
    pub t_end: f32,
    /// What the network's output is.
    pub output: Output,
    /// Data mean per dimension.
    pub mean: Vec<f32>,
    /// Data std per dimension.
    pub std: Vec<f32>,
    /// Fourier frequencies W.
    pub fourier: Vec<f32>,
    /// `(weights (outputs × inputs, row-major), biases)` per layer, the output layer last.
    pub layers: Vec<(Vec<f32>, Vec<f32>)>,
    /// The activation quantizations quantization-aware training fixed, which `quantize`
    /// keeps (the input tensor's, then each hidden layer's pre- and post-activation
    /// tensors'); empty for a network trained without them.
    pub activations: Vec<QuantParams>,
    /// The activation width those quantizations were trained for (int8 without them).
    pub activation_width: ActivationWidth,
}

impl Network {
    /// The header of this network's file at `precision`.
    pub fn header(&self, precision: Precision) -> Header {
        Header {
            precision,
            dims: self.dims,
            sde: self.sde,
            t_end: self.t_end,
            output: self.output,
            rounding: tinyscore::model::Rounding::Double,
            trained_activations: if precision == Precision::F32 && !self.activations.is_empty() {
                self.activation_width.trained()
            } else {
                TrainedActivations::None
            },
        }
    }

    /// The `.tsm` bytes (f32 precision).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let layers: Vec<F32LayerValues<'_>> = self
            .layers
            .iter()
            .map(|(weights, bias)| F32LayerValues { weights, bias })
            .collect();
        encode_file(
            &self.header(Precision::F32),
            &Payload {
                mean: &self.mean,
                std: &self.std,
                fourier: &self.fourier,
                layers: LayerValues::F32 {
                    layers: &layers,
                    activations: &self.activations,
                },
            },
        )
    }

    /// Writes the model atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        write_atomically(path, |w| Ok(w.write_all(&bytes)?))
    }

    /// The network of a parsed model (an int8 model's weights dequantized). A packed model
    /// is refused: it is the firmware's form of an int8 model, whose weights it reorders and
    /// whose biases it folds.
    pub fn from_model(model: &Model<'_>) -> Result<Network> {
        let header = model.header();
        ensure!(
            header.precision != Precision::Int8Packed,
            "a packed model (precision 2) is the firmware's form of an int8 model: \
             use the int8 file it was packed from"
        );
        let dims = header.dims;
        let layer = |i: u32| match model.int8_layer(i) {
            None => {
                let (w, b) = model.layer(i);
                (w.collect(), b.collect())
            }
            Some(layer) => {
                let (inputs, outputs) = (layer.inputs(), layer.outputs());
                let s_in = layer.input().scale;
                let weights = (0..outputs)
                    .flat_map(|o| {
                        (0..inputs).map(move |j| layer.weight(o, j) as f32 * layer.weight_scale(o))
                    })
                    .collect();
                let bias = (0..outputs)
                    .map(|o| layer.bias(o) as f32 * s_in * layer.weight_scale(o))
                    .collect();
                (weights, bias)
            }
        };
        let (mean, std) = (0..dims.dim as usize)
            .map(|d| model.normalization(d))
            .unzip();
        Ok(Network {
            dims,
            sde: header.sde,
            t_end: header.t_end,
            output: header.output,
            mean,
            std,
            fourier: model.frequencies().collect(),
            layers: (0..=dims.layers).map(layer).collect(),
            activations: model.trained_activations().collect(),
            activation_width: ActivationWidth::of_trained(header.trained_activations),
        })
    }
}

/// A complete `.tsm` file of `header` and `payload` (`tinyscore::model::format`); parsed
/// back before it is returned, so nothing the reader would refuse is ever written.
pub fn encode_file(header: &Header, payload: &Payload<'_>) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(header.file_len());
    write_file(header, payload, |piece| bytes.extend_from_slice(piece))?;
    Model::parse(&bytes).context("the written model does not parse back")?;
    Ok(bytes)
}

/// The numbers after `key=` in `text`: a bracketed list `[a, b]` or a single number.
fn numbers_after(text: &str, key: &str) -> Option<Vec<f64>> {
    let start = text.find(&format!("{key}="))? + key.len() + 1;
    let rest = &text[start..];
    let body = if let Some(list) = rest.strip_prefix('[') {
        &list[..list.find(']')?]
    } else {
        rest.split(|c: char| c.is_whitespace() || c == ',').next()?
    };
    body.split(',').map(|v| v.trim().parse().ok()).collect()
}

/// The SDE named in a metadata text such as `VP beta_min=0.1 beta_max=20 …`.
pub fn sde_from_text(text: &str) -> Result<ModelSde> {
    let first = |key: &str| {
        numbers_after(text, key)
            .and_then(|v| v.first().copied())
            .map(|v| v as f32)
    };
    let kind = text
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    Ok(match kind.as_str() {
        "vp" | "subvp" | "sub-vp" => {
            let (lo, hi) = (
                first("beta_min").context("no beta_min")?,
                first("beta_max").context("no beta_max")?,
            );
            if kind == "vp" {
                ModelSde::Vp(VpSde::new(lo, hi)?)
            } else {
                ModelSde::SubVp(SubVpSde::new(lo, hi)?)
            }
        }
        "ve" => ModelSde::Ve(VeSde::new(
            first("sigma_min").context("no sigma_min")?,
            first("sigma_max").context("no sigma_max")?,
        )?),
        other => bail!("unknown SDE `{other}` in the metadata (expected VP, subVP or VE)"),
    })
}

/// The safetensors metadata `output` of a network whose output is ε̂ itself.
const OUTPUT_NOISE: &str = "eps";

/// The safetensors metadata `output` of a network whose output is ε̂ less σ/(α² + σ²)·x,
/// which a PyTorch user adds back to get ε̂.
const OUTPUT_RESIDUAL: &str = "eps - sigma/(alpha^2 + sigma^2) * x";

/// The safetensors metadata key of a network's trained activation quantizations
/// ([`Network::activations`]): a JSON list of `[scale, zero_point]`, the input tensor's then
/// each hidden layer's pre- and post-activation tensors'. A PyTorch user clamps each tensor
/// to `scale·(−128 − zero_point) … scale·(127 − zero_point)` to run the network as trained.
pub const ACTIVATIONS_KEY: &str = "activations";

/// The safetensors metadata key of the width [`ACTIVATIONS_KEY`]'s quantizations were
/// trained for: `"int8"` (also when absent) or `"int16"`, as JSON strings.
pub const ACTIVATION_WIDTH_KEY: &str = "activation_width";

/// Reads a PyTorch model in the layout of `moons_ref.safetensors`: `embed.W` (F), `l1.weight`
/// (H, N + 2F), `l1.bias`, …, `l{L+1}.weight` (N, H), `l{L+1}.bias`, float32; `__metadata__`
/// with `sde` (e.g. `VP beta_min=0.1 beta_max=20`) and `data` (`… mean=[…] std=[…]`), and
/// optionally `output` (as [`write_safetensors`] writes it; without it the network's output
/// is ε̂) and `activations` (see [`ACTIVATIONS_KEY`]). `sde` and `normalization` override the
/// metadata when given.
pub fn import_safetensors(
    bytes: &[u8],
    sde: Option<ModelSde>,
    normalization: Option<(Vec<f32>, Vec<f32>)>,
    t_end: f32,
) -> Result<Network> {
    let (_, metadata) = SafeTensors::read_metadata(bytes).context("not a safetensors file")?;
    let metadata = metadata.metadata().clone().unwrap_or_default();
    let tensors = SafeTensors::deserialize(bytes).context("not a safetensors file")?;
    let tensor = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
        let view = tensors
            .tensor(name)
            .with_context(|| format!("missing tensor `{name}`"))?;
        ensure!(
            view.dtype() == safetensors::Dtype::F32,
            "tensor `{name}` is {:?}, expected F32",
            view.dtype()
        );
        ensure!(
            view.shape() == shape,
            "tensor `{name}` has shape {:?}, expected {shape:?}",
            view.shape()
        );
        Ok(view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect())
    };
    let fourier_len = tensors
        .tensor("embed.W")
        .context("missing tensor `embed.W`")?
        .shape()
        .first()
        .copied()
        .unwrap_or(0);
    let first = tensors
        .tensor("l1.weight")
        .context("missing tensor `l1.weight`")?
        .shape()
        .to_vec();
    ensure!(first.len() == 2, "`l1.weight` must be 2-D");
    let hidden = first[0];
    let mut count = 1;
    while tensors.tensor(&format!("l{}.weight", count + 1)).is_ok() {
        count += 1;
    }
    let last = tensors
        .tensor(&format!("l{count}.weight"))?
        .shape()
        .to_vec();
    ensure!(
        count >= 2 && last.len() == 2,
        "expected at least two layers l1, l2, …"
    );
    let dims = Dims {
        dim: last[0] as u32,
        fourier: fourier_len as u32,
        hidden: hidden as u32,
        layers: count as u32 - 1,
    };
    dims.validate()?;
    let fourier = tensor("embed.W", &[fourier_len])?;
    let layers = (0..count)
        .map(|i| {
            let (inputs, outputs) = dims.layer_shape(i as u32);
            Ok((
                tensor(&format!("l{}.weight", i + 1), &[outputs, inputs])?,
                tensor(&format!("l{}.bias", i + 1), &[outputs])?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let sde = match sde {
        Some(sde) => sde,
        None => sde_from_text(
            metadata
                .get("sde")
                .context("no `sde` in the metadata: give it with `tinyscore import --sde`")?,
        )?,
    };
    let (mean, std) = match normalization {
        Some(n) => n,
        None => {
            let data = metadata.get("data").context(
                "no `data` in the metadata: give the normalisation with `tinyscore import \
                     --mean … --std …`",
            )?;
            let read = |key| {
                numbers_after(data, key)
                    .with_context(|| format!("no `{key}=[…]` in the metadata's data"))
            };
            let as_f32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<_>>();
            (as_f32(read("mean")?), as_f32(read("std")?))
        }
    };
    ensure!(
        mean.len() == dims.dim as usize && std.len() == dims.dim as usize,
        "the normalisation has {} means and {} stds for a {}-dimensional model",
        mean.len(),
        std.len(),
        dims.dim
    );
    let output = match metadata.get("output").map(String::as_str) {
        None | Some(OUTPUT_NOISE) => Output::Noise,
        Some(OUTPUT_RESIDUAL) => Output::GaussianResidual,
        Some(other) => bail!(
            "unknown `output` `{other}` in the metadata (expected `{OUTPUT_NOISE}` or \
             `{OUTPUT_RESIDUAL}`)"
        ),
    };
    let activations = match metadata.get(ACTIVATIONS_KEY) {
        None => Vec::new(),
        Some(text) => serde_json::from_str::<Vec<(f32, i32)>>(text)
            .with_context(|| {
                format!("the metadata's `{ACTIVATIONS_KEY}` is not a list of [scale, zero_point]")
            })?
            .into_iter()
            .map(|(scale, zero_point)| QuantParams { scale, zero_point })
            .collect(),
    };
    let activation_width = match metadata.get(ACTIVATION_WIDTH_KEY) {
        None => ActivationWidth::Int8,
        Some(text) => serde_json::from_str(text).with_context(|| {
            format!("the metadata's `{ACTIVATION_WIDTH_KEY}` is not \"int8\" or \"int16\"")
        })?,
    };
    let network = Network {
        dims,
        sde,
        t_end,
        output,
        mean,
        std,
        fourier,
        layers,
        activations,
        activation_width,
    };
    network.to_bytes()?; // validates everything the reader will check
    Ok(network)
}

/// Imports `path` (safetensors) with the metadata's SDE and normalisation.
pub fn import_safetensors_file(path: &Path, t_end: f32) -> Result<Network> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    import_safetensors(&bytes, None, None, t_end).with_context(|| format!("{}", path.display()))
}

/// What `tinyscore export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// A Rust file with the `.tsm` bytes, for the firmware to include at build time.
    Rust,
    /// safetensors in the layout `import` reads, for PyTorch.
    Safetensors,
    /// A TFLite model of an int8 or int16x8 network, for TFLite Micro: f32 features in
    /// (coordinates, sines, cosines), the network's f32 output out (ε̂ before its Gaussian
    /// part), SiLU as LOGISTIC then MUL.
    Tflite,
}

/// Writes `bytes` as a Rust include: `pub static MODEL: [u8; LEN] = [...];`.
pub fn write_rust_include(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically(path, |w| {
        writeln!(
            w,
            "// A tinyscore model (.tsm), written by `tinyscore export`. Do not edit."
        )?;
        writeln!(
            w,
            "/// The model file's bytes, checked by `tinyscore::Model::parse` at start-up."
        )?;
        writeln!(w, "pub static MODEL: [u8; {}] = [", bytes.len())?;
        for line in bytes.chunks(16) {
            let cells: Vec<String> = line.iter().map(|b| format!("0x{b:02x}")).collect();
            writeln!(w, "    {},", cells.join(", "))?;
        }
        writeln!(w, "];")?;
        Ok(())
    })
}

/// Writes the network as safetensors, with the metadata `import` reads back.
pub fn write_safetensors(path: &Path, network: &Network) -> Result<()> {
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;
    let to_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = vec![(
        "embed.W".into(),
        vec![network.fourier.len()],
        to_bytes(&network.fourier),
    )];
    for (i, (weights, bias)) in network.layers.iter().enumerate() {
        let (inputs, outputs) = network.dims.layer_shape(i as u32);
        tensors.push((
            format!("l{}.weight", i + 1),
            vec![outputs, inputs],
            to_bytes(weights),
        ));
        tensors.push((format!("l{}.bias", i + 1), vec![outputs], to_bytes(bias)));
    }
    let views = tensors
        .iter()
        .map(|(name, shape, data)| {
            Ok((
                name.clone(),
                TensorView::new(Dtype::F32, shape.clone(), data)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let (p0, p1) = network.sde.parameters();
    let sde = match network.sde {
        ModelSde::Vp(_) => format!("VP beta_min={p0} beta_max={p1}"),
        ModelSde::SubVp(_) => format!("subVP beta_min={p0} beta_max={p1}"),
        ModelSde::Ve(_) => format!("VE sigma_min={p0} sigma_max={p1}"),
    };
    let list = |v: &[f32]| {
        v.iter()
            .map(|x| format!("{x}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut metadata = std::collections::HashMap::from([
        ("sde".to_string(), sde),
        (
            "data".to_string(),
            format!(
                "mean=[{}] std=[{}]",
                list(&network.mean),
                list(&network.std)
            ),
        ),
        (
            "model".to_string(),
            "eps-prediction MLP, tinyscore .tsm layout".to_string(),
        ),
        (
            "output".to_string(),
            match network.output {
                Output::Noise => OUTPUT_NOISE,
                Output::GaussianResidual => OUTPUT_RESIDUAL,
            }
            .to_string(),
        ),
    ]);
    if !network.activations.is_empty() {
        let pairs: Vec<(f32, i32)> = network
            .activations
            .iter()
            .map(|q| (q.scale, q.zero_point))
            .collect();
        metadata.insert(ACTIVATIONS_KEY.to_string(), serde_json::to_string(&pairs)?);
        metadata.insert(
            ACTIVATION_WIDTH_KEY.to_string(),
            serde_json::to_string(&network.activation_width)?,
        );
    }
    let bytes = safetensors::serialize(views, Some(metadata))?;
    write_atomically(path, |w| Ok(w.write_all(&bytes)?))
}
