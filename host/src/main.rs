//! `tinyscore`: sample, evaluate and benchmark score-based generative models on the desktop.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tinyscore_host::io::{read_csv, write_csv};
use tinyscore_host::metrics::compare;
use tinyscore_host::model_file::{
    import_safetensors_file, write_rust_include, write_safetensors, ExportFormat, Network,
};
use tinyscore_host::options::{
    sample_exact, NetworkScore, OutputKind, SampleOptions, SamplerKind, ScheduleKind, SdeKind,
};
use tinyscore_host::train::TrainConfig;
use tinyscore_host::{bench, datasets, demo, firmware, langevin, plot, quantize, train};

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
        /// Use the closed-form score of a Gaussian mixture: `8gaussians` or a .json file
        /// `{"weights": […], "means": [[x, y]…], "stds": [[sx, sy]…]}`.
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
    /// Langevin MCMC on a time-independent target (its score −∇U is exact).
    Langevin {
        /// The target: `doublewell` (barrier 2), `8gaussians`, or a mixture .json.
        #[arg(long)]
        target: String,
        /// The dynamics.
        #[arg(long, value_enum, default_value = "ula")]
        method: langevin::Method,
        /// Step size ε (ULA) or dt (underdamped).
        #[arg(long, default_value_t = 1e-3)]
        step: f32,
        /// Steps per chain.
        #[arg(long, default_value_t = 5000)]
        steps: u32,
        /// Mass (underdamped).
        #[arg(long, default_value_t = 1.0)]
        mass: f32,
        /// Friction γ (underdamped).
        #[arg(long, default_value_t = 1.0)]
        friction: f32,
        /// Temperature kT (underdamped; 1 samples the target).
        #[arg(long, default_value_t = 1.0)]
        kt: f32,
        /// Chains (one sample each).
        #[arg(short, default_value_t = 5000)]
        n: usize,
        /// Seed (chain i uses stream i).
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
    /// Train a score network by denoising score matching.
    Train {
        /// Training data: a dataset name or a CSV file.
        #[arg(long, value_name = "DATASET")]
        data: String,
        /// The forward process.
        #[arg(long, value_enum, default_value = "vp")]
        sde: SdeKind,
        /// What the network learns.
        #[arg(long, value_enum, default_value = "residual")]
        output: OutputKind,
        /// Optimiser steps.
        #[arg(long, default_value_t = TrainConfig::default().steps)]
        steps: u64,
        /// Batch size.
        #[arg(long, default_value_t = TrainConfig::default().batch)]
        batch: usize,
        /// Peak learning rate (linear warm-up, cosine decay).
        #[arg(long, default_value_t = TrainConfig::default().lr)]
        lr: f32,
        /// Hidden width.
        /// Hidden width [default: 64, or twice the data's dimension where that is more: a
        /// layer narrower than the data cannot pass ε̂ ≈ σ·x through its SiLUs]
        #[arg(long)]
        hidden: Option<u32>,
        /// Hidden layers.
        #[arg(long, default_value_t = TrainConfig::default().layers)]
        layers: u32,
        /// Fourier frequencies of the time embedding.
        #[arg(long, default_value_t = TrainConfig::default().fourier)]
        fourier: u32,
        /// EMA decay of the saved weights.
        #[arg(long, default_value_t = TrainConfig::default().ema_decay)]
        ema: f32,
        /// Decoupled weight decay (AdamW), per unit of learning rate. It keeps activations in
        /// ranges int8 resolves well.
        #[arg(long, default_value_t = TrainConfig::default().weight_decay)]
        weight_decay: f32,
        /// Standard deviation of the Gaussian Fourier frequencies.
        #[arg(long, default_value_t = TrainConfig::default().fourier_scale)]
        fourier_scale: f32,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Threads (0: one per core); a run is deterministic for a fixed seed and thread count.
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Write a checkpoint (`OUT.ckpt`) every this many steps (0: never).
        #[arg(long, default_value_t = 1000)]
        checkpoint_every: u64,
        /// Continue from `OUT.ckpt`.
        #[arg(long)]
        resume: bool,
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
    /// Draw a model: data beside samples, the score field, trajectories, an animated GIF.
    #[command(group(clap::ArgGroup::new("score").required(true).args(["exact", "model"])))]
    Plot {
        /// A model file.
        #[arg(long, value_name = "MODEL.tsm")]
        model: Option<PathBuf>,
        /// The closed-form score of a Gaussian-mixture dataset.
        #[arg(long, value_name = "DATASET")]
        exact: Option<String>,
        /// The data drawn behind the samples (default: the --exact dataset).
        #[arg(long, value_name = "DATASET")]
        data: Option<String>,
        /// Samples to show (CSV); default: 2000 drawn now by Euler–Maruyama, 500 steps.
        #[arg(long)]
        samples: Option<PathBuf>,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output directory.
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
        /// The dataset to compare against (a CSV file is split in two halves: the samples
        /// are measured against one, the floor is the other against it).
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
    /// Instructions per score evaluation, per Gaussian and per sample on the Cortex-M4F
    /// (QEMU `-icount`: instructions, not cycles).
    Count {
        /// The model file baked into the firmware.
        #[arg(long, value_name = "MODEL.tsm")]
        model: PathBuf,
        /// The sampler of the whole-sample figure.
        #[arg(long, value_enum, default_value = "em")]
        sampler: SamplerKind,
        /// Steps of the whole-sample figure.
        #[arg(long, default_value_t = 100)]
        steps: u32,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Flash, static RAM and the measured stack of the firmware for a model.
    Size {
        /// The board.
        #[arg(long, value_enum)]
        board: firmware::Board,
        /// The model file baked into the firmware.
        #[arg(long, value_name = "MODEL.tsm")]
        model: PathBuf,
        /// The sampler the build runs (its stack use is measured on a run).
        #[arg(long, value_enum, default_value = "em")]
        sampler: SamplerKind,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
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
        /// How the chip sends its samples: defmt frames, or the binary sink's records
        /// (written to a host file through semihosting under QEMU).
        #[arg(long, value_enum, default_value = "defmt")]
        sink: firmware::Sink,
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

/// `tinyscore train`: a progress bar, checkpoints, Ctrl-C that keeps the last checkpoint.
fn train_command(
    config: train::TrainConfig,
    hidden: Option<u32>,
    data: &str,
    checkpoint_every: u64,
    resume: bool,
    out: &std::path::Path,
) -> Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let points = datasets::load(data, 1 << 16, config.seed)?;
    let config = train::TrainConfig {
        hidden: hidden.unwrap_or(TrainConfig::default_hidden(points.dim)),
        ..config
    };
    let checkpoint_path = out.with_extension("ckpt");
    let mut state = if resume {
        let state = train::TrainState::load(&checkpoint_path)?;
        anyhow::ensure!(
            state.config == config,
            "{} was started with other settings: {:?}",
            checkpoint_path.display(),
            state.config
        );
        eprintln!("resuming at step {}", state.step);
        state
    } else {
        train::TrainState::new(config.clone(), &points)?
    };
    let normalized = train::TrainingData::new(&state, &points)?;
    let stop = Arc::new(AtomicBool::new(false));
    let handler_stop = Arc::clone(&stop);
    ctrlc::set_handler(move || handler_stop.store(true, Ordering::Relaxed))
        .context("cannot install the Ctrl-C handler")?;
    let bar = indicatif::ProgressBar::new(config.steps);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} steps  {per_sec}  eta {eta}  {msg}",
        )
        .expect("a valid template"),
    );
    bar.set_position(state.step);
    let started = std::time::Instant::now();
    let first_step = state.step;
    train::train(
        &mut state,
        &normalized,
        checkpoint_every,
        &stop,
        |step, loss| {
            bar.set_position(step);
            if step % 50 == 0 {
                bar.set_message(format!("loss {loss:.4}"));
            }
        },
        |state| state.save(&checkpoint_path),
    )?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if stop.load(Ordering::Relaxed) {
        state.save(&checkpoint_path)?;
        anyhow::bail!(
            "interrupted at step {}: checkpoint {} written; rerun with --resume",
            state.step,
            checkpoint_path.display()
        );
    }
    state.network()?.write(out)?;
    if checkpoint_every > 0 {
        state.save(&checkpoint_path)?;
    }
    eprintln!(
        "trained {} steps in {seconds:.1} s ({:.0} steps/s), last loss {:.4}; wrote {}",
        state.step - first_step,
        (state.step - first_step) as f64 / seconds.max(1e-9),
        state.last_loss,
        out.display()
    );
    Ok(())
}

/// `tinyscore plot`.
fn plot_command(
    model: Option<PathBuf>,
    exact: Option<String>,
    data: Option<String>,
    samples: Option<PathBuf>,
    seed: u64,
    out: &std::path::Path,
) -> Result<Vec<PathBuf>> {
    let data_name = data
        .or_else(|| exact.clone())
        .context("give --data DATASET to draw behind the samples")?;
    let data = datasets::load(&data_name, 2000, seed.wrapping_add(1))?;
    let options = SampleOptions::uniform(SamplerKind::Em, 500, 2000, seed, 1e-3);
    let given = samples.map(|p| read_csv(&p)).transpose()?;
    if let Some(path) = model {
        let (network, sde) = NetworkScore::load(&path)?;
        let parsed = tinyscore::Model::parse(&network.0)?;
        let options = SampleOptions {
            t_end: parsed.header().t_end,
            ..options
        };
        let samples = match given {
            Some(s) => s,
            None => network.sample(sde, &options, true)?.points(),
        };
        plot::all_for_model(out, &data, &samples, &network.0, seed)
    } else {
        let mixture = langevin::mixture(&exact.context("give --model or --exact")?)?;
        let samples = match given {
            Some(s) => s,
            None => sample_exact(&options, &mixture)?.points(),
        };
        plot::all_for_mixture(out, &data, &samples, &mixture, options.t_end, seed)
    }
}

/// Writes to stdout; a reader that has gone (`tinyscore eval … | head -1`) is not an error.
fn emit(text: std::fmt::Arguments<'_>) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_fmt(text) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

macro_rules! outln {
    ($($arg:tt)*) => { emit(format_args!("{}\n", format_args!($($arg)*)))? };
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
                (Some(exact), _) => sample_exact(&options, &langevin::mixture(&exact)?)?,
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
        Command::Langevin {
            target,
            method,
            step,
            steps,
            mass,
            friction,
            kt,
            n,
            seed,
            threads,
            out,
        } => {
            langevin::check_target(&target)?;
            let options = langevin::LangevinOptions {
                method,
                step,
                steps,
                mass,
                friction,
                kt,
                n,
                seed,
                threads,
            };
            let samples = langevin::run_target(&target, &options)?;
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
        Command::Train {
            data,
            sde,
            output,
            steps,
            batch,
            lr,
            hidden,
            layers,
            fourier,
            ema,
            weight_decay,
            fourier_scale,
            seed,
            threads,
            checkpoint_every,
            resume,
            out,
        } => {
            let sde = sde.model_sde();
            let (p0, p1) = sde.parameters();
            let config = train::TrainConfig {
                hidden: 0, // set by `train_command` once the data (and its dimension) are read
                layers,
                fourier,
                fourier_scale,
                sde: (sde.code(), p0, p1),
                t_end: 1e-3,
                output: output.model_output().code(),
                steps,
                batch,
                lr,
                warmup: TrainConfig::default().warmup.min(steps / 10),
                ema_decay: ema,
                weight_decay,
                seed,
                threads,
            };
            train_command(config, hidden, &data, checkpoint_every, resume, &out)?;
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
            emit(format_args!("{report}"))?;
            eprintln!("wrote {}", out.display());
        }
        Command::Export { input, format, out } => {
            let bytes = std::fs::read(&input)
                .with_context(|| format!("cannot read {}", input.display()))?;
            let model =
                tinyscore::Model::parse(&bytes).with_context(|| format!("{}", input.display()))?;
            match format {
                ExportFormat::Rust => write_rust_include(&out, &bytes)?,
                ExportFormat::Safetensors => {
                    write_safetensors(&out, &Network::from_model(&model)?)?
                }
            }
            eprintln!("wrote {}", out.display());
        }
        Command::Plot {
            model,
            exact,
            data,
            samples,
            seed,
            out,
        } => {
            let files = plot_command(model, exact, data, samples, seed, &out)?;
            for f in files {
                eprintln!("wrote {}", f.display());
            }
        }
        Command::Firmware(FirmwareCommand::Count {
            model,
            sampler,
            steps,
            json,
        }) => {
            let counts = firmware::count(&firmware::FirmwareRun {
                model,
                sampler,
                steps,
                // A whole lockstep batch (16 for data of up to 4 dimensions, a multiple of
                // the batch otherwise), so that the mean per sample is the sampling's.
                particles: 16,
                seed: 0,
                sink: firmware::Sink::Defmt,
            })?;
            if json {
                outln!("{}", serde_json::to_string(&counts)?);
            } else {
                let macs = counts.macs_per_score as f64;
                outln!(
                    "score evaluation: {:.0} instructions ({} MACs: {:.2} instructions/MAC)",
                    counts.per_score,
                    counts.macs_per_score,
                    counts.per_score / macs
                );
                // Only a packed int8 model has a kernel other than the portable one.
                if counts.per_score_portable != counts.per_score {
                    outln!(
                        "score evaluation, portable kernel: {:.0} instructions ({:.2}/MAC)",
                        counts.per_score_portable,
                        counts.per_score_portable / macs
                    );
                }
                outln!(
                    "score evaluation, {} particles in lockstep: {:.0} instructions ({:.2}/MAC)",
                    counts.lockstep,
                    counts.per_score_lockstep,
                    counts.per_score_lockstep / macs
                );
                outln!(
                    "int8 kernel alone: {:.3} instructions/MAC",
                    counts.kernel_per_mac
                );
                outln!("Gaussian: {:.1} instructions", counts.per_gaussian);
                outln!(
                    "one sample ({} {steps} steps, mean of 16): {:.0} instructions = {:.1} ms at \
                     64 MHz if one instruction took one cycle",
                    sampler.name(),
                    counts.per_sample,
                    counts.per_sample / 64e3
                );
            }
        }
        Command::Firmware(FirmwareCommand::Size {
            board,
            model,
            sampler,
            json,
        }) => {
            let size = firmware::size(
                board,
                &firmware::FirmwareRun {
                    model,
                    sampler,
                    steps: 10,
                    particles: 1,
                    seed: 0,
                    sink: firmware::Sink::Defmt,
                },
            )?;
            if json {
                outln!("{}", serde_json::to_string(&size)?);
            } else {
                outln!("flash: {} bytes", size.flash);
                outln!("ram: {} bytes", size.ram);
                outln!("stack: {} bytes (measured)", size.stack);
                outln!("ram + stack: {} bytes", size.ram + size.stack);
            }
        }
        Command::Firmware(FirmwareCommand::Run {
            board,
            model,
            sampler,
            steps,
            n,
            seed,
            sink,
            normalized,
            out,
        }) => {
            let run = firmware::FirmwareRun {
                model: model.clone(),
                sampler,
                steps,
                particles: n,
                seed,
                sink,
            };
            let samples = firmware::run(board, &run)?;
            let samples = if normalized {
                samples
            } else {
                NetworkScore(std::fs::read(&model)?).denormalize(&samples)?
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
            let (reference, fresh) =
                datasets::reference_pair(&against, n.unwrap_or(samples.len()), seed)?;
            let metrics = compare(&samples, &reference)?;
            let floor = compare(&fresh, &reference)?;
            if json {
                let value = serde_json::json!({
                    "sw2": metrics.sw2, "energy": metrics.energy, "mmd2": metrics.mmd2, "floor": floor,
                });
                outln!("{value}");
            } else {
                outln!("sw2     {:.5}   (floor {:.5})", metrics.sw2, floor.sw2);
                outln!("energy  {:.6}  (floor {:.6})", metrics.energy, floor.energy);
                outln!("mmd2    {:.7} (floor {:.7})", metrics.mmd2, floor.mmd2);
            }
        }
        Command::Bench { json, seconds } => {
            let report = bench::run(seconds);
            if json {
                outln!("{}", serde_json::to_string(&report)?);
            } else {
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
            }
        }
        Command::Demo { out, n, seed } => {
            eprintln!("tinyscore demo → {}", out.display());
            let report = demo::run(&out, n, seed)?;
            outln!("{report}");
        }
    }
    Ok(())
}
