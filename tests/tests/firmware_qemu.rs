//! The firmware in QEMU against the host, bit for bit: the reference model in f32, int8 and
//! int16x8, on the Cortex-M4F (`mps2-an386`, hard float) and the Cortex-M0 (`microbit`, no
//! FPU: f32 in soft float, int8 integer-only), for every sampler on a time grid (the core's `Method`s:
//! Euler–Maruyama, reverse diffusion, ancestral, predictor–corrector, annealed Langevin and
//! every deterministic one); a 3-D model likewise. And a corrupted model makes the firmware
//! fail with its error. The binary sink's records carry the same bits as the defmt frames. The
//! M4 runs int8 models packed, with the SMLAD kernel, which agrees with the portable one. The
//! likelihood task gives `tinyscore likelihood`'s bits on both cores.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use tinyscore::model::Rounding;
use tinyscore_host::bench::DETERMINISTIC;
use tinyscore_host::firmware::LikelihoodTask;
use tinyscore_host::firmware::{self, Board, FirmwareRun, Sink};
use tinyscore_host::likelihood::{model_end_log_density, model_likelihood, LikelihoodOptions};
use tinyscore_host::points::Samples;
use tinyscore_host::progress::Progress;
use tinyscore_host::quantize::ActivationWidth;
use tinyscore_host::sampling::{sample_model, SampleOptions, SamplerKind, ScheduleKind};
use tinyscore_host::schedule::GridFile;
use tinyscore_tests::{helix_int8, raw_moons, reference_int8, reference_model_bytes};

/// The QEMU boards.
const BOARDS: [Board; 2] = [Board::QemuM4, Board::QemuM0];

const STEPS: u32 = 40;
const PARTICLES: usize = 4;
const SEED: u64 = 5;

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

/// One QEMU run at a time: the runs are long, and two at once on a 2-core machine only slow
/// each other. (Concurrent runs are safe: `two_runs_at_once_each_get_their_own_firmware`.)
static FIRMWARE: Mutex<()> = Mutex::new(());

/// A run of the test's steps and seed.
fn settings(model: &Path, sampler: SamplerKind, sink: Sink, particles: usize) -> FirmwareRun {
    FirmwareRun {
        model: model.to_path_buf(),
        sampler,
        steps: STEPS,
        schedule: ScheduleKind::Uniform,
        fitted: None,
        lower_order_final: false,
        particles,
        seed: SEED,
        sink,
        likelihood: None,
    }
}

/// Each sample's coordinates' bits, row after row.
fn run_on(board: Board, model: &Path, sampler: SamplerKind) -> anyhow::Result<Vec<u32>> {
    run_with(board, model, sampler, Sink::Defmt, PARTICLES)
}

fn run_with(
    board: Board,
    model: &Path,
    sampler: SamplerKind,
    sink: Sink,
    particles: usize,
) -> anyhow::Result<Vec<u32>> {
    let _one_at_a_time = FIRMWARE.lock().unwrap_or_else(|p| p.into_inner());
    Ok(
        firmware::run(board, &settings(model, sampler, sink, particles))?
            .values
            .iter()
            .map(|x| x.to_bits())
            .collect(),
    )
}

fn host_samples(bytes: &[u8], sampler: SamplerKind, n: usize) -> Vec<u32> {
    let model = tinyscore::Model::parse(bytes).unwrap();
    let options = SampleOptions {
        sampler,
        steps: STEPS,
        schedule: ScheduleKind::Uniform,
        denoise: false,
        n,
        first: 0,
        seed: SEED,
        threads: 2,
        t_end: model.header().t_end,
        adaptive: tinyscore_host::sampling::default_adaptive(),
        init: None,
        fitted: None,
        bespoke: None,
        lower_order_final: false,
    };
    sample_model(
        model,
        &options,
        &tinyscore_host::progress::Progress::silent(),
    )
    .unwrap()
    .values
    .iter()
    .map(|x| x.to_bits())
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
    // The stochastic samplers, then every deterministic one.
    let stochastic = [
        SamplerKind::Em,
        SamplerKind::Rd,
        SamplerKind::Ancestral,
        SamplerKind::Pc,
        SamplerKind::Ald,
    ];
    let samplers: Vec<SamplerKind> = stochastic.into_iter().chain(DETERMINISTIC).collect();
    for (precision, bytes) in &models {
        let path = dir.path().join(format!("{precision}.tsm"));
        std::fs::write(&path, bytes).unwrap();
        for &kind in &samplers {
            let name = kind.name();
            let expected = host_samples(bytes, kind, PARTICLES);
            for board in BOARDS {
                let got = run_on(board, &path, kind)
                    .unwrap_or_else(|e| panic!("{board:?}, {precision}, {name}: {e:#}"));
                assert_eq!(
                    got, expected,
                    "{board:?}, {precision}, {name}: samples differ from the host"
                );
                println!("{board:?} {precision:<5} {name:<9} {PARTICLES} samples bit-identical");
            }
        }
    }
}

#[test]
fn a_single_rounding_model_gives_the_hosts_bits_on_both_cores() {
    // The Cortex-M4 runs its fused assembly for single rounding (SMMUL, ties up), the M0
    // the portable evaluator; both must give the host's bits, and the count build checks
    // the assembly against the portable kernel on random layers.
    require_qemu();
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = tinyscore_tests::reference_int8_rounding(tinyscore::model::Rounding::Single);
    assert_ne!(
        bytes,
        reference_int8().1,
        "the rounding is recorded in the file"
    );
    let path = dir.path().join("single.tsm");
    std::fs::write(&path, &bytes).unwrap();
    for sampler in [SamplerKind::Em, SamplerKind::Unipc] {
        let expected = host_samples(&bytes, sampler, PARTICLES);
        for board in BOARDS {
            let got = run_on(board, &path, sampler)
                .unwrap_or_else(|e| panic!("{board:?}, single rounding, {sampler:?}: {e:#}"));
            assert_eq!(got, expected, "{board:?}, single rounding, {sampler:?}");
        }
    }
    let _one_at_a_time = FIRMWARE.lock().unwrap_or_else(|p| p.into_inner());
    let counts = firmware::count(&settings(&path, SamplerKind::Em, Sink::Defmt, 16)).unwrap();
    println!(
        "single rounding: {:.0} instructions an evaluation on the M4",
        counts.per_score_lockstep
    );
}

#[test]
fn an_int16x8_model_gives_the_hosts_bits_on_both_cores() {
    // int16 activations run packed on the M4, through the SMLAD wide kernel with the int16
    // requantization and interpolated SiLU fused into its assembly (assembled for the
    // model's rounding, so both are run), and on the portable integer evaluator on the M0:
    // the host's bits on both, and what an evaluation costs on the M4. The count build
    // checks the fused assembly against the portable kernel on random layers.
    require_qemu();
    let dir = tempfile::tempdir().unwrap();
    for rounding in [Rounding::Double, Rounding::Single] {
        let bytes = tinyscore_tests::reference_quantized(ActivationWidth::Int16, rounding).1;
        let path = dir.path().join("int16x8.tsm");
        std::fs::write(&path, &bytes).unwrap();
        for sampler in [SamplerKind::Em, SamplerKind::Unipc] {
            let expected = host_samples(&bytes, sampler, PARTICLES);
            for board in BOARDS {
                let got = run_on(board, &path, sampler).unwrap_or_else(|e| {
                    panic!("{board:?}, int16x8, {rounding:?}, {sampler:?}: {e:#}")
                });
                assert_eq!(
                    got, expected,
                    "{board:?}, int16x8, {rounding:?}, {sampler:?}"
                );
            }
        }
        let _one_at_a_time = FIRMWARE.lock().unwrap_or_else(|p| p.into_inner());
        let counts = firmware::count(&settings(&path, SamplerKind::Em, Sink::Defmt, 16)).unwrap();
        let per_evaluation = counts.per_score_lockstep;
        println!("int16x8, {rounding:?}: {per_evaluation:.0} instructions an evaluation on the M4");
        // Fused, the 6 400 MACs take about 7 200 instructions; with the activation in Rust
        // after the kernel about 11 900, on the portable evaluator about 47 000: a build that
        // lost the fused kernel or the packed layout fails here.
        assert!(
            per_evaluation < 9_000.0,
            "int16x8, {rounding:?}, on the M4: {per_evaluation:.0} instructions an evaluation"
        );
    }
}

#[test]
fn a_three_dimensional_model_samples_bit_identically_on_both_cores() {
    require_qemu();
    let dir = tempfile::tempdir().unwrap();
    let bytes = helix_int8();
    let path = dir.path().join("helix-int8.tsm");
    std::fs::write(&path, &bytes).unwrap();
    // More particles than the firmware samples in lockstep (16 for 3-D data), so that a
    // second, partial batch takes the streams from 16 on.
    let particles = 19;
    let expected = host_samples(&bytes, SamplerKind::Em, particles);
    assert_eq!(expected.len(), 3 * particles);
    for board in BOARDS {
        let got = run_with(board, &path, SamplerKind::Em, Sink::Defmt, particles)
            .unwrap_or_else(|e| panic!("{board:?}, 3-D int8: {e:#}"));
        assert_eq!(
            got, expected,
            "{board:?}, 3-D int8: samples differ from the host"
        );
    }
}

#[test]
fn the_binary_sink_sends_the_same_bits_as_records() {
    require_qemu();
    let dir = tempfile::tempdir().unwrap();
    let bytes = reference_int8().1;
    let path = dir.path().join("int8.tsm");
    std::fs::write(&path, &bytes).unwrap();
    let expected = host_samples(&bytes, SamplerKind::Pc, PARTICLES);
    for board in BOARDS {
        let got = run_with(board, &path, SamplerKind::Pc, Sink::Binary, PARTICLES)
            .unwrap_or_else(|e| panic!("{board:?}, binary sink: {e:#}"));
        assert_eq!(
            got, expected,
            "{board:?}: the binary records differ from the host"
        );
    }
}

#[test]
fn binary_records_out_of_order_or_cut_short_are_refused() {
    let record = |i: u32, x: f32, y: f32| -> Vec<u8> {
        [i, x.to_bits(), y.to_bits()]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect()
    };
    let good = [record(0, 1.0, -2.0), record(1, 0.5, 3.0)].concat();
    let samples = firmware::parse_records(&good, 2).unwrap();
    assert_eq!(samples.values, vec![1.0, -2.0, 0.5, 3.0]);
    assert!(firmware::parse_records(&good[..good.len() - 1], 2).is_err());
    let swapped = [record(1, 0.5, 3.0), record(0, 1.0, -2.0)].concat();
    assert!(firmware::parse_records(&swapped, 2).is_err());
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
    for board in BOARDS {
        let error =
            run_on(board, &path, SamplerKind::Em).expect_err("a corrupted model must not run");
        let error = format!("{error:#}");
        // The chip's own report, in the words the host's parser uses (not defmt's rendering
        // of the error's fields).
        assert!(
            error.contains("error: model file: checksum mismatch: the file says 0x"),
            "{board:?}: the chip's parse error is not reported in words: {error}"
        );
    }
}

#[test]
fn the_cortex_m4_runs_the_packed_model_with_the_smlad_kernel() {
    // The `count` build evaluates the score with the installed kernel and with the portable
    // one and fails unless their bits agree; it succeeding on the int8 model, with the
    // installed kernel taking fewer instructions, shows that the M4 build packed the model
    // and runs the assembly kernel, and that the kernel gives the portable bits. The build
    // also checks a batch of particles at one time (the lockstep the samplers run) against
    // the portable kernel point by point; that batch costing less a point shows its time
    // features' sums are shared.
    require_qemu();
    let _one_at_a_time = FIRMWARE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("int8.tsm");
    std::fs::write(&path, reference_int8().1).unwrap();
    let counts = firmware::count(&FirmwareRun {
        model: path,
        sampler: SamplerKind::Em,
        steps: STEPS,
        schedule: ScheduleKind::Uniform,
        fitted: None,
        lower_order_final: false,
        particles: 1,
        seed: SEED,
        sink: Sink::Defmt,
        likelihood: None,
    })
    .expect("the count build runs and its kernels agree");
    assert!(
        counts.per_score < counts.per_score_portable,
        "the SMLAD kernel is not in use: {counts:?}"
    );
    assert!(
        counts.per_score_lockstep < counts.per_score,
        "the batch does not share its time features' work: {counts:?}"
    );
}

#[test]
fn a_run_waits_for_the_build_lock() {
    require_qemu();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("ref-int8.tsm");
    std::fs::write(&model, reference_int8().1).unwrap();
    let lock = firmware::build_lock().unwrap();
    let run = std::thread::spawn(move || {
        let run = settings(&model, SamplerKind::Em, Sink::Defmt, PARTICLES);
        firmware::run(Board::QemuM4, &run).map(|s| s.len())
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(
        !run.is_finished(),
        "the run built while another build held the lock"
    );
    drop(lock);
    let got = run.join().unwrap();
    assert_eq!(got.unwrap_or_else(|e| panic!("{e:#}")), PARTICLES);
}

#[test]
fn two_runs_at_once_each_get_their_own_firmware() {
    require_qemu();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("ref-int8.tsm");
    std::fs::write(&model, reference_int8().1).unwrap();
    // Two builds with different settings, started together without the test's lock: each
    // must run (and decode with) the firmware it built, not the one the other built after.
    let runs = [(SamplerKind::Em, 16), (SamplerKind::Pc, 4)].map(|(sampler, particles)| {
        let model = model.clone();
        std::thread::spawn(move || {
            let run = settings(&model, sampler, Sink::Defmt, particles);
            firmware::run(Board::QemuM4, &run).map(|s| s.len())
        })
    });
    for (handle, expected) in runs.into_iter().zip([16, 4]) {
        let got = handle.join().unwrap();
        assert_eq!(got.unwrap_or_else(|e| panic!("{e:#}")), expected);
    }
}

#[test]
fn the_chip_computes_the_hosts_likelihoods_bit_for_bit() {
    require_qemu();
    let dir = tempfile::tempdir().unwrap();
    let bytes = reference_model_bytes();
    let path = dir.path().join("reference.tsm");
    std::fs::write(&path, &bytes).unwrap();
    let model = tinyscore::Model::parse(&bytes).unwrap();
    let points = raw_moons(5, 9);
    // Looser than the default so that QEMU's runs stay short; the host uses the same.
    let (rtol, atol, max_steps) = (1e-4, 1e-4, 2000);
    let host = model_likelihood(
        model,
        &points,
        &LikelihoodOptions {
            rtol,
            atol,
            max_steps,
            hutchinson: None,
            seed: SEED,
            threads: 1,
        },
        &Progress::silent(),
    )
    .unwrap();
    let task = LikelihoodTask {
        points: Samples {
            dim: 2,
            values: points.values.iter().map(|&v| v as f32).collect(),
        },
        rtol,
        atol,
        max_steps,
    };
    for board in BOARDS {
        let _one_at_a_time = FIRMWARE.lock().unwrap_or_else(|p| p.into_inner());
        let mut run = settings(&path, SamplerKind::Em, Sink::Defmt, 1);
        run.likelihood = Some(task.clone());
        let chip = firmware::likelihood(board, &run).unwrap();
        assert_eq!(chip.len(), host.len());
        for (k, (chip, host)) in chip.iter().zip(&host).enumerate() {
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&chip.latent),
                bits(&host.latent),
                "{board:?} point {k}: latent"
            );
            assert_eq!(chip.nfe, host.nfe, "{board:?} point {k}: evaluations");
            let log_p = model_end_log_density(&model, &chip.latent) + chip.delta_log_p as f64;
            assert_eq!(
                log_p.to_bits(),
                host.log_p.to_bits(),
                "{board:?} point {k}: log p"
            );
        }
    }
}

#[test]
fn the_chip_follows_the_log_snr_and_karras_grids_and_lower_order_final_steps() {
    require_qemu();
    let dir = tempfile::tempdir().unwrap();
    let bytes = reference_int8().1;
    let path = dir.path().join("int8.tsm");
    std::fs::write(&path, &bytes).unwrap();
    let model = tinyscore::Model::parse(&bytes).unwrap();
    for (schedule, sampler, lower_order_final) in [
        (ScheduleKind::Logsnr, SamplerKind::Dpm3, false),
        (ScheduleKind::Karras, SamplerKind::EdmHeun, false),
        (ScheduleKind::Logsnr, SamplerKind::Dpm3, true),
        (ScheduleKind::Uniform, SamplerKind::Unipc, true),
    ] {
        let options = SampleOptions {
            schedule,
            lower_order_final,
            ..SampleOptions::uniform(sampler, 8, PARTICLES, SEED, model.header().t_end)
        };
        let bits = |values: &[f32]| values.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let expected = bits(
            &sample_model(model, &options, &Progress::silent())
                .unwrap()
                .values,
        );
        for board in BOARDS {
            let _one_at_a_time = FIRMWARE.lock().unwrap_or_else(|p| p.into_inner());
            let mut run = settings(&path, sampler, Sink::Defmt, PARTICLES);
            run.steps = 8;
            run.schedule = schedule;
            run.lower_order_final = lower_order_final;
            let got = bits(&firmware::run(board, &run).unwrap().values);
            assert_eq!(
                got, expected,
                "{board:?} {schedule:?} {sampler:?} lower order final {lower_order_final}"
            );
        }
    }
}

/// A fitted grid, with DPM-Solver++(2M) and with the bespoke solver's coefficients (any
/// finite rows: the chip must combine them as the host does).
#[test]
fn a_fitted_grid_and_bespoke_coefficients_give_the_hosts_bits_on_the_chip() {
    require_qemu();
    let dir = tempfile::tempdir().unwrap();
    let bytes = reference_int8().1;
    let path = dir.path().join("int8.tsm");
    std::fs::write(&path, &bytes).unwrap();
    let model = tinyscore::Model::parse(&bytes).unwrap();
    let grid = tinyscore::FittedGrid::new(&[0.05, 0.2, 0.45, 0.6, 0.8]).unwrap();
    let bespoke = tinyscore::Bespoke::new(&[
        [1.01, 0.013, 0.0, 0.0],
        [0.97, 0.06, -0.004, 0.0],
        [0.9, 0.21, -0.03, 0.011],
        [0.52, 0.83, -0.21, 0.07],
        [-0.33, 1.17, 0.29, 0.19],
        [-1.7, 2.4, 0.61, -0.05],
    ])
    .unwrap();
    let bits = |values: &[f32]| values.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for (sampler, bespoke) in [
        (SamplerKind::Dpm2, None),
        (SamplerKind::Bespoke, Some(bespoke)),
    ] {
        let options = SampleOptions {
            fitted: Some(grid),
            bespoke,
            ..SampleOptions::uniform(sampler, 6, PARTICLES, SEED, model.header().t_end)
        };
        let expected = bits(
            &sample_model(model, &options, &Progress::silent())
                .unwrap()
                .values,
        );
        for board in BOARDS {
            let _one_at_a_time = FIRMWARE.lock().unwrap_or_else(|p| p.into_inner());
            let mut run = settings(&path, sampler, Sink::Defmt, PARTICLES);
            run.steps = 6;
            run.fitted = Some(GridFile { grid, bespoke });
            let got = bits(&firmware::run(board, &run).unwrap().values);
            assert_eq!(got, expected, "{board:?} {sampler:?}");
        }
    }
}
