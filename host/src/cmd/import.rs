//! `tinyscore import`: a PyTorch model (safetensors) to a `.tsm` file.

use anyhow::Result;
use std::path::PathBuf;
use tinyscore_host::model_file::import_safetensors_file;

/// Convert a PyTorch model (safetensors, the layout of moons_ref.safetensors) to .tsm.
#[derive(clap::Args)]
pub struct Args {
    /// The safetensors file.
    input: PathBuf,
    /// Where sampling stops (the smallest training time).
    #[arg(long, default_value_t = 1e-3)]
    t_end: f32,
    /// Output model.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let network = import_safetensors_file(&args.input, args.t_end)?;
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
