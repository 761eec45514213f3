//! The firmware in QEMU against the host, bit for bit: the reference model in f32 and int8,
//! on the Cortex-M4F (`mps2-an386`, hard float) and the Cortex-M0 (`microbit`, no FPU: f32 in
//! soft float, int8 integer-only), for Euler–Maruyama, predictor–corrector, probability-flow
//! Heun and annealed Langevin. And a corrupted model makes the firmware fail with its error.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use tinyscore::ModelSde;
use tinyscore_host::options::{NetworkScore, SampleOptions, SamplerKind, ScheduleKind, SdeKind};
use tinyscore_tests::{reference_int8, reference_model_bytes};

/// The QEMU boards: (target, name).
const BOARDS: [(&str, &str); 2] = [
    ("thumbv7em-none-eabihf", "qemu-m4 (Cortex-M4F)"),
    ("thumbv6m-none-eabi", "qemu-m0 (Cortex-M0)"),
];

const STEPS: u32 = 40;
const PARTICLES: usize = 4;
const SEED: u64 = 5;

fn firmware_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../firmware")
}

fn require_qemu() {
    let found = Command::new("qemu-system-arm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "qemu-system-arm is missing: `cargo xtask setup` installs it (apt-get install \
         qemu-system-arm)"
    );
}

/// The firmware's build directory is shared: one build-and-run at a time, or a test could
/// run the binary another test just rebuilt with its own model.
static FIRMWARE: Mutex<()> = Mutex::new(());

/// Builds the firmware for `target` with `model` and runs it in QEMU; returns its status
/// and output.
fn run_firmware(target: &str, model: &Path, sampler: &str) -> (bool, String) {
    let _one_at_a_time = FIRMWARE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let output = Command::new("cargo")
        .current_dir(firmware_dir())
        .args(["run", "--release", "-q", "--target", target])
        .env("TINYSCORE_MODEL", model)
        .env("TINYSCORE_SAMPLER", sampler)
        .env("TINYSCORE_STEPS", STEPS.to_string())
        .env("TINYSCORE_PARTICLES", PARTICLES.to_string())
        .env("TINYSCORE_SEED", SEED.to_string())
        // The host's own flags (coverage, target-cpu) must not reach the chip's build.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("cargo runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

/// The `sample i x0 x1` lines as bit patterns.
fn firmware_samples(output: &str) -> Vec<[u32; 2]> {
    output
        .lines()
        .filter_map(|line| line.strip_prefix("sample "))
        .map(|rest| {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let bits = |s: &str| u32::from_str_radix(s, 16).expect("hex bits");
            [bits(fields[1]), bits(fields[2])]
        })
        .collect()
}

fn host_samples(bytes: &[u8], sampler: SamplerKind) -> Vec<[u32; 2]> {
    let model = tinyscore::Model::parse(bytes).unwrap();
    let sde: ModelSde = model.header().sde;
    let options = SampleOptions {
        sampler,
        sde: SdeKind::Vp,
        steps: STEPS,
        schedule: ScheduleKind::Uniform,
        denoise: false,
        n: PARTICLES,
        seed: SEED,
        threads: 2,
        t_end: model.header().t_end,
    };
    NetworkScore(bytes.to_vec())
        .sample(sde, &options, false)
        .unwrap()
        .iter()
        .map(|x| x.map(f32::to_bits))
        .collect()
}

#[test]
fn firmware_samples_are_bit_identical_to_the_host() {
    require_qemu();
    let dir = tempfile::tempdir().unwrap();
    let models = [
        ("f32", reference_model_bytes()),
        ("int8", reference_int8().1),
    ];
    let samplers = [
        ("em", SamplerKind::Em),
        ("pc", SamplerKind::Pc),
        ("ode-heun", SamplerKind::OdeHeun),
        ("ald", SamplerKind::Ald),
    ];
    for (precision, bytes) in &models {
        let path = dir.path().join(format!("{precision}.tsm"));
        std::fs::write(&path, bytes).unwrap();
        for (name, kind) in samplers {
            let expected = host_samples(bytes, kind);
            for (target, board) in BOARDS {
                let (ok, output) = run_firmware(target, &path, name);
                assert!(
                    ok,
                    "{board}, {precision}, {name}: firmware failed:\n{output}"
                );
                assert_eq!(
                    firmware_samples(&output),
                    expected,
                    "{board}, {precision}, {name}: samples differ from the host"
                );
                println!("{board:<22} {precision:<5} {name:<9} {PARTICLES} samples bit-identical");
            }
        }
    }
}

#[test]
fn a_corrupted_model_makes_the_firmware_report_and_fail() {
    require_qemu();
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = reference_int8().1;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    let path = dir.path().join("corrupted.tsm");
    std::fs::write(&path, &bytes).unwrap();
    for (target, board) in BOARDS {
        let (ok, output) = run_firmware(target, &path, "em");
        assert!(!ok, "{board}: a corrupted model ran:\n{output}");
        assert!(
            output.contains("error: model file: checksum mismatch"),
            "{board}: no parse error reported:\n{output}"
        );
    }
}
