//! `tinyscore schedule`: a time grid fitted to a score and a sampler.

use super::outln;
use anyhow::Result;
use clap::ArgGroup;
use std::path::PathBuf;
use tinyscore::{ModelSde, Schedule};
use tinyscore_host::io::{ensure_not_an_input, write_atomically};
use tinyscore_host::model_file::{parse, read};
use tinyscore_host::progress::Progress;
use tinyscore_host::sampling::{
    at_points_exact, at_points_model, prior_draws, sample_exact, sample_model, SamplerKind, SdeKind,
};
use tinyscore_host::schedule::{fit, fit_bespoke, grid_times, Draw, FittedSchedule, Pointwise};

/// Fit a few-step time grid to a score and a deterministic sampler.
#[derive(clap::Args)]
#[command(group(ArgGroup::new("score").required(true).args(["exact", "model"])))]
pub struct Args {
    /// A model file (its SDE and end time come from the file).
    #[arg(long, value_name = "MODEL.tsm")]
    model: Option<PathBuf>,
    /// The closed-form score of a Gaussian mixture (`8gaussians` or a mixture .json), to
    /// t = 1e-3.
    #[arg(long, value_name = "DATASET")]
    exact: Option<String>,
    /// The forward process (with --exact).
    #[arg(long, value_enum, default_value = "vp", conflicts_with = "model")]
    sde: SdeKind,
    /// The deterministic sampler the grid is for (`bespoke`: UniPC's grid, and the bespoke
    /// solver's coefficients fitted on it).
    #[arg(long, value_enum)]
    sampler: SamplerKind,
    /// Score evaluations per sample (as many whole steps as fit).
    #[arg(long)]
    nfe: u32,
    /// Calibration draws (and as many held-out draws for the reported gain).
    #[arg(long, default_value_t = 512)]
    particles: usize,
    /// Seed of the calibration draws (the held-out ones use the next).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output: the grid as JSON, for `sample --grid` and `firmware … --grid`.
    #[arg(long)]
    out: PathBuf,
}

/// Where an exact score's grid ends.
const EXACT_T_END: f32 = 1e-3;

pub fn run(args: Args) -> Result<()> {
    anyhow::ensure!(args.particles > 0, "--particles must be at least 1");
    let silent = Progress::silent();
    eprintln!("fitting the grid …");
    let fit_for = |draw: &Draw<'_>, pointwise: &Pointwise<'_>, sde: ModelSde, t_end: f32| {
        if args.sampler == SamplerKind::Bespoke {
            fit_bespoke(
                draw,
                pointwise,
                sde,
                args.nfe,
                args.particles,
                args.seed,
                t_end,
            )
        } else {
            fit(
                draw,
                args.sampler,
                args.nfe,
                args.particles,
                args.seed,
                t_end,
                &|grid| grid_times(sde, t_end, Schedule::Fitted(*grid), grid.steps()),
            )
        }
    };
    let fitted: FittedSchedule = match (&args.model, &args.exact) {
        (Some(path), _) => {
            ensure_not_an_input(&args.out, &[path])?;
            let bytes = read(path)?;
            let model = parse(&bytes, path)?;
            let header = *model.header();
            let dim = header.dims.dim as usize;
            fit_for(
                &|o| sample_model(model, o, &silent),
                &Pointwise {
                    prior: &|seed, n| prior_draws(header.sde, dim, seed, n),
                    at: &|points, map| at_points_model(model, points, map),
                },
                header.sde,
                header.t_end,
            )?
        }
        (None, Some(exact)) => {
            let mixture = tinyscore_host::data::mixture(exact)?;
            let sde = args.sde.model_sde();
            fit_for(
                &|o| sample_exact(o, sde, &mixture, &silent),
                &Pointwise {
                    prior: &|seed, n| prior_draws(sde, mixture.dim(), seed, n),
                    at: &|points, map| at_points_exact(sde, &mixture, points, map),
                },
                sde,
                EXACT_T_END,
            )?
        }
        (None, None) => anyhow::bail!("give --model MODEL.tsm or --exact DATASET"),
    };
    write_atomically(&args.out, |w| {
        Ok(writeln!(w, "{}", serde_json::to_string_pretty(&fitted)?)?)
    })?;
    outln!(
        "{} with {} steps ({} evaluations): RMS error {:.3e} on held-out draws, against {:.3e} \
         on the best fixed grid ({}): {:.2}× smaller",
        fitted.sampler,
        fitted.steps,
        fitted.nfe,
        fitted.rms_error,
        fitted.best_fixed_rms_error,
        fitted.best_fixed_schedule,
        fitted.best_fixed_rms_error / fitted.rms_error
    );
    if let Some(unipc) = fitted.unipc_rms_error {
        outln!(
            "the grid is UniPC's fitted one, where UniPC has RMS error {unipc:.3e}: {:.2}× \
             larger",
            unipc / fitted.rms_error
        );
    }
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
