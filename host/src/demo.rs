//! `tinyscore demo`: the whole pipeline in one command, with a markdown report of every figure.
//!
//! Today the pipeline samples the 8-Gaussians mixture with its exact score under the VP-SDE
//! with every sampler family and measures each against fresh data and against the floor
//! (two fresh draws). Training, quantization and the firmware join as they land.

use crate::datasets::{Dataset, Points};
use crate::io::{write_atomically, write_csv};
use crate::metrics::{compare, Metrics};
use crate::options::{
    sample_2d, ExactMixture, NetworkScore, SampleOptions, SamplerKind, ScheduleKind, SdeKind,
};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

/// One sampler's row of the report.
pub struct DemoRow {
    /// The sampler.
    pub sampler: SamplerKind,
    /// Its steps.
    pub steps: u32,
    /// Metrics against fresh data.
    pub metrics: Metrics,
    /// Wall time of sampling.
    pub seconds: f64,
}

/// The samplers the demo runs, with their step counts.
pub const DEMO_RUNS: [(SamplerKind, u32); 7] = [
    (SamplerKind::Em, 1000),
    (SamplerKind::Pc, 1000),
    (SamplerKind::Ancestral, 1000),
    (SamplerKind::Ald, 1000),
    (SamplerKind::OdeHeun, 100),
    (SamplerKind::Ddim, 100),
    (SamplerKind::Dpm2, 50),
];

/// The reference PyTorch model, if `../shared/reference/` is beside the checkout.
fn reference_model() -> Option<std::path::PathBuf> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference/moons_ref.safetensors");
    path.exists().then_some(path)
}

/// Imports the reference moons model, samples it (Euler–Maruyama, 500 steps) and measures it
/// in the standardized coordinates of the `moons` dataset (the model's own).
fn reference_section(out: &Path, n: usize, seed: u64) -> Result<String> {
    let Some(path) = reference_model() else {
        return Ok("The reference model (../shared/reference/moons_ref.safetensors) was not found: its section is skipped.\n".into());
    };
    let network = crate::model_file::import_safetensors_file(&path, 1e-3)?;
    let model_path = out.join("moons_ref.tsm");
    network.write(&model_path)?;
    let (score, sde) = NetworkScore::load(&model_path)?;
    let options = SampleOptions {
        sampler: SamplerKind::Em,
        sde: SdeKind::Vp,
        steps: 500,
        schedule: ScheduleKind::Uniform,
        denoise: false,
        n,
        seed,
        threads: 0,
        t_end: network.t_end,
    };
    let start = Instant::now();
    let samples = score.sample(sde, &options, false)?;
    let seconds = start.elapsed().as_secs_f64();
    write_csv(&out.join("moons_ref-em.csv"), &samples)?;
    let dataset = Dataset::Moons;
    let reference = dataset.sample(n, seed.wrapping_add(1));
    let metrics = compare(&Points::from_rows(&samples), &reference)?;
    let floor = compare(&dataset.sample(n, seed.wrapping_add(2)), &reference)?;
    eprintln!(
        "  moons_ref  EM 500 steps  sw2 {:.4} (floor {:.4})  ({seconds:.2} s)",
        metrics.sw2, floor.sw2
    );
    Ok(format!(
        "\n## The PyTorch reference model\n\n`moons_ref.safetensors` imported to `.tsm`, {n} samples by \
         Euler–Maruyama (500 steps) in its standardized coordinates, against {n} fresh moons points. \
         The reference README reports sw2 ≈ 0.08 for this model and sampler.\n\n\
         | | sw2 | energy | mmd2 | seconds |\n|---|---:|---:|---:|---:|\n\
         | moons_ref, em 500 | {:.4} | {:.5} | {:.6} | {seconds:.2} |\n| *floor* | {:.4} | {:.5} | {:.6} | |\n",
        metrics.sw2, metrics.energy, metrics.mmd2, floor.sw2, floor.energy, floor.mmd2
    ))
}

/// Runs the demo, writing samples and `report.md` into `out`; returns the report's text.
pub fn run(out: &Path, n: usize, seed: u64) -> Result<String> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let dataset = Dataset::EightGaussians;
    let reference = dataset.sample(n, seed.wrapping_add(1));
    let floor = compare(&dataset.sample(n, seed.wrapping_add(2)), &reference)?;
    let score = ExactMixture(dataset.mixture().context("8gaussians is a mixture")?);
    let mut rows = Vec::new();
    for (sampler, steps) in DEMO_RUNS {
        let options = SampleOptions {
            sampler,
            sde: SdeKind::Vp,
            steps,
            schedule: ScheduleKind::Uniform,
            denoise: false,
            n,
            seed,
            threads: 0,
            t_end: 1e-3,
        };
        let start = Instant::now();
        let samples = sample_2d(&options, &score)?;
        let seconds = start.elapsed().as_secs_f64();
        write_csv(
            &out.join(format!("8gaussians-{}.csv", sampler.name())),
            &samples,
        )?;
        let metrics = compare(&Points::from_rows(&samples), &reference)?;
        eprintln!(
            "  {:<10} {:>5} steps  sw2 {:.4}  energy {:.5}  mmd2 {:.6}  ({:.2} s)",
            sampler.name(),
            steps,
            metrics.sw2,
            metrics.energy,
            metrics.mmd2,
            seconds
        );
        rows.push(DemoRow {
            sampler,
            steps,
            metrics,
            seconds,
        });
    }
    let mut report = render(n, seed, &floor, &rows);
    report.push_str(&reference_section(out, n, seed)?);
    write_atomically(&out.join("report.md"), |w| {
        Ok(w.write_all(report.as_bytes())?)
    })?;
    Ok(report)
}

fn render(n: usize, seed: u64, floor: &Metrics, rows: &[DemoRow]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# tinyscore demo\n");
    let _ = writeln!(
        s,
        "8-Gaussians (std 0.1) with its exact score under the VP-SDE (β 0.1 → 20), t from 1 to \
         10⁻³, {n} samples (seed {seed}) against {n} fresh points. The floor is the same metric \
         between two fresh draws.\n"
    );
    let _ = writeln!(s, "| sampler | steps | sw2 | energy | mmd2 | seconds |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {:.4} | {:.5} | {:.6} | {:.2} |",
            r.sampler.name(),
            r.steps,
            r.metrics.sw2,
            r.metrics.energy,
            r.metrics.mmd2,
            r.seconds
        );
    }
    let _ = writeln!(
        s,
        "| *floor* | | {:.4} | {:.5} | {:.6} | |",
        floor.sw2, floor.energy, floor.mmd2
    );
    s
}
