//! `tinyscore eval`: samples against fresh draws of a dataset.

use super::outln;
use anyhow::Result;
use std::path::PathBuf;
use tinyscore_host::data::reference_pair;
use tinyscore_host::io::read_csv;
use tinyscore_host::metrics::{compare, COMPARISON_UNITS};
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
    /// Print one JSON object with keys sw2, energy, mmd2, floor.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let samples = read_csv(&args.samples)?;
    let n = args.n.unwrap_or(samples.len());
    let (reference, fresh) = reference_pair(&args.against, n, args.seed)?;
    let progress = Progress::new("eval", 2 * COMPARISON_UNITS, "parts");
    let metrics = compare(&samples, &reference, &progress)?;
    let floor = compare(&fresh, &reference, &progress)?;
    progress.finish();
    if args.json {
        let value = serde_json::json!({
            "sw2": metrics.sw2, "energy": metrics.energy, "mmd2": metrics.mmd2, "floor": floor,
        });
        outln!("{value}");
    } else {
        outln!("sw2     {:.5}   (floor {:.5})", metrics.sw2, floor.sw2);
        outln!("energy  {:.6}  (floor {:.6})", metrics.energy, floor.energy);
        outln!("mmd2    {:.7} (floor {:.7})", metrics.mmd2, floor.mmd2);
    }
    Ok(())
}
