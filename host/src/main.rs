//! `tinyscore`: sample, evaluate and benchmark score-based generative models on the desktop.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tinyscore_host::datasets::Dataset;
use tinyscore_host::io::{read_csv, write_csv};
use tinyscore_host::metrics::compare;
use tinyscore_host::model_file::{
    import_safetensors_file, write_rust_include, write_safetensors, ExportFormat, Network,
};
use tinyscore_host::options::{
    sample_2d, ExactMixture, NetworkScore, SampleOptions, SamplerKind, ScheduleKind, SdeKind,
};
use tinyscore_host::{bench, datasets, demo, firmware, quantize};

#[derive(Parser)]
#[command(
    name = "tinyscore",
    version,
    about = "Score-based generative models, from the desktop to a microcontroller"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Draw samples by integrating the reverse-time dynamics.
    #[command(group(clap::ArgGroup::new("score").required(true).args(["exact", "model"])))]
    Sample {
        /// Use the closed-form score of a Gaussian-mixture dataset (8gaussians).
        #[arg(long, value_name = "DATASET")]
        exact: Option<String>,
        /// Use a model file's network (its SDE and end time come from the file).
        #[arg(long, value_name = "MODEL.tsm")]
        model: Option<PathBuf>,
        /// With --model: write the model's normalised coordinates instead of data units.
        #[arg(long, requires = "model")]
        normalized: bool,
        /// The forward process (with --exact).
        #[arg(long, value_enum, default_value = "vp")]
        sde: SdeKind,
        /// The sampler.
        #[arg(long, value_enum, default_value = "em")]
        sampler: SamplerKind,
        /// Steps of the time grid.
        #[arg(long, default_value_t = 500)]
        steps: u32,
        /// Spacing of the time grid.
        #[arg(long, value_enum, default_value = "uniform")]
        schedule: ScheduleKind,
        /// Finish with Tweedie's denoising step.
        #[arg(long)]
        denoise: bool,
        /// Number of samples.
        #[arg(short, default_value_t = 5000)]
        n: usize,
        /// Seed (particle i uses stream i of this seed).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Threads (0: all cores); the output does not depend on it.
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Output CSV.
        #[arg(long)]
        out: PathBuf,
    },
    /// Convert a PyTorch model (safetensors, the layout of moons_ref.safetensors) to .tsm.
    Import {
        /// The safetensors file.
        input: PathBuf,
        /// Where sampling stops (the smallest training time).
        #[arg(long, default_value_t = 1e-3)]
        t_end: f32,
        /// Output model.
        #[arg(long)]
        out: PathBuf,
    },
    /// Quantize a float model to integer-only int8, calibrated on diffused data.
    Quantize {
        /// The f32 model file.
        input: PathBuf,
        /// Calibration data: a dataset name or a CSV file, in the model's data units.
        #[arg(long, value_name = "DATASET")]
        calib: String,
        /// Calibration points (data diffused to times spread over [t_end, T]).
        #[arg(long, default_value_t = 16384)]
        calib_points: usize,
        /// Fresh points on which the error of ε̂ is reported.
        #[arg(long, default_value_t = 10_000)]
        eval_points: usize,
        /// Seed of the data draws and the diffusion noise.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output model.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a model for the firmware (a Rust include) or for PyTorch (safetensors).
    Export {
        /// The model file.
        input: PathBuf,
        /// What to write.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Build the firmware for a model and run it in QEMU.
    #[command(subcommand)]
    Firmware(FirmwareCommand),
    /// Compare samples with fresh draws of a dataset: sw2, energy, mmd2 and their floor.
    Eval {
        /// Samples (CSV with a header row).
        samples: PathBuf,
        /// The dataset to compare against.
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
    },
    /// Measure throughput (one thread).
    Bench {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Seconds per figure.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
    /// The whole pipeline in one command, with a markdown report.
    Demo {
        /// Output directory.
        #[arg(long, default_value = "out/demo")]
        out: PathBuf,
        /// Samples per run.
        #[arg(short, default_value_t = 5000)]
        n: usize,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

#[derive(Subcommand)]
enum FirmwareCommand {
    /// Sample on the board in QEMU and write the samples as CSV.
    Run {
        /// The board.
        #[arg(long, value_enum)]
        board: firmware::Board,
        /// The model file baked into the firmware.
        #[arg(long, value_name = "MODEL.tsm")]
        model: PathBuf,
        /// The sampler (em, pc, ode-heun or ald on the chip).
        #[arg(long, value_enum, default_value = "em")]
        sampler: SamplerKind,
        /// Steps of the uniform time grid.
        #[arg(long, default_value_t = 100)]
        steps: u32,
        /// Number of samples.
        #[arg(short, default_value_t = 16)]
        n: usize,
        /// Seed (particle i uses stream i of this seed, as on the host).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Write the model's normalised coordinates instead of data units.
        #[arg(long)]
        normalized: bool,
        /// Output CSV.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Sample {
            exact,
            model,
            normalized,
            sde,
            sampler,
            steps,
            schedule,
            denoise,
            n,
            seed,
            threads,
            out,
        } => {
            let mut options = SampleOptions {
                sampler,
                sde,
                steps,
                schedule,
                denoise,
                n,
                seed,
                threads,
                t_end: 1e-3,
            };
            let samples = match (exact, model) {
                (Some(exact), _) => {
                    let dataset = Dataset::from_name(&exact)?;
                    let mixture = dataset.mixture().with_context(|| {
                        format!("`{exact}` has no closed-form score (not a Gaussian mixture)")
                    })?;
                    sample_2d(&options, &ExactMixture(mixture))?
                }
                (None, Some(path)) => {
                    let (network, model_sde) = NetworkScore::load(&path)?;
                    options.t_end = tinyscore::Model::parse(&network.0)?.header().t_end;
                    network.sample(model_sde, &options, !normalized)?
                }
                (None, None) => anyhow::bail!("give --exact DATASET or --model MODEL.tsm"),
            };
            write_csv(&out, &samples)?;
            eprintln!("wrote {} samples to {}", samples.len(), out.display());
        }
        Command::Import { input, t_end, out } => {
            let network = import_safetensors_file(&input, t_end)?;
            network.write(&out)?;
            let d = network.dims;
            eprintln!(
                "wrote {} ({}→{}×{}→{} network, {:?})",
                out.display(),
                d.input_width(),
                d.hidden,
                d.layers,
                d.dim,
                network.sde
            );
        }
        Command::Quantize {
            input,
            calib,
            calib_points,
            eval_points,
            seed,
            out,
        } => {
            let data = datasets::load(&calib, calib_points.max(eval_points), seed)?;
            let report =
                quantize::quantize_file(&input, &data, calib_points, eval_points, seed, &out)?;
            print!("{report}");
            eprintln!("wrote {}", out.display());
        }
        Command::Export { input, format, out } => {
            let bytes = std::fs::read(&input)
                .with_context(|| format!("cannot read {}", input.display()))?;
            let model =
                tinyscore::Model::parse(&bytes).with_context(|| format!("{}", input.display()))?;
            match format {
                ExportFormat::Rust => write_rust_include(&out, &bytes)?,
                ExportFormat::Safetensors => write_safetensors(&out, &Network::from_model(&model))?,
            }
            eprintln!("wrote {}", out.display());
        }
        Command::Firmware(FirmwareCommand::Run {
            board,
            model,
            sampler,
            steps,
            n,
            seed,
            normalized,
            out,
        }) => {
            let run = firmware::FirmwareRun {
                model: model.clone(),
                sampler,
                steps,
                particles: n,
                seed,
            };
            let samples = firmware::run(board, &run)?;
            let bytes = std::fs::read(&model)?;
            let parsed = tinyscore::Model::parse(&bytes)?;
            let samples: Vec<[f32; 2]> = if normalized {
                samples
            } else {
                samples.iter().map(|x| parsed.denormalize(x)).collect()
            };
            write_csv(&out, &samples)?;
            eprintln!(
                "wrote {} samples from {board:?} to {}",
                samples.len(),
                out.display()
            );
        }
        Command::Eval {
            samples,
            against,
            n,
            seed,
            json,
        } => {
            let samples = read_csv(&samples)?;
            let dataset = Dataset::from_name(&against)?;
            let n = n.unwrap_or(samples.len());
            let reference = dataset.sample(n, seed);
            let metrics = compare(&samples, &reference)?;
            let floor = compare(&dataset.sample(n, seed.wrapping_add(1_000_003)), &reference)?;
            if json {
                let value = serde_json::json!({
                    "sw2": metrics.sw2, "energy": metrics.energy, "mmd2": metrics.mmd2, "floor": floor,
                });
                println!("{value}");
            } else {
                println!("sw2     {:.5}   (floor {:.5})", metrics.sw2, floor.sw2);
                println!("energy  {:.6}  (floor {:.6})", metrics.energy, floor.energy);
                println!("mmd2    {:.7} (floor {:.7})", metrics.mmd2, floor.mmd2);
            }
        }
        Command::Bench { json, seconds } => {
            let report = bench::run(seconds);
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "Euler–Maruyama, exact 8-Gaussians score: {:.3e} particle-steps/s",
                    report.em_particle_steps_per_s
                );
                println!(
                    "Box–Muller Gaussians:                    {:.3e} /s",
                    report.gaussians_per_s
                );
                println!(
                    "score network 34→64→64→2, f32, batch 5000: {:.3e} evaluations/s",
                    report.score_evals_per_s
                );
                println!(
                    "score network 34→64→64→2, int8, batch 5000: {:.3e} evaluations/s",
                    report.int8_score_evals_per_s
                );
            }
        }
        Command::Demo { out, n, seed } => {
            eprintln!("tinyscore demo → {}", out.display());
            let report = demo::run(&out, n, seed)?;
            println!("{report}");
        }
    }
    Ok(())
}
