//! `tinyscore plot`: pictures of a model or of an exact mixture score.

use super::sampling_progress;
use anyhow::{Context, Result};
use clap::ArgGroup;
use std::path::PathBuf;
use tinyscore_host::io::read_csv;
use tinyscore_host::model_file::{denormalize, parse, read};
use tinyscore_host::sampling::{sample_exact, sample_model, SampleOptions, SamplerKind};
use tinyscore_host::{data, plot};

/// Draw a model: data beside samples, the score field, trajectories, an animated GIF.
#[derive(clap::Args)]
#[command(group(ArgGroup::new("score").required(true).args(["exact", "model"])))]
pub struct Args {
    /// A model file.
    #[arg(long, value_name = "MODEL.tsm")]
    model: Option<PathBuf>,
    /// The closed-form score of a Gaussian-mixture dataset (under the VP-SDE).
    #[arg(long, value_name = "DATASET")]
    exact: Option<String>,
    /// The data drawn behind the samples (default: the --exact dataset).
    #[arg(long, value_name = "DATASET")]
    data: Option<String>,
    /// Samples to show (CSV); default: 2000 drawn now by Euler–Maruyama, 500 steps.
    #[arg(long)]
    samples: Option<PathBuf>,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
}

/// Where an exact score's paths end.
const EXACT_T_END: f32 = 1e-3;

pub fn run(args: Args) -> Result<()> {
    let data_name = args
        .data
        .clone()
        .or_else(|| args.exact.clone())
        .context("give --data DATASET to draw behind the samples")?;
    let data = data::load(&data_name, 2000, args.seed.wrapping_add(1))?;
    let given = args.samples.as_deref().map(read_csv).transpose()?;
    let options = |t_end| SampleOptions::uniform(SamplerKind::Em, 500, 2000, args.seed, t_end);
    let files = match (&args.model, &args.exact) {
        (Some(path), _) => {
            let bytes = read(path)?;
            let model = parse(&bytes, path)?;
            let samples = match given {
                Some(s) => s,
                None => {
                    let options = options(model.header().t_end);
                    let progress = sampling_progress(&options);
                    let drawn = sample_model(model, &options, &progress)?;
                    progress.finish();
                    denormalize(&model, &drawn)?.points()
                }
            };
            plot::all_for_model(&args.out, &data, &samples, model, args.seed)?
        }
        (None, Some(exact)) => {
            let mixture = data::mixture(exact)?;
            let samples = match given {
                Some(s) => s,
                None => {
                    let vp = tinyscore::ModelSde::Vp(tinyscore::VpSde::default());
                    let options = options(EXACT_T_END);
                    let progress = sampling_progress(&options);
                    let drawn = sample_exact(&options, vp, &mixture, &progress)?;
                    progress.finish();
                    drawn.points()
                }
            };
            plot::all_for_mixture(&args.out, &data, &samples, &mixture, EXACT_T_END, args.seed)?
        }
        (None, None) => anyhow::bail!("give --model MODEL.tsm or --exact DATASET"),
    };
    for file in files {
        eprintln!("wrote {}", file.display());
    }
    Ok(())
}
