//! `tinyscore demo`: the whole pipeline in one command, with a markdown report of every figure.
//!
//! The pipeline: train a score network on two moons, quantize it to int8, sample both,
//! measure them against fresh data and the floor (two fresh draws), run the int8 model on the
//! Cortex-M4F in QEMU and compare its bits with the host's; then the 8-Gaussians mixture with
//! its exact score under every sampler family, and the imported PyTorch reference model.

use crate::data::Dataset;
use crate::io::{write_atomically, write_csv};
use crate::metrics::{compare, Metrics};
use crate::model_file::{denormalize, parse, read};
use crate::points::Points;
use crate::points::Samples;
use crate::progress::Progress;
use crate::sampling::{sample_exact, sample_model, SampleOptions, SamplerKind, ScheduleKind};
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
    let options = SampleOptions::uniform(SamplerKind::Em, 500, n, seed, network.t_end);
    let start = Instant::now();
    let samples = sample_file(&model_path, &options, false)?;
    let seconds = start.elapsed().as_secs_f64();
    write_csv(&out.join("moons_ref-em.csv"), &samples)?;
    let dataset = Dataset::Moons;
    let reference = dataset.sample(n, seed.wrapping_add(1));
    let metrics = compare(&samples.points(), &reference, &Progress::silent())?;
    let floor = compare(
        &dataset.sample(n, seed.wrapping_add(2)),
        &reference,
        &Progress::silent(),
    )?;
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

/// Samples on the chip in the demo: enough to compare bits, few enough to take seconds.
const FIRMWARE_PARTICLES: usize = 200;
/// Euler–Maruyama steps on the chip.
const FIRMWARE_STEPS: u32 = 100;

/// Trains on moons with `tinyscore train`'s defaults, quantizes, samples f32 and int8 with
/// Euler–Maruyama (500 steps), and runs the int8 model on the Cortex-M4F in QEMU.
fn trained_section(out: &Path, n: usize, seed: u64) -> Result<String> {
    use crate::train::{train, TrainConfig, TrainState, TrainingData};
    let dataset = Dataset::Moons;
    let config = TrainConfig {
        seed,
        ..TrainConfig::default()
    };
    let points = dataset.sample(1 << 16, seed);
    let start = Instant::now();
    let mut state = TrainState::new(config.clone(), &points)?;
    let data = TrainingData::new(&state, &points)?;
    let never = std::sync::atomic::AtomicBool::new(false);
    train(&mut state, &data, 0, &never, |_, _| {}, |_| Ok(()))?;
    let train_seconds = start.elapsed().as_secs_f64();
    let network = state.network()?;
    let float_path = out.join("moons.tsm");
    network.write(&float_path)?;
    eprintln!(
        "  trained {} steps in {train_seconds:.1} s (loss {:.4})",
        config.steps, state.last_loss
    );

    let int8_path = out.join("moons-int8.tsm");
    let calibration = 16384;
    let report = crate::quantize::quantize_file(
        &float_path,
        &dataset.sample(calibration, seed.wrapping_add(3)),
        calibration,
        10_000,
        seed,
        Some(crate::quantize::ActivationWidth::Int8),
        tinyscore::model::Rounding::Double,
        &int8_path,
    )?;
    eprintln!(
        "  int8: ε̂ within {:.2}% RMS of f32",
        100.0 * report.relative_rms_error
    );

    let reference = dataset.sample(n, seed.wrapping_add(1));
    let floor = compare(
        &dataset.sample(n, seed.wrapping_add(2)),
        &reference,
        &Progress::silent(),
    )?;
    let mut rows = String::new();
    let mut sw2 = Vec::new();
    for (name, path) in [("f32", &float_path), ("int8", &int8_path)] {
        let options = SampleOptions::uniform(SamplerKind::Em, 500, n, seed, config.t_end);
        let start = Instant::now();
        let samples = sample_file(path, &options, true)?;
        let seconds = start.elapsed().as_secs_f64();
        write_csv(&out.join(format!("moons-{name}-em.csv")), &samples)?;
        let m = compare(&samples.points(), &reference, &Progress::silent())?;
        eprintln!(
            "  moons {name:<4} EM 500 steps  sw2 {:.4}  ({seconds:.2} s)",
            m.sw2
        );
        let _ = writeln!(
            rows,
            "| {name} | {:.4} | {:.5} | {:.6} | {seconds:.2} |",
            m.sw2, m.energy, m.mmd2
        );
        sw2.push(m.sw2);
    }
    let _ = writeln!(
        rows,
        "| *floor* | {:.4} | {:.5} | {:.6} | |",
        floor.sw2, floor.energy, floor.mmd2
    );
    let few_step = few_step_section(out, [&float_path, &int8_path], &reference, &sw2, n, seed)?;
    let firmware = firmware_line(out, &int8_path, seed)?;
    let likelihood = likelihood_lines(&float_path, seed)?;
    let plots = plot_model(out, &float_path, &reference, seed)?;
    Ok(format!(
        "\n## Two moons: train, quantize, sample, run on the chip\n\n\
         `tinyscore train --data moons` defaults ({} steps, the last {} quantization-aware, \
         batch {}, 34→{}→{}→2, lr {} with cosine decay, AdamW {}, EMA {}): \
         **{train_seconds:.1} s**, final loss {:.4}. `tinyscore quantize`, keeping the trained \
         activation ranges: ε̂ of the int8 model within **{:.2}%** RMS of f32 over 10⁴ fresh \
         diffused points ({:.1}% at t ≤ 0.02).\n\n{n} samples by Euler–Maruyama (500 steps) against {n} \
         fresh moons points:\n\n| model | sw2 | energy | mmd2 | seconds |\n\
         |---|---:|---:|---:|---:|\n{rows}\nint8 / f32 sw2: **{:.2}**.\n\n{firmware}\n\n\
         {few_step}\n\n{likelihood}\n\n{plots}\n",
        config.steps,
        config.qat_steps,
        config.batch,
        config.hidden,
        config.hidden,
        config.lr,
        config.weight_decay,
        config.ema_decay,
        state.last_loss,
        100.0 * report.relative_rms_error,
        100.0 * report.small_t_relative_rms_error,
        sw2[1] / sw2[0],
    ))
}

/// The few-step sampler of the demo, and its numbers of score evaluations.
const FEW_STEP_SAMPLER: SamplerKind = SamplerKind::Unipc;
const FEW_STEP_NFES: [u32; 3] = [5, 10, 20];

/// The bespoke solver's evaluations for the chip's goal.
const BESPOKE_NFE: u32 = 7;

/// The moons models (f32, int8) sampled with [`FEW_STEP_SAMPLER`] on grids fitted to each
/// (`tinyscore schedule`) at [`FEW_STEP_NFES`] evaluations, measured beside Euler–Maruyama
/// with 500 steps (`em_sw2`), with the chip's instructions per int8 sample for each grid.
fn few_step_section(
    out: &Path,
    models: [&Path; 2],
    reference: &Points,
    em_sw2: &[f64],
    n: usize,
    seed: u64,
) -> Result<String> {
    use crate::firmware::{count, FirmwareRun, Sink};
    let silent = Progress::silent();
    let grids_dir = out.join("grids");
    std::fs::create_dir_all(&grids_dir)
        .with_context(|| format!("cannot create {}", grids_dir.display()))?;
    // Grids and coefficients are fitted on draws other than the samples measured.
    let fit_seed = seed.wrapping_add(2);
    let mut rows = String::new();
    let mut int8_panels = Vec::new();
    let mut int8_grids = Vec::new();
    for ((name, path), em) in ["f32", "int8"].iter().zip(models).zip(em_sw2) {
        let bytes = read(path)?;
        let model = parse(&bytes, path)?;
        let t_end = model.header().t_end;
        let draw = |o: &SampleOptions| sample_model(model, o, &silent);
        let mut cells = String::new();
        for nfe in FEW_STEP_NFES {
            let fitted =
                crate::schedule::fit(&draw, FEW_STEP_SAMPLER, nfe, 512, fit_seed, t_end, &|_| {
                    Vec::new()
                })?;
            let grid = tinyscore::FittedGrid::new(&fitted.interior)?;
            let grid_path = grids_dir.join(format!("moons-{name}-nfe{nfe}.json"));
            write_atomically(&grid_path, |w| {
                Ok(writeln!(w, "{}", serde_json::to_string_pretty(&fitted)?)?)
            })?;
            let options = SampleOptions {
                fitted: Some(grid),
                ..SampleOptions::uniform(FEW_STEP_SAMPLER, grid.steps(), n, seed, t_end)
            };
            let samples = denormalize(&model, &draw(&options)?)?;
            let sw2 = compare(&samples.points(), reference, &silent)?.sw2;
            eprintln!(
                "  moons {name:<4} {} NFE {nfe:>2} (fitted grid)  sw2 {sw2:.4}",
                FEW_STEP_SAMPLER.name()
            );
            let _ = write!(cells, " {sw2:.4} |");
            if *name == "int8" {
                int8_panels.push((samples.points(), format!("NFE {nfe}")));
                int8_grids.push((nfe, grid));
            }
        }
        let _ = writeln!(rows, "| {name} |{cells} {em:.4} |");
    }
    let em = crate::io::read_csv(&out.join("moons-int8-em.csv"))?;
    int8_panels.push((em, "Euler–Maruyama, 500 steps".to_owned()));
    let picture = "plots/few-step.png";
    let sets: Vec<_> = int8_panels
        .iter()
        .map(|(points, title)| (points, crate::plot::SAMPLES, title.as_str()))
        .collect();
    crate::plot::point_panels(&out.join(picture), reference, &sets)?;

    // The chip's goal: the int8 model in at most 64 000 instructions a sample, within 1.2× the
    // f32 model's Euler–Maruyama sw2, by the bespoke solver fitted to it in 7 evaluations.
    let bytes = read(models[1])?;
    let model = parse(&bytes, models[1])?;
    let header = *model.header();
    let draw = |o: &SampleOptions| sample_model(model, o, &silent);
    let dim = header.dims.dim as usize;
    let pointwise = crate::schedule::Pointwise {
        prior: &|seed, n| crate::sampling::prior_draws(header.sde, dim, seed, n),
        at: &|points, map| crate::sampling::at_points_model(model, points, map),
    };
    let fitted = crate::schedule::fit_bespoke(
        &draw,
        &pointwise,
        header.sde,
        BESPOKE_NFE,
        512,
        fit_seed,
        header.t_end,
    )?;
    let grid_path = grids_dir.join(format!("moons-int8-bespoke-nfe{BESPOKE_NFE}.json"));
    write_atomically(&grid_path, |w| {
        Ok(writeln!(w, "{}", serde_json::to_string_pretty(&fitted)?)?)
    })?;
    let bespoke = crate::schedule::read_grid(&grid_path)?;
    let options = SampleOptions {
        fitted: Some(bespoke.grid),
        bespoke: bespoke.bespoke,
        ..SampleOptions::uniform(SamplerKind::Bespoke, BESPOKE_NFE, n, seed, header.t_end)
    };
    let samples = denormalize(&model, &draw(&options)?)?;
    let bespoke_sw2 = compare(&samples.points(), reference, &silent)?.sw2;
    eprintln!("  moons int8 bespoke NFE {BESPOKE_NFE} (fitted)  sw2 {bespoke_sw2:.4}");
    let mut bespoke_line = format!(
        "The bespoke solver (`tinyscore schedule --sampler bespoke`: coefficients fitted to the \
         int8 model on UniPC's grid) in {BESPOKE_NFE} evaluations: sw2 {bespoke_sw2:.4}, \
         against 1.2 × {:.4} = {:.4} for the f32 model's Euler–Maruyama",
        em_sw2[0],
        1.2 * em_sw2[0]
    );

    let mut chip = String::new();
    if qemu_available() {
        let to_file = |grid| crate::schedule::GridFile {
            grid,
            bespoke: None,
        };
        // The table's runs, then the bespoke solver's.
        let runs = int8_grids
            .iter()
            .map(|(nfe, grid)| {
                let label = format!("{} NFE {nfe}", FEW_STEP_SAMPLER.name());
                (label, FEW_STEP_SAMPLER, Some(to_file(*grid)))
            })
            .chain([
                ("em 500".to_owned(), SamplerKind::Em, None),
                (
                    format!("bespoke NFE {BESPOKE_NFE}"),
                    SamplerKind::Bespoke,
                    Some(bespoke),
                ),
            ]);
        let mut cells = String::new();
        for (label, sampler, fitted) in runs {
            let counts = count(&FirmwareRun {
                model: models[1].to_path_buf(),
                sampler,
                steps: fitted.map_or(500, |g| g.grid.steps()),
                schedule: ScheduleKind::Uniform,
                fitted,
                lower_order_final: false,
                particles: 16,
                seed,
                sink: Sink::Defmt,
                likelihood: None,
            })?;
            eprintln!(
                "  chip: int8 {label}: {:.0} instructions a sample",
                counts.per_sample
            );
            let (instructions, ms) = (counts.per_sample, counts.per_sample / 64e3);
            if sampler == SamplerKind::Bespoke {
                let _ = write!(
                    bespoke_line,
                    "; {instructions:.0} instructions a sample on the Cortex-M4F ({ms:.2} ms \
                     at 64 MHz)"
                );
            } else {
                let _ = write!(cells, " {instructions:.0} ({ms:.2} ms) |");
            }
        }
        chip = format!("| Cortex-M4F, int8: instructions a sample (ms at 64 MHz) |{cells}\n");
    }
    Ok(format!(
        "### Few-step sampling\n\n{} ({}) on time grids fitted to each model \
         (`tinyscore schedule --model M --sampler {} --nfe K`, written to `grids/`), {n} \
         samples each, sw2 against the same moons points, beside Euler–Maruyama with 500 steps:\n\n\
         | | NFE 5 | NFE 10 | NFE 20 | EM 500 |\n|---|---:|---:|---:|---:|\n{rows}{chip}\n\
         {bespoke_line}.\n\n\
         The int8 model's samples at 5, 10 and 20 evaluations and with Euler–Maruyama:\n\n\
         ![few-step samples]({picture})",
        FEW_STEP_SAMPLER.name(),
        "UniPC with its corrector",
        FEW_STEP_SAMPLER.name(),
    ))
}

/// Whether `qemu-system-arm` runs.
fn qemu_available() -> bool {
    std::process::Command::new("qemu-system-arm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Draws the f32 model (`tinyscore plot`) into `out/plots`; returns the report's lines.
fn plot_model(out: &Path, model: &Path, data: &Points, seed: u64) -> Result<String> {
    let bytes = read(model)?;
    let samples = crate::io::read_csv(&out.join("moons-f32-em.csv"))?;
    let dir = out.join("plots");
    let files = crate::plot::all_for_model(&dir, data, &samples, parse(&bytes, model)?, seed)?;
    eprintln!("  plots: {}", dir.display());
    Ok(files
        .iter()
        .filter_map(|f| f.file_name())
        .map(|name| {
            let name = name.to_string_lossy();
            format!("![{name}](plots/{name})")
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Runs the int8 model on the Cortex-M4F in QEMU and compares its bits with the host's, or
/// says why it could not run.
fn firmware_line(out: &Path, model: &Path, seed: u64) -> Result<String> {
    use crate::firmware::{run, Board, FirmwareRun};
    if !qemu_available() {
        eprintln!("  firmware: QEMU is missing (apt-get install qemu-system-arm); not run");
        return Ok("The firmware step did not run: `qemu-system-arm` is not installed (`cargo xtask setup` installs it, or `apt-get install qemu-system-arm`)."
            .into());
    }
    let start = Instant::now();
    let chip = run(
        Board::QemuM4,
        &FirmwareRun {
            model: model.to_path_buf(),
            sampler: SamplerKind::Em,
            steps: FIRMWARE_STEPS,
            schedule: ScheduleKind::Uniform,
            fitted: None,
            lower_order_final: false,
            particles: FIRMWARE_PARTICLES,
            seed,
            sink: crate::firmware::Sink::Defmt,
            likelihood: None,
        },
    )?;
    let seconds = start.elapsed().as_secs_f64();
    let bytes = read(model)?;
    let parsed = parse(&bytes, model)?;
    let options = SampleOptions::uniform(
        SamplerKind::Em,
        FIRMWARE_STEPS,
        FIRMWARE_PARTICLES,
        seed,
        parsed.header().t_end,
    );
    let host = sample_model(parsed, &options, &Progress::silent())?;
    let identical = chip.dim == host.dim
        && chip.values.len() == host.values.len()
        && chip
            .values
            .iter()
            .zip(&host.values)
            .all(|(a, b)| a.to_bits() == b.to_bits());
    eprintln!(
        "  firmware: {FIRMWARE_PARTICLES} int8 samples on the Cortex-M4F (QEMU), bit-identical \
         to the host: {identical} ({seconds:.1} s with the build)"
    );
    anyhow::ensure!(
        identical,
        "the firmware's samples differ from the host's: see {}",
        model.display()
    );
    // Host (left, blue) beside chip (right, red), in data units.
    let to_data = |xs: &Samples| -> Result<Points> { Ok(denormalize(&parsed, xs)?.points()) };
    let picture = "plots/host-vs-chip.png";
    crate::plot::data_and_samples(
        &out.join(picture),
        &to_data(&host)?,
        &to_data(&chip)?,
        ["host (x86-64)", "chip (Cortex-M4F in QEMU)"],
    )?;
    Ok(format!(
        "The int8 model on the Cortex-M4F (QEMU `mps2-an386`, `tinyscore firmware run --board \
         qemu-m4`): {FIRMWARE_PARTICLES} samples, Euler–Maruyama {FIRMWARE_STEPS} steps, \
         **bit-identical to the host's** ({seconds:.1} s including the firmware build). Host \
         (left) and chip (right):\n\n![host and chip]({picture})"
    ))
}

/// Log-likelihoods under the f32 model of points on the data and off it, on the host and on
/// the Cortex-M4F in QEMU (`tinyscore firmware run --task likelihood`): the same bits, and an
/// anomaly score a chip can compute.
fn likelihood_lines(model: &Path, seed: u64) -> Result<String> {
    use crate::firmware::{likelihood, Board, FirmwareRun, LikelihoodTask};
    use crate::likelihood::{model_end_log_density, model_likelihood, LikelihoodOptions};
    let on_data = Dataset::Moons.sample(3, seed.wrapping_add(4));
    let off_data = [[0.0, 0.0], [0.0, 3.0], [2.0, 2.0]];
    let mut values = on_data.values.clone();
    values.extend(off_data.iter().flatten());
    let points = Points { dim: 2, values };
    let options = LikelihoodOptions {
        rtol: 1e-5,
        atol: 1e-5,
        max_steps: 10_000,
        hutchinson: None,
        seed,
        threads: 0,
    };
    let bytes = read(model)?;
    let parsed = parse(&bytes, model)?;
    let host = model_likelihood(parsed, &points, &options, &Progress::silent())?;
    let qemu = std::process::Command::new("qemu-system-arm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let chip = if qemu {
        let run = FirmwareRun {
            model: model.to_path_buf(),
            sampler: SamplerKind::Em,
            steps: 1,
            schedule: ScheduleKind::Uniform,
            fitted: None,
            lower_order_final: false,
            particles: 1,
            seed,
            sink: crate::firmware::Sink::Defmt,
            likelihood: Some(LikelihoodTask {
                points: Samples {
                    dim: 2,
                    values: points.values.iter().map(|&v| v as f32).collect(),
                },
                rtol: options.rtol,
                atol: options.atol,
                max_steps: options.max_steps,
            }),
        };
        let chip = likelihood(Board::QemuM4, &run)?;
        let log_p: Vec<f64> = chip
            .iter()
            .map(|c| model_end_log_density(&parsed, &c.latent) + c.delta_log_p as f64)
            .collect();
        Some(log_p)
    } else {
        None
    };
    let mut rows = String::new();
    for (k, (row, host)) in points.rows().zip(&host).enumerate() {
        let place = if k < 3 { "on the data" } else { "off the data" };
        let chip = chip.as_ref().map_or("(QEMU missing)".to_string(), |c| {
            let same = if c[k].to_bits() == host.log_p.to_bits() {
                "identical"
            } else {
                "DIFFERS"
            };
            format!("{:.4} ({same})", c[k])
        });
        let _ = writeln!(
            rows,
            "| ({:.2}, {:.2}) | {place} | {:.4} | {chip} | {} |",
            row[0], row[1], host.log_p, host.nfe
        );
    }
    if let Some(chip) = &chip {
        let identical = chip
            .iter()
            .zip(&host)
            .all(|(c, h)| c.to_bits() == h.log_p.to_bits());
        eprintln!("  likelihood: 6 points on the Cortex-M4F (QEMU), bit-identical to the host: {identical}");
        anyhow::ensure!(
            identical,
            "the chip's log-likelihoods differ from the host's"
        );
    }
    Ok(format!(
        "Log-likelihoods under the f32 model by the probability-flow ODE (`tinyscore \
         likelihood`, Dormand–Prince rtol = atol = 10⁻⁵, exact divergence), on the host and on \
         the Cortex-M4F (`tinyscore firmware run --task likelihood`): an anomaly score on the \
         chip.\n\n| point | | log p, host | log p, chip | evaluations |\n|---|---|---:|---:|---:|\n{rows}"
    ))
}

/// The SDE of the exact-score runs.
fn vp() -> tinyscore::ModelSde {
    tinyscore::ModelSde::Vp(tinyscore::VpSde::default())
}

/// Samples the model file `path` (read and parsed once), in data units when `data_units`.
fn sample_file(path: &Path, options: &SampleOptions, data_units: bool) -> Result<Samples> {
    let bytes = read(path)?;
    let model = parse(&bytes, path)?;
    let samples = sample_model(model, options, &Progress::silent())?;
    if data_units {
        denormalize(&model, &samples)
    } else {
        Ok(samples)
    }
}

/// Runs the demo, writing samples and `report.md` into `out`; returns the report's text.
pub fn run(out: &Path, n: usize, seed: u64) -> Result<String> {
    // Checked before any work: the metrics compare at least two points.
    anyhow::ensure!(n >= 2, "-n must be at least 2");
    anyhow::ensure!(
        !out.exists() || out.is_dir(),
        "--out {} is a file: the demo writes a directory",
        out.display()
    );
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let trained = trained_section(out, n, seed)?;
    let dataset = Dataset::EightGaussians;
    let reference = dataset.sample(n, seed.wrapping_add(1));
    let floor = compare(
        &dataset.sample(n, seed.wrapping_add(2)),
        &reference,
        &Progress::silent(),
    )?;
    let mixture = dataset.mixture().context("8gaussians is a mixture")?;
    let mut rows = Vec::new();
    for (sampler, steps) in DEMO_RUNS {
        let options = SampleOptions::uniform(sampler, steps, n, seed, 1e-3);
        let start = Instant::now();
        let samples = sample_exact(&options, vp(), &mixture, &Progress::silent())?;
        let seconds = start.elapsed().as_secs_f64();
        write_csv(
            &out.join(format!("8gaussians-{}.csv", sampler.name())),
            &samples,
        )?;
        let metrics = compare(&samples.points(), &reference, &Progress::silent())?;
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
    let mut report = String::from("# tinyscore demo\n");
    report.push_str(&trained);
    report.push_str(&render(n, seed, &floor, &rows));
    report.push_str(&reference_section(out, n, seed)?);
    write_atomically(&out.join("report.md"), |w| {
        Ok(w.write_all(report.as_bytes())?)
    })?;
    Ok(report)
}

fn render(n: usize, seed: u64, floor: &Metrics, rows: &[DemoRow]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n## 8-Gaussians with the exact score\n");
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
