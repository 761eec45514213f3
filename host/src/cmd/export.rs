//! `tinyscore export`: a model as a Rust include for the firmware, as safetensors, or as a
//! TFLite model.

use anyhow::Result;
use std::path::PathBuf;
use tinyscore_host::io::{ensure_not_an_input, write_atomically};
use tinyscore_host::model_file::{
    parse, read, write_rust_include, write_safetensors, ExportFormat, Network,
};
use tinyscore_host::tflite;

/// Write a model for the firmware (a Rust include), for PyTorch (safetensors) or for TFLite
/// Micro (a quantized model as .tflite).
#[derive(clap::Args)]
pub struct Args {
    /// The model file.
    input: PathBuf,
    /// What to write.
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    ensure_not_an_input(&args.out, &[&args.input])?;
    let bytes = read(&args.input)?;
    let model = parse(&bytes, &args.input)?;
    match args.format {
        ExportFormat::Rust => write_rust_include(&args.out, &bytes)?,
        ExportFormat::Safetensors => write_safetensors(&args.out, &Network::from_model(&model)?)?,
        ExportFormat::Tflite => {
            let output = tflite::output_quantization(&model)?;
            let bytes = tflite::network(&model, output, 1)?;
            write_atomically(&args.out, |w| Ok(w.write_all(&bytes)?))?;
        }
    }
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
