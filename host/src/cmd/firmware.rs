//! `tinyscore firmware`: build the firmware for a model, run it in QEMU, measure it.

use super::{outln, OdeArgs};
use anyhow::{Context, Result};
use std::path::PathBuf;
use tinyscore_host::firmware::{self, Board, FirmwareRun, LikelihoodTask, Sink};
use tinyscore_host::io::{ensure_not_an_input, write_atomically, write_csv};
use tinyscore_host::likelihood::model_end_log_density;
use tinyscore_host::model_file::{denormalize, parse, read};
use tinyscore_host::points::Samples;
use tinyscore_host::sampling::{SamplerKind, ScheduleKind};
use tinyscore_host::schedule::read_grid;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Instructions per score evaluation, per Gaussian and per sample on the Cortex-M4F
    /// (QEMU `-icount`: instructions, not cycles).
    Count(CountArgs),
    /// Flash, static RAM and the measured stack of the firmware for a model.
    Size(SizeArgs),
    /// Sample on the board in QEMU and write the samples as CSV.
    Run(RunArgs),
}

/// What the firmware does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Task {
    /// Sample the model.
    Sample,
    /// The log-likelihoods of the points of --data (an f32 model; the exact divergence).
    Likelihood,
}

/// The likelihood task's points and solver.
#[derive(clap::Args)]
pub struct LikelihoodArgs {
    /// What the firmware does.
    #[arg(long, value_enum, default_value = "sample")]
    task: Task,
    /// The points of the likelihood task: a CSV file, or a dataset name (-n points drawn).
    #[arg(long, value_name = "X.csv")]
    data: Option<String>,
    #[command(flatten)]
    ode: OdeArgs,
}

impl LikelihoodArgs {
    /// The likelihood task, when asked for, with `n` points if --data names a dataset.
    fn task(&self, n: usize, seed: u64) -> Result<Option<LikelihoodTask>> {
        if self.task == Task::Sample {
            if self.data.is_some() {
                anyhow::bail!("--data applies to --task likelihood");
            }
            if let Some(flag) = self.ode.given() {
                anyhow::bail!("{flag} applies to --task likelihood");
            }
            return Ok(None);
        }
        let data = self
            .data
            .as_deref()
            .context("--task likelihood needs --data X.csv (or a dataset name)")?;
        let points = tinyscore_host::data::load(data, n, seed)?;
        let values = points.values.iter().map(|&v| v as f32).collect();
        Ok(Some(LikelihoodTask {
            points: Samples {
                dim: points.dim,
                values,
            },
            rtol: self.ode.rtol(),
            atol: self.ode.atol(),
            max_steps: self.ode.max_steps(),
        }))
    }
}

#[derive(clap::Args)]
pub struct CountArgs {
    /// The model file baked into the firmware.
    #[arg(long, value_name = "MODEL.tsm")]
    model: PathBuf,
    /// The sampler of the whole-sample figure.
    #[arg(long, value_enum, default_value = "em")]
    sampler: SamplerKind,
    /// Steps of the whole-sample figure.
    #[arg(long, default_value_t = 100)]
    steps: u32,
    /// Spacing of the time grid.
    #[arg(long, value_enum, default_value = "uniform")]
    schedule: ScheduleKind,
    /// A grid fitted by `tinyscore schedule` instead of --steps and --schedule.
    #[arg(long, value_name = "GRID.json")]
    grid: Option<PathBuf>,
    /// The multistep samplers' last steps at a lower order (as `sample --lower-order-final`).
    #[arg(long)]
    lower_order_final: bool,
    #[command(flatten)]
    likelihood: LikelihoodArgs,
    /// Points drawn when --data names a dataset.
    #[arg(short, default_value_t = 16)]
    n: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct SizeArgs {
    /// The board.
    #[arg(long, value_enum)]
    board: Board,
    /// The model file baked into the firmware.
    #[arg(long, value_name = "MODEL.tsm")]
    model: PathBuf,
    /// The sampler the build runs (its stack use is measured on a run).
    #[arg(long, value_enum, default_value = "em")]
    sampler: SamplerKind,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// The board.
    #[arg(long, value_enum)]
    board: Board,
    /// The model file baked into the firmware.
    #[arg(long, value_name = "MODEL.tsm")]
    model: PathBuf,
    /// The sampler (all but rd, ancestral and ode-rk45 on the chip).
    #[arg(long, value_enum, default_value = "em")]
    sampler: SamplerKind,
    /// Steps of the time grid.
    #[arg(long, default_value_t = 100)]
    steps: u32,
    /// Spacing of the time grid.
    #[arg(long, value_enum, default_value = "uniform")]
    schedule: ScheduleKind,
    /// A grid fitted by `tinyscore schedule` instead of --steps and --schedule.
    #[arg(long, value_name = "GRID.json")]
    grid: Option<PathBuf>,
    /// The multistep samplers' last steps at a lower order (as `sample --lower-order-final`).
    #[arg(long)]
    lower_order_final: bool,
    /// Number of samples.
    #[arg(short, default_value_t = 16)]
    n: usize,
    /// How the chip sends its samples: defmt frames, or the binary sink's records
    /// (written to a host file through semihosting under QEMU).
    #[arg(long, value_enum, default_value = "defmt")]
    sink: Sink,
    /// Seed (particle i uses stream i of this seed, as on the host).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the model's normalised coordinates instead of data units.
    #[arg(long)]
    normalized: bool,
    #[command(flatten)]
    likelihood: LikelihoodArgs,
    /// Output CSV: the samples, or for --task likelihood `log_p,nfe` per point (as
    /// `tinyscore likelihood` writes them).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Count(args) => count(args),
        Command::Size(args) => size(args),
        Command::Run(args) => run_board(args),
    }
}

fn count(args: CountArgs) -> Result<()> {
    if let Some(task) = args.likelihood.task(args.n, 0)? {
        let points = task.points.len();
        let per_point = firmware::count_likelihood(&FirmwareRun {
            model: args.model,
            sampler: SamplerKind::Em,
            steps: 1,
            schedule: ScheduleKind::Uniform,
            fitted: None,
            lower_order_final: false,
            particles: 1,
            seed: 0,
            sink: Sink::Defmt,
            likelihood: Some(task),
        })?;
        if args.json {
            outln!(
                "{}",
                serde_json::json!({ "instructions_per_point": per_point })
            );
        } else {
            outln!(
                "likelihood: {per_point:.0} instructions a point (mean of {points}) = {:.1} ms at \
                 64 MHz if one instruction took one cycle",
                per_point / 64e3
            );
        }
        return Ok(());
    }
    let fitted = args.grid.as_deref().map(read_grid).transpose()?;
    let steps = fitted.map_or(args.steps, |g| g.grid.steps());
    let counts = firmware::count(&FirmwareRun {
        model: args.model,
        sampler: args.sampler,
        steps,
        schedule: args.schedule,
        fitted,
        lower_order_final: args.lower_order_final,
        // A whole lockstep batch (16 for data of up to 4 dimensions, a multiple of the batch
        // otherwise), so that the mean per sample is the sampling's.
        particles: 16,
        seed: 0,
        sink: Sink::Defmt,
        likelihood: None,
    })?;
    if args.json {
        outln!("{}", serde_json::to_string(&counts)?);
        return Ok(());
    }
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
        "one sample ({} {} steps, mean of 16): {:.0} instructions = {:.1} ms at 64 MHz if one \
         instruction took one cycle",
        args.sampler.name(),
        steps,
        counts.per_sample,
        counts.per_sample / 64e3
    );
    outln!(
        "start-up check of the model (CRC-32 and every field, once): {:.0} instructions",
        counts.start_up
    );
    Ok(())
}

fn size(args: SizeArgs) -> Result<()> {
    let size = firmware::size(
        args.board,
        &FirmwareRun {
            model: args.model,
            sampler: args.sampler,
            steps: 10,
            schedule: ScheduleKind::Uniform,
            fitted: None,
            lower_order_final: false,
            particles: 1,
            seed: 0,
            sink: Sink::Defmt,
            likelihood: None,
        },
    )?;
    if args.json {
        outln!("{}", serde_json::to_string(&size)?);
    } else {
        outln!("flash: {} bytes", size.flash);
        outln!("ram: {} bytes", size.ram);
        outln!("stack: {} bytes (measured)", size.stack);
        outln!("ram + stack: {} bytes", size.ram + size.stack);
    }
    Ok(())
}

fn run_board(args: RunArgs) -> Result<()> {
    ensure_not_an_input(&args.out, &[&args.model])?;
    if let Some(task) = args.likelihood.task(args.n, args.seed)? {
        if let Some(data) = &args.likelihood.data {
            ensure_not_an_input(&args.out, &[std::path::Path::new(data)])?;
        }
        return run_likelihood(args.board, args.model, args.seed, task, &args.out);
    }
    let fitted = args.grid.as_deref().map(read_grid).transpose()?;
    // The firmware reads the model itself (and reports a file it refuses).
    let samples = firmware::run(
        args.board,
        &FirmwareRun {
            model: args.model.clone(),
            sampler: args.sampler,
            steps: fitted.map_or(args.steps, |g| g.grid.steps()),
            schedule: args.schedule,
            fitted,
            lower_order_final: args.lower_order_final,
            particles: args.n,
            seed: args.seed,
            sink: args.sink,
            likelihood: None,
        },
    )?;
    let samples = if args.normalized {
        samples
    } else {
        let bytes = read(&args.model)?;
        denormalize(&parse(&bytes, &args.model)?, &samples)?
    };
    write_csv(&args.out, &samples)?;
    eprintln!(
        "wrote {} samples from {} to {}",
        samples.len(),
        args.board.name(),
        args.out.display()
    );
    Ok(())
}

/// The chip's log-likelihoods of `task`'s points under `model`, written as `log_p,nfe` rows.
fn run_likelihood(
    board: Board,
    model: PathBuf,
    seed: u64,
    task: LikelihoodTask,
    out: &std::path::Path,
) -> Result<()> {
    let points = task.points.len();
    let run = FirmwareRun {
        model,
        sampler: SamplerKind::Em,
        steps: 1,
        schedule: ScheduleKind::Uniform,
        fitted: None,
        lower_order_final: false,
        particles: 1,
        seed,
        sink: Sink::Defmt,
        likelihood: Some(task),
    };
    let results = firmware::likelihood(board, &run)?;
    let bytes = read(&run.model)?;
    let model = parse(&bytes, &run.model)?;
    write_atomically(out, |w| {
        writeln!(w, "log_p,nfe")?;
        for r in &results {
            let log_p = model_end_log_density(&model, &r.latent) + r.delta_log_p as f64;
            writeln!(w, "{log_p:?},{}", r.nfe)?;
        }
        Ok(())
    })?;
    eprintln!(
        "wrote {points} log-likelihoods from {} to {}",
        board.name(),
        out.display()
    );
    Ok(())
}
