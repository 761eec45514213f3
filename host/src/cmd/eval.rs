//! `tinyscore eval`: samples against fresh draws of a dataset.

use super::outln;
use anyhow::Result;
use std::path::PathBuf;
use tinyscore::model::Precision;
use tinyscore::Model;
use tinyscore_host::data::reference_pair;
use tinyscore_host::io::read_csv;
use tinyscore_host::likelihood::{model_likelihood, LikelihoodOptions};
use tinyscore_host::metrics::{compare, even_subsample, COMPARISON_UNITS};
use tinyscore_host::model_file::{parse, read};
use tinyscore_host::points::Points;
use tinyscore_host::progress::Progress;

/// Compare samples with fresh draws of a dataset: sw2, energy, mmd2 and their floor.
#[derive(clap::Args)]
pub struct Args {
    /// Samples (CSV with a header row).
    samples: PathBuf,
    /// The dataset to compare against (a CSV file is split in two halves: the samples are
    /// measured against one, the floor is the other against it).
    #[arg(long, value_name = "DATASET")]
    against: String,
    /// Reference points (default: as many as samples).
    #[arg(long)]
    n: Option<usize>,
    /// Seed of the reference draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also the negative log-likelihood of held-out data (at most 1000 of the reference
    /// points) under this f32 model, by the probability-flow ODE (as `tinyscore likelihood`).
    #[arg(long, value_name = "MODEL.tsm")]
    model: Option<PathBuf>,
    /// Print one JSON object with keys sw2, energy, mmd2, floor (and nll, bits_per_dim).
    #[arg(long)]
    json: bool,
}

/// The most held-out points whose likelihood `--model` computes.
const NLL_POINTS: usize = 1000;

pub fn run(args: Args) -> Result<()> {
    let model_bytes = args.model.as_deref().map(read).transpose()?;
    let model = match (&args.model, &model_bytes) {
        (Some(path), Some(bytes)) => Some(parse(bytes, path)?),
        _ => None,
    };
    if let (Some(model), Some(path)) = (&model, &args.model) {
        anyhow::ensure!(
            model.header().precision == Precision::F32,
            "{}: the likelihood needs the f32 model (an int8 network has no derivative)",
            path.display()
        );
    }
    let samples = read_csv(&args.samples)?;
    let n = args.n.unwrap_or(samples.len());
    let (reference, fresh) = reference_pair(&args.against, n, args.seed)?;
    let progress = Progress::new("eval", 2 * COMPARISON_UNITS, "parts");
    let metrics = compare(&samples, &reference, &progress)?;
    let floor = compare(&fresh, &reference, &progress)?;
    progress.finish();
    let nll = match model {
        Some(model) => Some(held_out_nll(model, &reference)?),
        None => None,
    };
    if args.json {
        let mut value = serde_json::json!({
            "sw2": metrics.sw2, "energy": metrics.energy, "mmd2": metrics.mmd2, "floor": floor,
        });
        if let Some((nll, bits_per_dim)) = nll {
            value["nll"] = nll.into();
            value["bits_per_dim"] = bits_per_dim.into();
        }
        outln!("{value}");
    } else {
        outln!("sw2     {:.5}   (floor {:.5})", metrics.sw2, floor.sw2);
        outln!("energy  {:.6}  (floor {:.6})", metrics.energy, floor.energy);
        outln!("mmd2    {:.7} (floor {:.7})", metrics.mmd2, floor.mmd2);
        if let Some((nll, bits_per_dim)) = nll {
            outln!("nll     {nll:.5} nats ({bits_per_dim:.5} bits/dim) of held-out data");
        }
    }
    Ok(())
}

/// The model's mean negative log-likelihood (nats, and bits per dimension) of at most
/// [`NLL_POINTS`] of `held_out`, with the likelihood command's default solver.
fn held_out_nll(model: Model<'_>, held_out: &Points) -> Result<(f64, f64)> {
    let points = even_subsample(held_out, NLL_POINTS);
    let options = LikelihoodOptions {
        rtol: 1e-5,
        atol: 1e-5,
        max_steps: 10_000,
        hutchinson: None,
        seed: 0,
        threads: 0,
    };
    let progress = Progress::new("likelihood", points.len() as u64, "points");
    let results = model_likelihood(model, &points, &options, &progress)?;
    progress.finish();
    let nll = -results.iter().map(|r| r.log_p).sum::<f64>() / results.len() as f64;
    Ok((nll, nll / (points.dim as f64 * std::f64::consts::LN_2)))
}
