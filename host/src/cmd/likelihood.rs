//! `tinyscore likelihood`: the log-density of data points by the probability-flow ODE.

use super::{outln, OdeArgs};
use anyhow::{Context, Result};
use clap::ArgGroup;
use std::path::{Path, PathBuf};
use tinyscore_host::data;
use tinyscore_host::io::{ensure_not_an_input, write_atomically, write_csv};
use tinyscore_host::likelihood::{exact_likelihood, model_likelihood, LikelihoodOptions};
use tinyscore_host::model_file::{parse, read};
use tinyscore_host::points::Samples;
use tinyscore_host::progress::Progress;
use tinyscore_host::sampling::SdeKind;

/// Log-likelihoods of data points by the probability-flow ODE (exact, to the solver's
/// tolerance): one row per point with its `log_p` (nats, data units) and evaluations.
#[derive(clap::Args)]
#[command(group(ArgGroup::new("score").required(true).args(["exact", "model"])))]
pub struct Args {
    /// An f32 model file (its SDE, end time and normalisation come from the file; the prior
    /// N(0, I) is added at T).
    #[arg(long, value_name = "MODEL.tsm")]
    model: Option<PathBuf>,
    /// The closed-form score of a Gaussian mixture (`8gaussians` or a mixture .json), from
    /// t = 1e-3, with the mixture's own density at T.
    #[arg(long, value_name = "DATASET")]
    exact: Option<String>,
    /// The forward process (with --exact; a model has its own).
    #[arg(long, value_enum, default_value = "vp", conflicts_with = "model")]
    sde: SdeKind,
    /// The points: a CSV file with a header row, or a dataset name (then -n points are drawn).
    #[arg(long, value_name = "X.csv")]
    data: String,
    /// Points drawn when --data names a dataset.
    #[arg(short, default_value_t = 1000)]
    n: usize,
    #[command(flatten)]
    ode: OdeArgs,
    /// Estimate the divergence with this many Rademacher probes per point (Hutchinson;
    /// 1 to 64) instead of computing it exactly.
    #[arg(long, value_name = "K")]
    hutchinson: Option<u32>,
    /// Seed of the probes (point i draws from stream i) and of drawn points.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Threads (0: all cores; at most 4 per core); the output does not depend on it.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Output CSV: `log_p,nfe` per point.
    #[arg(long)]
    out: PathBuf,
    /// Also write each point's latent x(T), the ODE's encoding of it, as CSV.
    #[arg(long, value_name = "Z.csv")]
    latents: Option<PathBuf>,
    /// Print one JSON object with keys nll, bits_per_dim, nfe.
    #[arg(long)]
    json: bool,
}

/// Where an exact score's likelihood starts.
const EXACT_T_END: f32 = 1e-3;

pub fn run(args: Args) -> Result<()> {
    let data_path = Path::new(&args.data);
    let mut inputs = vec![data_path];
    inputs.extend(args.model.as_deref());
    ensure_not_an_input(&args.out, &inputs)?;
    if let Some(latents) = &args.latents {
        ensure_not_an_input(latents, &inputs)?;
        anyhow::ensure!(
            latents != &args.out,
            "--latents and --out name the same file"
        );
    }
    anyhow::ensure!(args.n > 0, "-n must be at least 1");
    let options = LikelihoodOptions {
        rtol: args.ode.rtol(),
        atol: args.ode.atol(),
        max_steps: args.ode.max_steps(),
        hutchinson: args.hutchinson,
        seed: args.seed,
        threads: args.threads,
    };
    options.likelihood()?;
    let points = data::load(&args.data, args.n, args.seed)?;
    let progress = Progress::new("likelihood", points.len() as u64, "points");
    let results = match (&args.model, &args.exact) {
        (Some(path), _) => {
            let bytes = read(path)?;
            let model = parse(&bytes, path)?;
            model_likelihood(model, &points, &options, &progress)
                .with_context(|| format!("{}", path.display()))?
        }
        (None, Some(exact)) => {
            let mixture = data::mixture(exact)?;
            let sde = args.sde.model_sde();
            exact_likelihood(&mixture, sde, EXACT_T_END, &points, &options, &progress)?
        }
        (None, None) => anyhow::bail!("give --model MODEL.tsm or --exact DATASET"),
    };
    progress.finish();
    write_atomically(&args.out, |w| {
        writeln!(w, "log_p,nfe")?;
        for r in &results {
            writeln!(w, "{:?},{}", r.log_p, r.nfe)?;
        }
        Ok(())
    })?;
    if let Some(latents) = &args.latents {
        let values = results
            .iter()
            .flat_map(|r| r.latent.iter().copied())
            .collect();
        write_csv(
            latents,
            &Samples {
                dim: points.dim,
                values,
            },
        )?;
    }
    let count = results.len() as f64;
    let nll = -results.iter().map(|r| r.log_p).sum::<f64>() / count;
    let bits_per_dim = nll / (points.dim as f64 * std::f64::consts::LN_2);
    let nfe = results.iter().map(|r| r.nfe as f64).sum::<f64>() / count;
    if args.json {
        let value = serde_json::json!({ "nll": nll, "bits_per_dim": bits_per_dim, "nfe": nfe });
        outln!("{value}");
    } else {
        outln!("nll          {nll:.5} nats");
        outln!("bits/dim     {bits_per_dim:.5}");
        outln!("evaluations  {nfe:.1} per point");
    }
    eprintln!(
        "wrote {} log-likelihoods to {}",
        results.len(),
        args.out.display()
    );
    Ok(())
}
