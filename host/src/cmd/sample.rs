//! `tinyscore sample`: draw samples with an exact mixture score or a model's network.

use super::{write_samples, OdeArgs, Particles};
use anyhow::Result;
use clap::ArgGroup;
use std::path::PathBuf;
use tinyscore::Dopri5;
use tinyscore_host::io::{ensure_not_an_input, read_csv};
use tinyscore_host::model_file::{denormalize, parse, read};
use tinyscore_host::points::Samples;
use tinyscore_host::sampling::{
    sample_exact, sample_model, SampleOptions, SamplerKind, ScheduleKind, SdeKind,
};

/// Draw samples by integrating the reverse-time dynamics.
#[derive(clap::Args)]
#[command(group(ArgGroup::new("score").required(true).args(["exact", "model"])))]
pub struct Args {
    /// Use the closed-form score of a Gaussian mixture: `8gaussians` or a .json file
    /// `{"weights": […], "means": [[x, y]…], "stds": [[sx, sy]…]}`.
    #[arg(long, value_name = "DATASET")]
    exact: Option<String>,
    /// Use a model file's network (its SDE and end time come from the file).
    #[arg(long, value_name = "MODEL.tsm")]
    model: Option<PathBuf>,
    /// With --model: write the model's normalised coordinates instead of data units.
    #[arg(long, conflicts_with = "exact")]
    normalized: bool,
    /// The forward process (with --exact; a model has its own).
    #[arg(long, value_enum, default_value = "vp", conflicts_with = "model")]
    sde: SdeKind,
    /// The sampler.
    #[arg(long, value_enum, default_value = "em")]
    sampler: SamplerKind,
    /// Steps of the time grid [default: 500] (not with ode-rk45, which chooses its own).
    #[arg(long)]
    steps: Option<u32>,
    /// Spacing of the time grid [default: uniform] (not with ode-rk45).
    #[arg(long, value_enum)]
    schedule: Option<ScheduleKind>,
    /// A time grid fitted by `tinyscore schedule` (a grid JSON) instead of --steps and
    /// --schedule.
    #[arg(long, value_name = "GRID.json", conflicts_with_all = ["steps", "schedule"])]
    grid: Option<PathBuf>,
    /// The adaptive solver's settings (ode-rk45 only).
    #[command(flatten)]
    ode: OdeArgs,
    /// Take the last steps at a lower order (dpm2: the last first order; dpm3: the last two
    /// first and second; unipc: the last predictor first order), as diffusers'
    /// lower_order_final does.
    #[arg(long)]
    lower_order_final: bool,
    /// Finish with Tweedie's denoising step.
    #[arg(long)]
    denoise: bool,
    /// Start the particles from these points at T (a CSV with a header row; with --model in
    /// the model's normalised coordinates, as `tinyscore likelihood --latents` writes them)
    /// instead of drawing them from the prior: one sample per row.
    #[arg(long, value_name = "XT.csv")]
    init: Option<PathBuf>,
    #[command(flatten)]
    particles: Particles,
}

/// Where an exact score's grid ends.
const EXACT_T_END: f32 = 1e-3;

pub fn run(args: Args) -> Result<()> {
    if args.sampler == SamplerKind::OdeRk45 {
        let grid = [
            ("--steps", args.steps.is_some()),
            ("--schedule", args.schedule.is_some()),
        ];
        if let Some((flag, _)) = grid.iter().find(|(_, given)| *given) {
            anyhow::bail!(
                "{flag} does not apply to ode-rk45: it chooses its steps to meet --rtol and --atol"
            );
        }
    } else if let Some(flag) = args.ode.given() {
        anyhow::bail!("{flag} applies to --sampler ode-rk45 only");
    }
    if args.lower_order_final && !args.sampler.is_multistep() {
        anyhow::bail!(
            "--lower-order-final applies to the multistep samplers dpm2, dpm3 and unipc, not {}",
            args.sampler.name()
        );
    }
    let adaptive = Dopri5::new(args.ode.rtol(), args.ode.atol(), args.ode.max_steps())
        .map_err(|e| anyhow::anyhow!("{e} (--rtol, --atol, --max-steps)"))?;
    let init = match &args.init {
        Some(path) => {
            ensure_not_an_input(&args.particles.out, &[path])?;
            let points = read_csv(path)?;
            let values = points.values.iter().map(|&v| v as f32).collect();
            let init = Samples {
                dim: points.dim,
                values,
            };
            if let Some(n) = args.particles.n {
                anyhow::ensure!(
                    n == init.len(),
                    "-n {n}: --init {} has {} points, one per sample",
                    path.display(),
                    init.len()
                );
            }
            Some(init)
        }
        None => None,
    };
    let n = init.as_ref().map_or(args.particles.count(), Samples::len);
    let fitted = args
        .grid
        .as_deref()
        .map(tinyscore_host::schedule::read_grid)
        .transpose()?;
    let mut options = SampleOptions {
        sampler: args.sampler,
        steps: fitted.map_or(args.steps.unwrap_or(500), |g| g.grid.steps()),
        schedule: args.schedule.unwrap_or(ScheduleKind::Uniform),
        denoise: args.denoise,
        init: init.as_ref(),
        fitted: fitted.map(|g| g.grid),
        bespoke: fitted.and_then(|g| g.bespoke),
        n,
        first: 0,
        seed: args.particles.seed,
        threads: args.particles.threads,
        t_end: EXACT_T_END,
        adaptive,
        lower_order_final: args.lower_order_final,
    };
    anyhow::ensure!(options.n > 0, "-n must be at least 1");
    let out = &args.particles.out;
    match (&args.exact, &args.model) {
        (Some(exact), _) => {
            let mixture = tinyscore_host::data::mixture(exact)?;
            check_init_dim(&init, mixture.dim())?;
            let sde = args.sde.model_sde();
            write_samples(out, &options, mixture.dim(), |first, n, progress| {
                sample_exact(
                    &SampleOptions {
                        first,
                        n,
                        ..options
                    },
                    sde,
                    &mixture,
                    progress,
                )
            })?;
        }
        (None, Some(path)) => {
            ensure_not_an_input(out, &[path])?;
            let bytes = read(path)?;
            let model = parse(&bytes, path)?;
            options.t_end = model.header().t_end;
            let dim = model.header().dims.dim as usize;
            check_init_dim(&init, dim)?;
            write_samples(out, &options, dim, |first, n, progress| {
                let samples = sample_model(
                    model,
                    &SampleOptions {
                        first,
                        n,
                        ..options
                    },
                    progress,
                )?;
                if args.normalized {
                    Ok(samples)
                } else {
                    denormalize(&model, &samples)
                }
            })?;
        }
        (None, None) => anyhow::bail!("give --exact DATASET or --model MODEL.tsm"),
    }
    eprintln!("wrote {} samples to {}", options.n, out.display());
    Ok(())
}

/// Starting points must have the score's dimension.
fn check_init_dim(init: &Option<Samples>, dim: usize) -> Result<()> {
    if let Some(init) = init {
        anyhow::ensure!(
            init.dim == dim,
            "--init has {} coordinates, the score {dim}",
            init.dim
        );
    }
    Ok(())
}
