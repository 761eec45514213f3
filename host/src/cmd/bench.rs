//! `tinyscore bench`: the throughput figures of `BENCHMARKS.md`.

use super::outln;
use anyhow::Result;

/// Measure throughput (one thread).
#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Seconds per figure (more than 0, at most 600).
    #[arg(long, allow_negative_numbers = true, default_value_t = 2.0)]
    seconds: f64,
    /// Instead of throughput: the RMS error of every deterministic sampler and fixed grid at
    /// 5, 10, 20 and 50 score evaluations against a converged solution from the same 1000
    /// starting points (exact 8-Gaussians score), as a markdown table (or JSON).
    #[arg(long)]
    accuracy: bool,
}

pub fn run(args: Args) -> Result<()> {
    if args.accuracy {
        return accuracy(args.json);
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
    if let Some(peak) = report.peak_gflops {
        outln!("one core's f32 FMA peak:                 {peak:.1} GFLOP/s");
    }
    Ok(())
}

fn accuracy(json: bool) -> Result<()> {
    let table = tinyscore_host::bench::few_step_accuracy(&[5, 10, 20, 50], 1000)?;
    if json {
        outln!("{}", serde_json::to_string(&table)?);
        return Ok(());
    }
    outln!("| sampler | grid | NFE | RMS error |");
    outln!("|---|---|---:|---:|");
    for row in &table {
        let grid = serde_json::to_value(row)?["schedule"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        outln!(
            "| {} | {grid} | {} | {:.2e} |",
            row.sampler.name(),
            row.nfe,
            row.rms_error
        );
    }
    Ok(())
}
