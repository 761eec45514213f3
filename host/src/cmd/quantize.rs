//! `tinyscore quantize`: an f32 model to integer-only int8, calibrated on diffused data.

use super::emit;
use anyhow::Result;
use std::path::PathBuf;
use tinyscore_host::{data, quantize};

/// Quantize a float model to integer-only int8, calibrated on diffused data.
#[derive(clap::Args)]
pub struct Args {
    /// The f32 model file.
    input: PathBuf,
    /// Calibration data: a dataset name or a CSV file, in the model's data units.
    #[arg(long, value_name = "DATASET")]
    calib: String,
    /// Calibration points (data diffused to times spread over [t_end, T]).
    #[arg(long, default_value_t = 16384)]
    calib_points: usize,
    /// Fresh points on which the error of ε̂ is reported.
    #[arg(long, default_value_t = 10_000)]
    eval_points: usize,
    /// Seed of the data draws and the diffusion noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output model.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let points = args.calib_points.max(args.eval_points);
    let calibration = data::load(&args.calib, points, args.seed)?;
    let report = quantize::quantize_file(
        &args.input,
        &calibration,
        args.calib_points,
        args.eval_points,
        args.seed,
        &args.out,
    )?;
    emit(format_args!("{report}"))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
