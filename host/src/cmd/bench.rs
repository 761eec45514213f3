//! `tinyscore bench`: the throughput figures of `BENCHMARKS.md`.

use super::outln;
use anyhow::Result;
use std::path::PathBuf;
use tinyscore_host::bench::{few_step_accuracy, MoonsModels, ACCURACY_SAMPLERS};
use tinyscore_host::data::Dataset;
use tinyscore_host::model_file::read;
use tinyscore_host::progress::Progress;
use tinyscore_host::sampling::SamplerKind;

/// Samples per entry and moons points of `--accuracy --moons`.
const MOONS_SAMPLES: usize = 5000;

/// Measure throughput (one thread).
#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Seconds per figure (more than 0, at most 600).
    #[arg(long, allow_negative_numbers = true, default_value_t = 2.0)]
    seconds: f64,
    /// Instead of throughput: the RMS error of every deterministic sampler on the uniform,
    /// Karras, log-SNR and fitted grids at 5, 10, 20 and 50 score evaluations against a
    /// converged solution from the same 1000 starting points (exact 8-Gaussians score), as a
    /// markdown table (or JSON).
    #[arg(long)]
    accuracy: bool,
    /// With --accuracy: also sample this f32 moons model and --moons-int8 (5000 samples an
    /// entry) and measure their sw2 against 5000 moons points.
    #[arg(long, value_name = "MODEL.tsm", requires = "moons_int8")]
    moons: Option<PathBuf>,
    /// The int8 moons model of --moons.
    #[arg(long, value_name = "MODEL.tsm", requires = "moons")]
    moons_int8: Option<PathBuf>,
    /// With --accuracy: only these samplers' rows (repeat the flag; default: every
    /// deterministic sampler and the bespoke solver).
    #[arg(long, value_enum, requires = "accuracy")]
    sampler: Vec<SamplerKind>,
}

pub fn run(args: Args) -> Result<()> {
    if args.accuracy {
        let moons = match (&args.moons, &args.moons_int8) {
            (Some(f32), Some(int8)) => Some(MoonsModels {
                f32: read(f32)?,
                int8: read(int8)?,
                samples: MOONS_SAMPLES,
                reference: Dataset::Moons.sample(MOONS_SAMPLES, 1),
            }),
            _ => None,
        };
        let samplers: Vec<SamplerKind> = if args.sampler.is_empty() {
            ACCURACY_SAMPLERS.to_vec()
        } else {
            args.sampler.clone()
        };
        if let Some(s) = samplers.iter().find(|s| !ACCURACY_SAMPLERS.contains(s)) {
            anyhow::bail!(
                "--sampler {}: the accuracy table has the deterministic grid samplers and \
                 bespoke",
                s.name()
            );
        }
        return accuracy(&samplers, moons.as_ref(), args.json);
    } else if args.moons.is_some() {
        anyhow::bail!("--moons applies to --accuracy");
    }
    anyhow::ensure!(
        args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= 600.0,
        "--seconds {}: give a duration of more than 0 and at most 600 seconds",
        args.seconds
    );
    let report = tinyscore_host::bench::run(args.seconds);
    if args.json {
        outln!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    outln!(
        "Euler–Maruyama, exact 8-Gaussians score: {:.3e} particle-steps/s",
        report.em_particle_steps_per_s
    );
    outln!(
        "Box–Muller Gaussians:                    {:.3e} /s (one stream), {:.3e} /s (64 streams together)",
        report.gaussians_per_s,
        report.batched_gaussians_per_s
    );
    outln!(
        "score network 34→64→64→2, f32, batch 5000: {:.3e} evaluations/s",
        report.score_evals_per_s
    );
    outln!(
        "score network 34→64→64→2, int8, batch 5000: {:.3e} evaluations/s",
        report.int8_score_evals_per_s
    );
    outln!(
        "training 34→64→64→2, batch 512, one thread: {:.0} steps/s ({:.1} GFLOP/s)",
        report.train_steps_per_s,
        report.train_gflops
    );
    outln!(
        "the same, quantization-aware:            {:.0} steps/s",
        report.qat_steps_per_s
    );
    if let Some(peak) = report.peak_gflops {
        outln!("one core's f32 FMA peak:                 {peak:.1} GFLOP/s");
    }
    Ok(())
}

fn accuracy(samplers: &[SamplerKind], moons: Option<&MoonsModels>, json: bool) -> Result<()> {
    let nfes = [5, 10, 20, 50];
    let progress = Progress::new(
        "accuracy",
        (nfes.len() * samplers.len()) as u64,
        "sampler-NFE",
    );
    let table = few_step_accuracy(samplers, &nfes, 1000, true, moons, &progress)?;
    progress.finish();
    if json {
        outln!("{}", serde_json::to_string(&table)?);
        return Ok(());
    }
    let sw2 = |v: Option<f64>| v.map_or(String::new(), |v| format!(" {v:.4} |"));
    let moons_header = if moons.is_some() {
        " sw2 f32 | sw2 int8 |"
    } else {
        ""
    };
    let moons_rule = if moons.is_some() { "---:|---:|" } else { "" };
    outln!("| sampler | grid | NFE | RMS error |{moons_header}");
    outln!("|---|---|---:|---:|{moons_rule}");
    for row in &table {
        let lower = if row.lower_order_final {
            " + lower-order final"
        } else {
            ""
        };
        outln!(
            "| {}{lower} | {} | {} | {:.2e} |{}{}",
            row.sampler.name(),
            row.grid,
            row.nfe,
            row.rms_error,
            sw2(row.moons_sw2_f32),
            sw2(row.moons_sw2_int8)
        );
    }
    Ok(())
}
