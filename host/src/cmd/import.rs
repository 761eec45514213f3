//! `tinyscore import`: a PyTorch model (safetensors) to a `.tsm` file.

use anyhow::{Context, Result};
use std::path::PathBuf;
use tinyscore_host::io::ensure_not_an_input;
use tinyscore_host::model_file::{import_safetensors, read};
use tinyscore_host::sampling::SdeKind;

/// Convert a PyTorch model (safetensors, the layout of moons_ref.safetensors) to .tsm.
#[derive(clap::Args)]
pub struct Args {
    /// The safetensors file.
    input: PathBuf,
    /// Where sampling stops (the smallest training time).
    #[arg(long, allow_negative_numbers = true, default_value_t = 1e-3)]
    t_end: f32,
    /// The forward process the model was trained with, with its default parameters (for a
    /// file whose metadata does not say; overrides it otherwise).
    #[arg(long, value_enum)]
    sde: Option<SdeKind>,
    /// The data's mean per coordinate, comma-separated (with --std; for a file whose
    /// metadata does not give the normalisation).
    #[arg(
        long,
        value_delimiter = ',',
        requires = "std",
        allow_negative_numbers = true
    )]
    mean: Option<Vec<f32>>,
    /// The data's standard deviation per coordinate, comma-separated (with --mean).
    #[arg(long, value_delimiter = ',', requires = "mean")]
    std: Option<Vec<f32>>,
    /// Output model.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    ensure_not_an_input(&args.out, &[&args.input])?;
    let bytes = read(&args.input)?;
    let normalization = args.mean.zip(args.std);
    let sde = args.sde.map(SdeKind::model_sde);
    let network = import_safetensors(&bytes, sde, normalization, args.t_end)
        .with_context(|| format!("{}", args.input.display()))?;
    network.write(&args.out)?;
    let d = network.dims;
    eprintln!(
        "wrote {} ({}→{}×{}→{} network, {} SDE)",
        args.out.display(),
        d.input_width(),
        d.hidden,
        d.layers,
        d.dim,
        network.sde
    );
    Ok(())
}
