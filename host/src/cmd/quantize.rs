//! `tinyscore quantize`: an f32 model to integer-only int8 weights (with int8 or int16
//! activations), calibrated on diffused data.

use super::emit;
use anyhow::Result;
use std::path::PathBuf;
use tinyscore::model::Rounding;
use tinyscore_host::{data, quantize};

/// Quantize a float model to integer-only int8 weights, calibrated on diffused data.
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
    /// How the requantization rounds, recorded in the file: gemmlowp's two roundings (as
    /// TFLite-Micro and CMSIS-NN), or one (as LiteRT's reference kernels).
    #[arg(long, value_enum, default_value = "double")]
    rounding: RoundingArg,
    /// How wide the activations are: int8, or int16 (TFLite's 16×8; 256 times finer, for the
    /// sharp noise prediction at small t, at the same weights) [default: the width the model
    /// was trained through (`train --qat-activations`), else int8].
    #[arg(long, value_enum)]
    activations: Option<quantize::ActivationWidth>,
    /// Output model.
    #[arg(long)]
    out: PathBuf,
}

/// `--rounding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RoundingArg {
    /// Two roundings: the doubling high multiply, then a rounding right shift.
    Double,
    /// One rounding of the 64-bit product.
    Single,
}

pub fn run(args: Args) -> Result<()> {
    let rounding = match args.rounding {
        RoundingArg::Double => Rounding::Double,
        RoundingArg::Single => Rounding::Single,
    };
    let points = args.calib_points.max(args.eval_points);
    let calibration = data::load(&args.calib, points, args.seed)?;
    let report = quantize::quantize_file(
        &args.input,
        &calibration,
        args.calib_points,
        args.eval_points,
        args.seed,
        args.activations,
        rounding,
        &args.out,
    )?;
    emit(format_args!("{report}"))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
