//! `tinyscore train`: a progress bar, checkpoints, Ctrl-C that keeps the last checkpoint.

use anyhow::{Context, Result};
use clap::ValueEnum;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tinyscore::model::Output;
use tinyscore_host::data;
use tinyscore_host::io::ensure_not_an_input;
use tinyscore_host::quantize::ActivationWidth;
use tinyscore_host::sampling::SdeKind;
use tinyscore_host::train::{self, TrainConfig, TrainState, TrainingData};

/// What a trained network's output is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OutputKind {
    /// ε̂ less the Gaussian data's noise prediction σ/(α² + σ²)·x, which the model adds back
    /// in f32: ε̂ keeps growing with x beyond the network's (or int8's) ranges.
    Residual,
    /// ε̂ itself (score_sde's ε-prediction).
    Noise,
}

impl OutputKind {
    /// The model file's output.
    fn model_output(self) -> Output {
        match self {
            OutputKind::Residual => Output::GaussianResidual,
            OutputKind::Noise => Output::Noise,
        }
    }
}

/// Train a score network by denoising score matching.
#[derive(clap::Args)]
pub struct Args {
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
    /// Batch size (at most 1 048 576).
    #[arg(long, default_value_t = TrainConfig::default().batch)]
    batch: usize,
    /// Peak learning rate (linear warm-up, cosine decay).
    #[arg(long, allow_negative_numbers = true, default_value_t = TrainConfig::default().lr)]
    lr: f32,
    /// Hidden width [default: 64, or twice the data's dimension where that is more: a layer
    /// narrower than the data cannot pass ε̂ ≈ σ·x through its SiLUs].
    #[arg(long)]
    hidden: Option<u32>,
    /// Hidden layers.
    #[arg(long, default_value_t = TrainConfig::default().layers)]
    layers: u32,
    /// Fourier frequencies of the time embedding.
    #[arg(long, default_value_t = TrainConfig::default().fourier)]
    fourier: u32,
    /// EMA decay of the saved weights.
    #[arg(long, allow_negative_numbers = true, default_value_t = TrainConfig::default().ema_decay)]
    ema: f32,
    /// Decoupled weight decay (AdamW), per unit of learning rate. It keeps activations in
    /// ranges int8 resolves well.
    #[arg(long, allow_negative_numbers = true, default_value_t = TrainConfig::default().weight_decay)]
    weight_decay: f32,
    /// The last steps (of --steps) that train through the int8 quantization `quantize` will
    /// apply, with the activation ranges fixed when they begin and carried in the model file,
    /// so that the int8 network is the one trained (0: none) [default: 6000, or 60 % of
    /// --steps where that is less].
    #[arg(long)]
    qat_steps: Option<u64>,
    /// The activation width those steps train through: int8, or int16 for `quantize
    /// --activations int16` (which then is its default).
    #[arg(long, value_enum, default_value = "int8")]
    qat_activations: ActivationWidth,
    /// Standard deviation of the Gaussian Fourier frequencies.
    #[arg(long, allow_negative_numbers = true, default_value_t = TrainConfig::default().fourier_scale)]
    fourier_scale: f32,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Threads (0: one per core; at most 4 per core); a run is deterministic for a fixed seed
    /// and thread count.
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
}

pub fn run(args: Args) -> Result<()> {
    ensure_not_an_input(&args.out, &[Path::new(&args.data)])?;
    let points = data::load(&args.data, 1 << 16, args.seed)?;
    let config = TrainConfig {
        hidden: args
            .hidden
            .unwrap_or(TrainConfig::default_hidden(points.dim)),
        layers: args.layers,
        fourier: args.fourier,
        fourier_scale: args.fourier_scale,
        sde: args.sde.model_sde(),
        t_end: TrainConfig::default().t_end,
        output: args.output.model_output(),
        steps: args.steps,
        batch: args.batch,
        lr: args.lr,
        warmup: TrainConfig::default().warmup.min(args.steps / 10),
        ema_decay: args.ema,
        weight_decay: args.weight_decay,
        seed: args.seed,
        threads: args.threads,
        qat_steps: args
            .qat_steps
            .unwrap_or(TrainConfig::default().qat_steps.min(args.steps * 3 / 5)),
        qat_activations: args.qat_activations,
    };
    let checkpoint_path = args.out.with_extension("ckpt");
    let mut state = if args.resume {
        let state = TrainState::load(&checkpoint_path)?;
        state
            .check_resumes(&config, &points)
            .with_context(|| format!("cannot resume {}", checkpoint_path.display()))?;
        eprintln!("resuming at step {}", state.step);
        state
    } else {
        TrainState::new(config.clone(), &points)?
    };
    let normalized = TrainingData::new(&state, &points)?;
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
        args.checkpoint_every,
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
    state.network()?.write(&args.out)?;
    if args.checkpoint_every > 0 {
        state.save(&checkpoint_path)?;
    }
    eprintln!(
        "trained {} steps in {seconds:.1} s ({:.0} steps/s), last loss {:.4}; wrote {}",
        state.step - first_step,
        (state.step - first_step) as f64 / seconds.max(1e-9),
        state.last_loss,
        args.out.display()
    );
    Ok(())
}
