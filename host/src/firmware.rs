//! Building the firmware for a model and running it in QEMU (`tinyscore firmware run`).
//!
//! The firmware (`firmware/`, outside the host workspace) bakes in the model and the sampling
//! configuration at build time from `TINYSCORE_*` variables, sends each sample's f32 bits as a
//! defmt frame over semihosting and exits QEMU with its status; this module drives that and
//! decodes the frames with defmt-decoder and the ELF's table.

use crate::points::Samples;
use crate::sampling::{SamplerKind, ScheduleKind};
use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A board the firmware runs on in QEMU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Board {
    /// QEMU `mps2-an386`: Cortex-M4F, hard float.
    QemuM4,
    /// QEMU `microbit`: Cortex-M0, no FPU.
    QemuM0,
}

impl Board {
    /// Its command-line name.
    pub fn name(self) -> String {
        use clap::ValueEnum;
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }

    /// The Rust target the board's firmware is built for (its QEMU runner is in
    /// `firmware/.cargo/config.toml`).
    pub fn target(self) -> &'static str {
        match self {
            Board::QemuM4 => "thumbv7em-none-eabihf",
            Board::QemuM0 => "thumbv6m-none-eabi",
        }
    }
}

/// What one firmware run samples.
#[derive(Clone, Debug)]
pub struct FirmwareRun {
    /// The `.tsm` model baked into the firmware.
    pub model: PathBuf,
    /// The sampler (the firmware has all but `rd`, `ancestral` and `ode-rk45`).
    pub sampler: SamplerKind,
    /// Steps of the time grid.
    pub steps: u32,
    /// The grid's spacing.
    pub schedule: ScheduleKind,
    /// A fitted grid instead of `schedule` (its steps must be `steps`), with the bespoke
    /// solver's coefficients if fitted for it.
    pub fitted: Option<crate::schedule::GridFile>,
    /// The multistep samplers' last steps at a lower order.
    pub lower_order_final: bool,
    /// Particles.
    pub particles: usize,
    /// Seed: particle i uses stream i.
    pub seed: u64,
    /// How the chip sends its samples.
    pub sink: Sink,
    /// Instead of sampling, the log-likelihoods of these points (an f32 model).
    pub likelihood: Option<LikelihoodTask>,
}

/// The chip's likelihood task: points read from the host through semihosting, and the
/// adaptive solver's settings (the exact divergence, as `tinyscore likelihood` computes it).
#[derive(Clone, Debug)]
pub struct LikelihoodTask {
    /// The points, in data units.
    pub points: Samples,
    /// Relative tolerance.
    pub rtol: f32,
    /// Absolute tolerance.
    pub atol: f32,
    /// The most steps per point.
    pub max_steps: u32,
}

/// One point's likelihood as the chip computed it: the terms whose bits the host's
/// `tinyscore likelihood` gives too.
#[derive(Clone, Debug, PartialEq)]
pub struct ChipLikelihood {
    /// Evaluations.
    pub nfe: u32,
    /// The log-density change along the path.
    pub delta_log_p: f32,
    /// The latent x(T), in the model's normalised coordinates.
    pub latent: Vec<f32>,
}

/// The file a likelihood firmware reads its points from, in QEMU's working directory.
const POINTS_FILE: &str = "tinyscore-points.bin";

/// How the firmware sends its samples to the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Sink {
    /// defmt frames `sample <i> [bits…]` (the app's `DefmtSink`).
    Defmt,
    /// Binary records (the app's `BinarySink`: index then each coordinate's bits, all
    /// little-endian u32s), into a host file through semihosting.
    Binary,
}

/// The file a binary-sink firmware writes in QEMU's working directory.
const SAMPLES_FILE: &str = "tinyscore-samples.bin";

/// Memory a firmware build takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Size {
    /// Flash: code, read-only data (the model included) and the initial values of `.data`.
    pub flash: u64,
    /// Static RAM: `.data`, `.bss` and `.uninit`.
    pub ram: u64,
    /// The deepest the stack reached in the run (cortex-m-rt's painted-stack measurement).
    pub stack: u64,
}

/// Flash and static RAM of a firmware ELF: allocated sections below the RAM origin count as
/// flash, those at or above it as RAM, and `.data` as both (its initial values live in
/// flash).
pub fn elf_size(elf: &[u8]) -> Result<(u64, u64)> {
    use object::{Object, ObjectSection, SectionFlags};
    const RAM_ORIGIN: u64 = 0x2000_0000;
    const SHF_ALLOC: u64 = 0x2;
    let file = object::File::parse(elf).context("not an ELF file")?;
    let (mut flash, mut ram) = (0, 0);
    for section in file.sections() {
        let allocated =
            matches!(section.flags(), SectionFlags::Elf { sh_flags } if sh_flags & SHF_ALLOC != 0);
        if !allocated || section.size() == 0 {
            continue;
        }
        let name = section.name().unwrap_or("");
        if section.address() >= RAM_ORIGIN {
            ram += section.size();
            if name == ".data" {
                flash += section.size();
            }
        } else {
            flash += section.size();
        }
    }
    Ok((flash, ram))
}

/// Builds and runs the firmware for `run` on `board`, and reports its flash, static RAM and
/// measured stack.
pub fn size(board: Board, run_settings: &FirmwareRun) -> Result<Size> {
    let work = tempfile::tempdir().context("cannot create a directory for QEMU")?;
    let (output, elf) = build_and_run_mode(board, run_settings, Mode::Sample, work.path())?;
    let (flash, ram) = elf_size(&elf)?;
    let stack = output
        .lines()
        .find_map(|l| l.strip_prefix("stack "))
        .and_then(|v| v.trim().parse().ok())
        .context("the firmware did not report its stack use")?;
    Ok(Size { flash, ram, stack })
}

/// The firmware's directory in this checkout.
pub fn firmware_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../firmware")
}

/// Builds the firmware for `run` and `board`, runs it in QEMU (which the runner limits to
/// 120 s) and returns the samples in the model's normalised coordinates, bit for bit as the
/// chip computed them.
pub fn run(board: Board, run: &FirmwareRun) -> Result<Samples> {
    let bytes = std::fs::read(&run.model)
        .with_context(|| format!("cannot read {}", run.model.display()))?;
    // A file that does not parse still goes to the chip, which reports in words why it
    // refuses it.
    let dim = tinyscore::Model::parse(&bytes).map(|m| m.header().dims.dim as usize);
    let work = tempfile::tempdir().context("cannot create a directory for QEMU")?;
    let (stdout, _) = build_and_run_mode(board, run, Mode::Sample, work.path())?;
    let dim = dim.with_context(|| format!("{}", run.model.display()))?;
    let samples = match run.sink {
        Sink::Defmt => parse_samples(&stdout, dim)?,
        Sink::Binary => {
            let path = work.path().join(SAMPLES_FILE);
            let bytes = std::fs::read(&path)
                .context("the firmware wrote no samples file through semihosting")?;
            parse_records(&bytes, dim)?
        }
    };
    ensure!(
        samples.len() == run.particles,
        "the firmware sent {} samples, expected {}",
        samples.len(),
        run.particles
    );
    Ok(samples)
}

/// Builds the likelihood firmware for `run` (whose `likelihood` names the points) and
/// `board`, runs it in QEMU and returns each point's terms as the chip computed them.
pub fn likelihood(board: Board, run: &FirmwareRun) -> Result<Vec<ChipLikelihood>> {
    let task = run
        .likelihood
        .as_ref()
        .context("no points given for the likelihood")?;
    let work = tempfile::tempdir().context("cannot create a directory for QEMU")?;
    let (stdout, _) = build_and_run_mode(board, run, Mode::Sample, work.path())?;
    let results = parse_likelihoods(&stdout, task.points.dim)?;
    ensure!(
        results.len() == task.points.len(),
        "the firmware reported {} of {} points",
        results.len(),
        task.points.len()
    );
    Ok(results)
}

/// The `likelihood <i> <nfe> <Δ bits> [<latent bits>…]` lines of the firmware's output.
pub fn parse_likelihoods(output: &str, dim: usize) -> Result<Vec<ChipLikelihood>> {
    let mut results = Vec::new();
    for rest in output
        .lines()
        .filter_map(|line| line.strip_prefix("likelihood "))
    {
        let malformed = || anyhow::anyhow!("malformed line `likelihood {rest}`");
        let mut fields = rest.splitn(4, ' ');
        let (_index, nfe, delta, latent) = (
            fields.next().ok_or_else(malformed)?,
            fields.next().ok_or_else(malformed)?,
            fields.next().ok_or_else(malformed)?,
            fields.next().ok_or_else(malformed)?,
        );
        let bits = |field: &str| -> Result<f32> {
            let hex = field.trim().trim_start_matches("0x");
            Ok(f32::from_bits(
                u32::from_str_radix(hex, 16).map_err(|_| malformed())?,
            ))
        };
        let latent = latent
            .trim()
            .strip_prefix('[')
            .and_then(|b| b.strip_suffix(']'))
            .ok_or_else(malformed)?
            .split(',')
            .map(bits)
            .collect::<Result<Vec<f32>>>()?;
        ensure!(
            latent.len() == dim,
            "line `likelihood {rest}` has a latent of {} coordinates, the model {dim}",
            latent.len()
        );
        results.push(ChipLikelihood {
            nfe: nfe.parse().map_err(|_| malformed())?,
            delta_log_p: bits(delta)?,
            latent,
        });
    }
    Ok(results)
}

/// The binary sink's records (`4 + 4·dim` bytes each: index, then each coordinate's f32
/// bits; little-endian), which must come in index order from 0.
pub fn parse_records(bytes: &[u8], dim: usize) -> Result<Samples> {
    let record = 4 * (1 + dim);
    ensure!(
        bytes.len().is_multiple_of(record),
        "{} bytes of binary samples are not whole {record}-byte records",
        bytes.len()
    );
    let mut values = Vec::with_capacity(bytes.len() / record * dim);
    for (expected, r) in bytes.chunks_exact(record).enumerate() {
        let words: Vec<u32> = r
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        ensure!(
            words[0] as usize == expected,
            "binary record {expected} has index {}",
            words[0]
        );
        values.extend(words[1..].iter().map(|&b| f32::from_bits(b)));
    }
    Ok(Samples { dim, values })
}

/// What a firmware build does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Sample and report the bits.
    Sample,
    /// Count instructions (QEMU `-icount shift=0`, SysTick as the counter).
    Count,
}

impl Board {
    /// QEMU's arguments for the board (before `-kernel ELF`).
    fn qemu_args(self) -> &'static [&'static str] {
        match self {
            Board::QemuM4 => &["-machine", "mps2-an386", "-cpu", "cortex-m4"],
            Board::QemuM0 => &["-machine", "microbit"],
        }
    }
}

/// Seconds QEMU may run before the run counts as hung.
const QEMU_TIMEOUT_S: u32 = 120;

/// Builds the firmware for `run` and `board`, runs it in QEMU (in `work`, where semihosting
/// writes files) and returns what it printed and the ELF it ran.
///
/// Builds share the firmware's target directory, so one command at a time builds: each holds
/// a lock on `firmware/target/tinyscore-build.lock` from the build until its ELF is copied
/// into `work`, and QEMU runs the copy.
fn build_and_run_mode(
    board: Board,
    run: &FirmwareRun,
    mode: Mode,
    work: &Path,
) -> Result<(String, Vec<u8>)> {
    let Some(method) = run.sampler.method() else {
        bail!(
            "the firmware samples on a time grid, with every sampler but ode-rk45 (which \
             chooses its own steps)"
        );
    };
    let sampler = method.name();
    if run.lower_order_final && !run.sampler.is_multistep() {
        bail!(
            "lower-order final steps apply to the multistep samplers dpm2, dpm3 and unipc, not {}",
            run.sampler.name()
        );
    }
    let (task, rtol, atol, max_steps) = match &run.likelihood {
        None => ("sample", 1e-5, 1e-5, 10_000),
        Some(task) => {
            let mut points = Vec::with_capacity(4 * task.points.values.len());
            for v in &task.points.values {
                points.extend_from_slice(&v.to_le_bytes());
            }
            let path = work.join(POINTS_FILE);
            std::fs::write(&path, points)
                .with_context(|| format!("cannot write {}", path.display()))?;
            ("likelihood", task.rtol, task.atol, task.max_steps)
        }
    };
    let model = std::fs::canonicalize(&run.model)
        .with_context(|| format!("cannot read {}", run.model.display()))?;
    // Only an int16x8 model's build links the int16x8 parser and evaluator.
    let int16x8 = std::fs::read(&model).is_ok_and(|bytes| {
        tinyscore::Model::parse(&bytes)
            .is_ok_and(|m| m.header().precision == tinyscore::model::Precision::Int16x8)
    });
    let lock = build_lock()?;
    eprintln!("building the firmware for {} …", board.name());
    let build = Command::new("cargo")
        .current_dir(firmware_dir())
        .args(["build", "--release", "-q", "--target", board.target()])
        .args(if int16x8 {
            &["--features", "int16x8"][..]
        } else {
            &[]
        })
        .env("TINYSCORE_MODEL", &model)
        .env("TINYSCORE_SAMPLER", sampler)
        .env("TINYSCORE_STEPS", run.steps.to_string())
        .env(
            "TINYSCORE_GRID",
            run.fitted.map_or(String::new(), |fitted| {
                let fractions: Vec<String> = fitted
                    .grid
                    .interior()
                    .iter()
                    .map(|u| format!("{u:?}"))
                    .collect();
                fractions.join(",")
            }),
        )
        .env(
            "TINYSCORE_BESPOKE",
            run.fitted
                .and_then(|f| f.bespoke)
                .map_or(String::new(), |b| {
                    let values: Vec<String> = b
                        .coefficients()
                        .iter()
                        .flatten()
                        .map(|c| format!("{c:?}"))
                        .collect();
                    values.join(",")
                }),
        )
        .env(
            "TINYSCORE_SCHEDULE",
            match run.schedule {
                ScheduleKind::Uniform => "uniform",
                ScheduleKind::Karras => "karras",
                ScheduleKind::Logsnr => "logsnr",
            },
        )
        .env(
            "TINYSCORE_LOWER_ORDER_FINAL",
            if run.lower_order_final { "1" } else { "0" },
        )
        .env("TINYSCORE_PARTICLES", run.particles.to_string())
        .env("TINYSCORE_SEED", run.seed.to_string())
        .env("TINYSCORE_TASK", task)
        .env("TINYSCORE_RTOL", format!("{rtol:?}"))
        .env("TINYSCORE_ATOL", format!("{atol:?}"))
        .env("TINYSCORE_MAX_STEPS", max_steps.to_string())
        .env(
            "TINYSCORE_SINK",
            match run.sink {
                Sink::Defmt => "defmt",
                Sink::Binary => "binary",
            },
        )
        .env(
            "TINYSCORE_MODE",
            if mode == Mode::Count {
                "count"
            } else {
                "sample"
            },
        )
        // The host's own flags (coverage, target-cpu) must not reach the chip's build.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .context("cannot run cargo to build the firmware")?;
    if !build.status.success() {
        bail!(
            "the firmware does not build for {}:\n{}",
            board.name(),
            String::from_utf8_lossy(&build.stderr).trim_end()
        );
    }
    let built = elf_path(board);
    let elf = std::fs::read(&built).with_context(|| format!("cannot read {}", built.display()))?;
    let elf_path = work.join("firmware.elf");
    std::fs::write(&elf_path, &elf)
        .with_context(|| format!("cannot write {}", elf_path.display()))?;
    drop(lock);
    eprintln!("running it in QEMU ({}) …", board.name());
    let mut qemu = Command::new("timeout");
    qemu.arg(QEMU_TIMEOUT_S.to_string())
        .arg("qemu-system-arm")
        .args(board.qemu_args())
        .args([
            "-nographic",
            "-semihosting-config",
            "enable=on,target=native",
        ]);
    if mode == Mode::Count {
        qemu.args(["-icount", "shift=0"]);
    }
    let output = qemu
        .current_dir(work)
        .arg("-kernel")
        .arg(&elf_path)
        .output()
        .context("cannot run qemu-system-arm (install it: apt-get install qemu-system-arm)")?;
    let stdout = decode_defmt(&elf, &output.stdout)?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reported = stdout
            .lines()
            .chain(stderr.lines())
            .find(|l| l.starts_with("error"))
            .unwrap_or("no error line");
        let why = match output.status.code() {
            Some(124) => format!("QEMU timed out after {QEMU_TIMEOUT_S} s"),
            Some(code) => format!("exit status {code}"),
            None => "killed by a signal".to_string(),
        };
        let stderr = stderr.trim_end();
        let stderr = if stderr.is_empty() {
            String::new()
        } else {
            format!("\n{stderr}")
        };
        bail!(
            "{}: the firmware failed on {} ({why}): {reported}{stderr}",
            run.model.display(),
            board.name()
        );
    }
    Ok((stdout, elf))
}

/// Instructions the Cortex-M4F spends (QEMU counts instructions, not cycles).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Counts {
    /// Per score-network evaluation.
    pub per_score: f64,
    /// Per score-network evaluation with the portable kernel for packed int8 layers (the
    /// same as `per_score` where no faster kernel is installed).
    pub per_score_portable: f64,
    /// Per score-network evaluation when the samplers evaluate `lockstep` particles at one
    /// time together, as the firmware samples.
    #[serde(rename = "instructions_per_evaluation")]
    pub per_score_lockstep: f64,
    /// Particles the firmware samples in lockstep.
    pub lockstep: u64,
    /// Per multiply–accumulate of the int8 kernel alone: a 64 × 64 layer a call, the call
    /// included.
    pub kernel_per_mac: f64,
    /// Multiply–accumulates per evaluation (Σ inputs·outputs over the layers).
    pub macs_per_score: u64,
    /// Per standard normal.
    pub per_gaussian: f64,
    /// One whole sample (the configured sampler and steps, from the prior's draw to the
    /// sample sent): the run's instructions over its particles (`lockstep` of them), less
    /// the start-up check of the model, which a board makes once.
    #[serde(rename = "instructions_per_sample")]
    pub per_sample: f64,
    /// The start-up check of the model (its CRC-32 and every field), once per run.
    #[serde(rename = "instructions_at_start_up")]
    pub start_up: f64,
}

/// Instructions per tick of SysTick on `mps2-an386` under `-icount shift=0` (one instruction
/// per virtual nanosecond, SysTick at the 25 MHz core clock).
const INSTRUCTIONS_PER_TICK: f64 = 40.0;

/// Counts instructions on the Cortex-M4F for the model in `run`.
pub fn count(run: &FirmwareRun) -> Result<Counts> {
    let work = tempfile::tempdir().context("cannot create a directory for QEMU")?;
    let (output, _) = build_and_run_mode(Board::QemuM4, run, Mode::Count, work.path())?;
    let field = |key: &str| -> Result<f64> {
        output
            .lines()
            .filter_map(|l| l.strip_prefix("count "))
            .find_map(|rest| {
                let (name, value) = rest.split_once(' ')?;
                (name == key).then(|| value.trim().parse::<f64>().ok())?
            })
            .with_context(|| format!("the firmware reported no `count {key}`:\n{output}"))
    };
    let bytes = std::fs::read(&run.model)?;
    let model = tinyscore::Model::parse(&bytes)?;
    let dims = model.header().dims;
    let macs = (0..=dims.layers)
        .map(|i| {
            let (inputs, outputs) = dims.layer_shape(i);
            (inputs * outputs) as u64
        })
        .sum();
    let lockstep = field("lockstep")?;
    Ok(Counts {
        per_score: field("score_ticks_x64")? * INSTRUCTIONS_PER_TICK / 64.0,
        per_score_lockstep: field("score_lockstep_ticks_x4")? * INSTRUCTIONS_PER_TICK
            / (4.0 * lockstep),
        lockstep: lockstep as u64,
        per_score_portable: field("score_portable_ticks_x64")? * INSTRUCTIONS_PER_TICK / 64.0,
        kernel_per_mac: field("kernel_ticks_x64_4096mac")? * INSTRUCTIONS_PER_TICK
            / (64.0 * 4096.0),
        macs_per_score: macs,
        per_gaussian: field("gaussian_ticks_x4096")? * INSTRUCTIONS_PER_TICK / 4096.0,
        per_sample: (field("sample_ticks")? - field("parse_ticks")?) * INSTRUCTIONS_PER_TICK
            / run.particles.max(1) as f64,
        start_up: field("parse_ticks")? * INSTRUCTIONS_PER_TICK,
    })
}

/// Instructions per point of the likelihood task on the Cortex-M4F (the mean over the
/// points of `run.likelihood`).
pub fn count_likelihood(run: &FirmwareRun) -> Result<f64> {
    let work = tempfile::tempdir().context("cannot create a directory for QEMU")?;
    let (output, _) = build_and_run_mode(Board::QemuM4, run, Mode::Count, work.path())?;
    let field = |key: &str| -> Result<f64> {
        output
            .lines()
            .find_map(|l| l.strip_prefix(&format!("count {key} ")))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("the firmware reported no `count {key}`:\n{output}"))
    };
    Ok(field("likelihood_ticks")? * INSTRUCTIONS_PER_TICK / field("likelihood_points")?.max(1.0))
}

/// The lock a firmware build holds from its `cargo build` until its ELF is copied out of the
/// shared target directory (released when dropped): two commands at once build one after the
/// other, and each runs and decodes the firmware it built.
pub fn build_lock() -> Result<std::fs::File> {
    let dir = firmware_dir().join("target");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("tinyscore-build.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    file.lock()
        .with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(file)
}

/// The firmware ELF of the last build for `board`.
fn elf_path(board: Board) -> PathBuf {
    firmware_dir()
        .join("target")
        .join(board.target())
        .join("release/tinyscore-firmware")
}

/// The messages of a defmt stream, one per line, decoded with the table in `elf`.
pub fn decode_defmt(elf: &[u8], stream: &[u8]) -> Result<String> {
    let table = defmt_decoder::Table::parse(elf)
        .context("cannot read the firmware's defmt table")?
        .context("the firmware has no defmt table")?;
    let mut decoder = table.new_stream_decoder();
    decoder.received(stream);
    let mut text = String::new();
    loop {
        match decoder.decode() {
            Ok(frame) => {
                text.push_str(&frame.display_message().to_string());
                text.push('\n');
            }
            Err(defmt_decoder::DecodeError::UnexpectedEof) => break,
            Err(defmt_decoder::DecodeError::Malformed) => {
                bail!("the firmware's defmt stream is malformed after:\n{text}")
            }
        }
    }
    Ok(text)
}

/// The `sample <i> [<x₀ bits>, <x₁ bits>, …]` lines of the firmware's output (f32 bits in
/// hex), each of `dim` coordinates.
pub fn parse_samples(output: &str, dim: usize) -> Result<Samples> {
    let mut values = Vec::new();
    for rest in output
        .lines()
        .filter_map(|line| line.strip_prefix("sample "))
    {
        let malformed = || anyhow::anyhow!("malformed sample line `sample {rest}`");
        let (_index, bits) = rest.split_once(' ').ok_or_else(malformed)?;
        let bits = bits
            .trim()
            .strip_prefix('[')
            .and_then(|b| b.strip_suffix(']'))
            .ok_or_else(malformed)?;
        let fields: Vec<&str> = bits.split(',').map(str::trim).collect();
        ensure!(
            fields.len() == dim,
            "sample line `sample {rest}` has {} coordinates, the model {dim}",
            fields.len()
        );
        for field in fields {
            let hex = field.trim_start_matches("0x");
            let bits = u32::from_str_radix(hex, 16)
                .with_context(|| format!("bad bits `{field}` in `sample {rest}`"))?;
            values.push(f32::from_bits(bits));
        }
    }
    Ok(Samples { dim, values })
}
