//! Building the firmware for a model and running it in QEMU (`tinyscore firmware run`).
//!
//! The firmware (`firmware/`, outside the host workspace) bakes in the model and the sampling
//! configuration at build time from `TINYSCORE_*` variables, sends each sample's f32 bits as a
//! defmt frame over semihosting and exits QEMU with its status; this module drives that and
//! decodes the frames with defmt-decoder and the ELF's table.

use crate::options::SamplerKind;
use anyhow::{bail, ensure, Context, Result};
use std::path::PathBuf;
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
    /// The sampler (the firmware has `em`, `pc`, `ode-heun` and `ald`).
    pub sampler: SamplerKind,
    /// Steps of the uniform time grid.
    pub steps: u32,
    /// Particles.
    pub particles: usize,
    /// Seed: particle i uses stream i.
    pub seed: u64,
}

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
    let output = build_and_run(board, run_settings)?;
    let elf_path = firmware_dir()
        .join("target")
        .join(board.target())
        .join("release/tinyscore-firmware");
    let elf =
        std::fs::read(&elf_path).with_context(|| format!("cannot read {}", elf_path.display()))?;
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
pub fn run(board: Board, run: &FirmwareRun) -> Result<Vec<[f32; 2]>> {
    let stdout = build_and_run(board, run)?;
    let samples = parse_samples(&stdout)?;
    ensure!(
        samples.len() == run.particles,
        "the firmware printed {} samples, expected {}",
        samples.len(),
        run.particles
    );
    Ok(samples)
}

/// Builds the firmware for `run` and `board`, runs it in QEMU and returns what it printed.
fn build_and_run(board: Board, run: &FirmwareRun) -> Result<String> {
    let sampler = match run.sampler {
        SamplerKind::Em | SamplerKind::Pc | SamplerKind::OdeHeun | SamplerKind::Ald => {
            run.sampler.name()
        }
        other => bail!(
            "the firmware samples with em, pc, ode-heun or ald, not {}",
            other.name()
        ),
    };
    let model = std::fs::canonicalize(&run.model)
        .with_context(|| format!("cannot read {}", run.model.display()))?;
    let output = Command::new("cargo")
        .current_dir(firmware_dir())
        .args(["run", "--release", "-q", "--target", board.target()])
        .env("TINYSCORE_MODEL", &model)
        .env("TINYSCORE_SAMPLER", &sampler)
        .env("TINYSCORE_STEPS", run.steps.to_string())
        .env("TINYSCORE_PARTICLES", run.particles.to_string())
        .env("TINYSCORE_SEED", run.seed.to_string())
        // The host's own flags (coverage, target-cpu) must not reach the chip's build.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .context("cannot run cargo to build the firmware")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let elf_path = elf_path(board);
    let stdout = match std::fs::read(&elf_path) {
        Ok(elf) => decode_defmt(&elf, &output.stdout)?,
        Err(_) if !output.status.success() => String::new(), // the build failed: see stderr
        Err(e) => return Err(e).context(format!("cannot read {}", elf_path.display())),
    };
    if !output.status.success() {
        let reported = stdout
            .lines()
            .chain(stderr.lines())
            .find(|l| l.starts_with("error"))
            .unwrap_or("no error line");
        let why = match output.status.code() {
            Some(124) => "QEMU timed out after 120 s".to_string(),
            Some(code) => format!("exit status {code}"),
            None => "killed by a signal".to_string(),
        };
        bail!(
            "the firmware failed on {board:?} ({why}): {reported}\n{}",
            stderr.trim_end()
        );
    }
    Ok(stdout)
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

/// The `sample <i> <x₀ bits> <x₁ bits>` lines of the firmware's output.
pub fn parse_samples(output: &str) -> Result<Vec<[f32; 2]>> {
    output
        .lines()
        .filter_map(|line| line.strip_prefix("sample "))
        .map(|rest| {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            ensure!(fields.len() == 3, "malformed sample line `sample {rest}`");
            let value = |s: &str| -> Result<f32> {
                Ok(f32::from_bits(
                    u32::from_str_radix(s, 16).with_context(|| format!("bad bits `{s}`"))?,
                ))
            };
            Ok([value(fields[1])?, value(fields[2])?])
        })
        .collect()
}
