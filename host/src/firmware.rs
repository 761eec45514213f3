//! Building the firmware for a model and running it in QEMU (`tinyscore firmware run`).
//!
//! The firmware (`firmware/`, outside the host workspace) bakes in the model and the sampling
//! configuration at build time from `TINYSCORE_*` variables, prints each sample's f32 bits over
//! semihosting and exits QEMU with its status; this module drives that and reads the bits back.

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

/// The firmware's directory in this checkout.
pub fn firmware_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../firmware")
}

/// Builds the firmware for `run` and `board`, runs it in QEMU (which the runner limits to
/// 120 s) and returns the samples in the model's normalised coordinates, bit for bit as the
/// chip computed them.
pub fn run(board: Board, run: &FirmwareRun) -> Result<Vec<[f32; 2]>> {
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
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
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
    let samples = parse_samples(&stdout)?;
    ensure!(
        samples.len() == run.particles,
        "the firmware printed {} samples, expected {}",
        samples.len(),
        run.particles
    );
    Ok(samples)
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
