//! The `tinyscore` command end to end: real processes, real files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tinyscore(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tinyscore"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Runs `tinyscore args…`, which must succeed.
fn tinyscore_ok(args: &[&str]) -> Output {
    let o = tinyscore(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tinyscore-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn sample_output_does_not_depend_on_the_thread_count() {
    let dir = scratch("threads");
    let (one, two) = (dir.join("one.csv"), dir.join("two.csv"));
    for (threads, out) in [("1", &one), ("2", &two)] {
        let o = tinyscore(&[
            "sample",
            "--exact",
            "8gaussians",
            "--sampler",
            "pc",
            "--steps",
            "50",
            "-n",
            "300",
            "--seed",
            "7",
            "--threads",
            threads,
            "--out",
            path_str(out),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let (a, b) = (std::fs::read(&one).unwrap(), std::fs::read(&two).unwrap());
    assert_eq!(a, b);
    assert_eq!(String::from_utf8(a).unwrap().lines().count(), 301);
}

#[test]
fn sample_then_eval_reports_the_metrics_as_json() {
    let dir = scratch("eval");
    let out = dir.join("s.csv");
    let o = tinyscore(&[
        "sample",
        "--exact",
        "8gaussians",
        "--sampler",
        "ode-heun",
        "--steps",
        "100",
        "-n",
        "2000",
        "--out",
        path_str(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = tinyscore(&["eval", path_str(&out), "--against", "8gaussians", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["energy", "floor", "mmd2", "sw2"]);
    // The exact score and 100 Heun steps land within a few floors of the data: sw2 of
    // 2000-point sets fluctuates by about the floor itself.
    let (sw2, floor) = (
        v["sw2"].as_f64().unwrap(),
        v["floor"]["sw2"].as_f64().unwrap(),
    );
    assert!(sw2 < 3.0 * floor, "sw2 {sw2}, floor {floor}");
    // Against the wrong dataset the metric is far above the floor.
    let o = tinyscore(&["eval", path_str(&out), "--against", "moons", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["sw2"].as_f64().unwrap() > 10.0 * v["floor"]["sw2"].as_f64().unwrap());
}

#[test]
fn bad_csv_is_rejected_with_file_line_and_column() {
    let dir = scratch("badcsv");
    let cases = [
        (
            "ragged.csv",
            "x,y\n1,2\n3\n",
            "line 3: 1 fields, the header has 2",
        ),
        (
            "text.csv",
            "x,y\n1,2\n3,abc\n",
            "line 3, column 2: `abc` is not a number",
        ),
        (
            "nan.csv",
            "x,y\nNaN,1\n",
            "line 2, column 1: `NaN` is not finite",
        ),
        (
            "inf.csv",
            "x,y\n1,2\n1,inf\n",
            "line 3, column 2: `inf` is not finite",
        ),
        ("empty.csv", "x,y\n", "no data rows"),
    ];
    for (name, text, message) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let o = tinyscore(&["eval", path_str(&path), "--against", "8gaussians"]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{name} was accepted");
        assert!(
            stderr.contains(name) && stderr.contains(message),
            "{name}: {stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "one-line error: {stderr}");
    }
}

#[test]
fn impossible_parameters_fail_cleanly_and_write_nothing() {
    let dir = scratch("bad-params");
    let out = dir.join("never.csv");
    for args in [
        vec!["--steps", "0"],
        vec!["--sde", "subvp", "--sampler", "ancestral"],
        vec!["--sampler", "nonsense"],
    ] {
        let mut all = vec![
            "sample",
            "--exact",
            "8gaussians",
            "-n",
            "10",
            "--out",
            path_str(&out),
        ];
        all.extend(args.iter().copied());
        let o = tinyscore(&all);
        assert!(!o.status.success(), "{args:?} was accepted");
        assert!(!out.exists(), "{args:?} left a file");
    }
    let o = tinyscore(&["sample", "--exact", "moons", "--out", path_str(&out)]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no closed-form score"));
}

#[test]
fn demo_writes_its_report_and_samples() {
    let dir = scratch("demo");
    let o = tinyscore(&["demo", "--out", path_str(&dir), "-n", "500"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        report.contains("| em | 1000 |") && report.contains("*floor*"),
        "{report}"
    );
    assert!(dir.join("8gaussians-dpm2.csv").exists());
}

#[test]
fn train_quantize_sample_eval_plot_end_to_end() {
    let dir = scratch("pipeline");
    let p = |name: &str| dir.join(name);
    tinyscore_ok(&[
        "train",
        "--data",
        "moons",
        "--steps",
        "300",
        "--hidden",
        "16",
        "--threads",
        "2",
        "--checkpoint-every",
        "100",
        "--out",
        path_str(&p("m.tsm")),
    ]);
    assert!(p("m.ckpt").exists(), "no checkpoint written");
    // The default network learns the residual on the Gaussian noise prediction (header byte
    // 17); a safetensors round trip keeps it, and every other byte.
    let trained = std::fs::read(p("m.tsm")).unwrap();
    assert_eq!(
        trained[17], 1,
        "the default output is the Gaussian residual"
    );
    tinyscore_ok(&[
        "export",
        path_str(&p("m.tsm")),
        "--format",
        "safetensors",
        "--out",
        path_str(&p("m.safetensors")),
    ]);
    tinyscore_ok(&[
        "import",
        path_str(&p("m.safetensors")),
        "--out",
        path_str(&p("back.tsm")),
    ]);
    assert_eq!(std::fs::read(p("back.tsm")).unwrap(), trained);
    let report = tinyscore_ok(&[
        "quantize",
        path_str(&p("m.tsm")),
        "--calib",
        "moons",
        "--calib-points",
        "2048",
        "--eval-points",
        "1000",
        "--out",
        path_str(&p("m8.tsm")),
    ]);
    assert!(String::from_utf8_lossy(&report.stdout).contains("relative RMS error"));
    // The same quantization with single rounding: recorded in header byte 18, and the only
    // difference from the double-rounding file besides the requantized numbers it leads to.
    tinyscore_ok(&[
        "quantize",
        path_str(&p("m.tsm")),
        "--calib",
        "moons",
        "--calib-points",
        "2048",
        "--eval-points",
        "1000",
        "--rounding",
        "single",
        "--out",
        path_str(&p("m8s.tsm")),
    ]);
    let (double, single) = (
        std::fs::read(p("m8.tsm")).unwrap(),
        std::fs::read(p("m8s.tsm")).unwrap(),
    );
    assert_eq!((double[18], single[18]), (0, 1));
    assert_eq!(double.len(), single.len());
    // A TFLite model of the int8 network (LiteRT runs it in tests/tests/litert.rs); an f32
    // model is refused, and nothing is written.
    tinyscore_ok(&[
        "export",
        path_str(&p("m8.tsm")),
        "--format",
        "tflite",
        "--out",
        path_str(&p("m8.tflite")),
    ]);
    assert_eq!(&std::fs::read(p("m8.tflite")).unwrap()[4..8], b"TFL3");
    refused(
        &[
            "export",
            path_str(&p("m.tsm")),
            "--format",
            "tflite",
            "--out",
            path_str(&p("m.tflite")),
        ],
        "takes a quantized model",
    );
    assert!(!p("m.tflite").exists());
    for model in ["m.tsm", "m8.tsm", "m8s.tsm"] {
        tinyscore_ok(&[
            "sample",
            "--model",
            path_str(&p(model)),
            "--steps",
            "100",
            "-n",
            "500",
            "--out",
            path_str(&p(&format!("{model}.csv"))),
        ]);
        let o = tinyscore_ok(&[
            "eval",
            path_str(&p(&format!("{model}.csv"))),
            "--against",
            "moons",
            "--json",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(v["sw2"].as_f64().unwrap().is_finite());
    }
    tinyscore_ok(&[
        "plot",
        "--model",
        path_str(&p("m8.tsm")),
        "--data",
        "moons",
        "--out",
        path_str(&p("plots")),
    ]);
    for png in ["samples.png", "score.png", "trajectories.png"] {
        let image = image::open(p("plots").join(png)).unwrap();
        assert!(image.width() >= 480 && image.height() >= 480, "{png}");
    }
    let gif = std::fs::File::open(p("plots").join("flow.gif")).unwrap();
    let decoder = image::codecs::gif::GifDecoder::new(gif).unwrap();
    let frames = image::AnimationDecoder::into_frames(decoder).count();
    // 41 times evenly spaced in log-SNR, then the last held for 2 s (20 frames of 100 ms).
    assert_eq!(frames, 41 + 20);
}

#[test]
fn ctrl_c_keeps_a_checkpoint_from_which_training_resumes_to_the_same_model() {
    let dir = scratch("resume");
    let (whole, part) = (dir.join("whole.tsm"), dir.join("part.tsm"));
    let common = [
        "train",
        "--data",
        "moons",
        "--steps",
        "20000",
        "--batch",
        "32",
        "--hidden",
        "8",
        "--threads",
        "1",
        "--checkpoint-every",
        "500",
    ];
    let o = tinyscore(&[&common[..], &["--out", path_str(&whole)]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Interrupt a second run once it has written a checkpoint.
    let child = Command::new(env!("CARGO_BIN_EXE_tinyscore"))
        .args([&common[..], &["--out", path_str(&part)]].concat())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let checkpoint = part.with_extension("ckpt");
    while !checkpoint.exists() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    if o.status.success() {
        // It finished before the signal arrived: nothing to resume, nothing to check.
        assert_eq!(
            std::fs::read(&whole).unwrap(),
            std::fs::read(&part).unwrap()
        );
        return;
    }
    assert!(stderr.contains("interrupted at step"), "{stderr}");
    assert!(!part.exists(), "an interrupted run wrote a model");
    let o = tinyscore(&[&common[..], &["--resume", "--out", path_str(&part)]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("resuming at step"));
    assert_eq!(
        std::fs::read(&whole).unwrap(),
        std::fs::read(&part).unwrap()
    );
    // A checkpoint started with other settings is refused.
    let o = tinyscore(&[
        "train",
        "--data",
        "moons",
        "--steps",
        "61",
        "--hidden",
        "8",
        "--resume",
        "--out",
        path_str(&part),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("other settings"));
}

#[test]
fn langevin_samples_the_double_well_and_mixtures_come_from_json() {
    let dir = scratch("langevin");
    let out = dir.join("d.csv");
    let o = tinyscore(&[
        "langevin",
        "--target",
        "doublewell",
        "--method",
        "underdamped",
        "--step",
        "0.05",
        "--steps",
        "4000",
        "-n",
        "4000",
        "--out",
        path_str(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<[f64; 2]> = text
        .lines()
        .skip(1)
        .map(|l| {
            let (a, b) = l.split_once(',').unwrap();
            [a.parse().unwrap(), b.parse().unwrap()]
        })
        .collect();
    let n = rows.len() as f64;
    // U = 2(x₀² − 1)² + x₁²/2: the modes are symmetric (fraction ½, SE √(¼/n) = 0.008) and x₁
    // is N(0, 1) (variance SE √(2/n) = 0.022); BAOAB's bias at dt = 0.05 is O(dt²) ≈ 0.003.
    let right = rows.iter().filter(|r| r[0] > 0.0).count() as f64 / n;
    let var = rows.iter().map(|r| r[1] * r[1]).sum::<f64>() / n;
    assert!((right - 0.5).abs() < 5.0 * 0.0079, "mass right {right}");
    assert!((var - 1.0).abs() < 5.0 * 0.0224, "var {var}");

    let json = dir.join("mix.json");
    std::fs::write(
        &json,
        r#"{"weights": [1, 1], "means": [[-1, 0], [1, 0]], "stds": [[0.1, 0.1], [0.1, 0.1]]}"#,
    )
    .unwrap();
    let o = tinyscore(&[
        "sample",
        "--exact",
        path_str(&json),
        "-n",
        "200",
        "--steps",
        "200",
        "--out",
        path_str(&dir.join("m.csv")),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_mixture_refused(
        &dir,
        r#"{"weights": [1], "means": [[0, 0]], "stds": [[-1, 1]]}"#,
        "component 0",
    );
}

/// `sample --exact` on the mixture `text` fails, says `why`, and writes no file.
fn assert_mixture_refused(dir: &Path, text: &str, why: &str) {
    let (json, out) = (dir.join("refused.json"), dir.join("refused.csv"));
    std::fs::write(&json, text).unwrap();
    let o = tinyscore(&[
        "sample",
        "--exact",
        path_str(&json),
        "--out",
        path_str(&out),
    ]);
    assert!(!o.status.success(), "{text} was accepted");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(why),
        "{text}: not `{why}`"
    );
    assert!(!out.exists());
}

/// A CSV of `n` points in `dim` dimensions: coordinate d is N(m_d, 0.3²) with
/// m_d = ±1.5 alternating, drawn with a fixed LCG + Box–Muller (independent of the code tested).
fn gaussian_csv(path: &Path, dim: usize, n: usize) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let mut text = (0..dim)
        .map(|d| format!("c{d}"))
        .collect::<Vec<_>>()
        .join(",");
    text.push('\n');
    for _ in 0..n {
        let row: Vec<String> = (0..dim)
            .map(|d| {
                let z =
                    (-2.0 * uniform().ln()).sqrt() * (2.0 * std::f64::consts::PI * uniform()).cos();
                let mean = if d % 2 == 0 { 1.5 } else { -1.5 };
                format!("{:.6}", mean + 0.3 * z)
            })
            .collect();
        text.push_str(&row.join(","));
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

fn read_rows(path: &Path) -> Vec<Vec<f64>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect()
}

/// The RMS distance between the samples of two CSV files, row by row, computed from the
/// samplers' f32 values (the CSV's shortest decimals read back), as `schedule` measures it.
fn rms_between(a: &Path, b: &Path) -> f64 {
    let (a, b) = (read_rows(a), read_rows(b));
    let squares: f64 = a
        .iter()
        .zip(&b)
        .flat_map(|(r, s)| r.iter().zip(s))
        .map(|(x, y)| ((*x as f32) as f64 - (*y as f32) as f64).powi(2))
        .sum();
    (squares / a.len() as f64).sqrt()
}

#[test]
fn csv_data_of_1_3_and_64_dimensions_train_quantize_sample_evaluate_and_plot() {
    let dir = scratch("dims");
    let p = |name: &str| dir.join(name);
    for dim in [1usize, 3, 64] {
        let data = p(&format!("d{dim}.csv"));
        gaussian_csv(&data, dim, 2000);
        let (model, int8) = (p(&format!("d{dim}.tsm")), p(&format!("d{dim}-int8.tsm")));
        tinyscore_ok(&[
            "train",
            "--data",
            path_str(&data),
            "--steps",
            "400",
            "--out",
            path_str(&model),
        ]);
        tinyscore_ok(&[
            "quantize",
            path_str(&model),
            "--calib",
            path_str(&data),
            "--calib-points",
            "1024",
            "--eval-points",
            "500",
            "--out",
            path_str(&int8),
        ]);
        for m in [&model, &int8] {
            let samples = m.with_extension("samples.csv");
            tinyscore_ok(&[
                "sample",
                "--model",
                path_str(m),
                "--steps",
                "100",
                "-n",
                "500",
                "--out",
                path_str(&samples),
            ]);
            let rows = read_rows(&samples);
            assert_eq!(rows.len(), 500);
            assert!(
                rows.iter().all(|r| r.len() == dim),
                "{dim} columns expected"
            );
            let o = tinyscore_ok(&[
                "eval",
                path_str(&samples),
                "--against",
                path_str(&data),
                "--json",
            ]);
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            let sw2 = v["sw2"].as_f64().unwrap();
            // The prior N(0, I) is at sliced-W2 distance ≈ 1.5 from the data (every
            // coordinate's mean is ±1.5, so a unit direction sees a shift of ≈ 1.5 on average
            // and a narrower spread); a model that mixed up or lost coordinates would stay
            // that far. Learning the means and spreads brings it below a fifth of that.
            assert!(sw2 < 0.3, "{dim}-D {}: sw2 {sw2}", m.display());
            assert!(v["floor"]["sw2"].as_f64().unwrap().is_finite());
        }
        if dim <= 3 {
            let plots = p(&format!("plots{dim}"));
            tinyscore_ok(&[
                "plot",
                "--model",
                path_str(&int8),
                "--data",
                path_str(&data),
                "--out",
                path_str(&plots),
            ]);
            for png in ["samples.png", "score.png", "trajectories.png"] {
                assert!(image::open(plots.join(png)).is_ok(), "{dim}-D {png}");
            }
        }
    }
}

#[test]
fn exact_mixtures_of_three_dimensions_come_from_json() {
    let dir = scratch("mixture3");
    let json = dir.join("mix.json");
    std::fs::write(
        &json,
        r#"{"weights": [1, 3], "means": [[-1, -1, -1], [1, 1, 1]], "stds": [[0.1, 0.2, 0.1], [0.1, 0.1, 0.3]]}"#,
    )
    .unwrap();
    let out = dir.join("m.csv");
    let o = tinyscore(&[
        "sample",
        "--exact",
        path_str(&json),
        "--sampler",
        "ode-heun",
        "-n",
        "4000",
        "--steps",
        "200",
        "--out",
        path_str(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = read_rows(&out);
    assert!(rows.iter().all(|r| r.len() == 3));
    // Weight 3/4 in the component at +1: the fraction of 4000 samples there has standard
    // error √(¾·¼/4000) = 0.0068.
    let plus = rows.iter().filter(|r| r[0] > 0.0).count() as f64 / rows.len() as f64;
    assert!((plus - 0.75).abs() < 5.0 * 0.0068, "fraction {plus}");
    // The third coordinate's spread in that component is 0.3 (SE of a std from 3000 points:
    // 0.3/√6000 = 0.0039; the ODE's discretisation bias at 200 steps is far smaller).
    let third: Vec<f64> = rows.iter().filter(|r| r[0] > 0.0).map(|r| r[2]).collect();
    let mean = third.iter().sum::<f64>() / third.len() as f64;
    let std = (third.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / third.len() as f64).sqrt();
    assert!((std - 0.3).abs() < 5.0 * 0.0039, "std {std}");

    assert_mixture_refused(
        &dir,
        r#"{"weights": [1, 1], "means": [[0, 0, 0], [1, 1]], "stds": [[1, 1, 1], [1, 1]]}"#,
        "3 coordinates",
    );
}

#[test]
fn bench_json_has_the_documented_figures() {
    let o = tinyscore_ok(&["bench", "--json", "--seconds", "0.05"]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    for key in [
        "train_steps_per_s",
        "train_gflops",
        "score_evals_per_s",
        "int8_score_evals_per_s",
        "em_particle_steps_per_s",
        "gaussians_per_s",
    ] {
        let value = report[key].as_f64().unwrap_or(0.0);
        assert!(value > 0.0, "{key}: {}", report[key]);
    }
    // The peak is measured wherever AVX2 and FMA run (every x86-64 CI machine here). It is
    // not compared with the training rate: two timings taken at different moments of a
    // shared machine can cross (a CI run saw 58.7 GFLOP/s of training against a 54.0 peak
    // measured while another process ran), and timings are for benchmarks, not tests.
    if let Some(peak) = report["peak_gflops"].as_f64() {
        assert!(peak.is_finite() && peak > 0.0, "{report}");
    }
}

/// An output path that is a pipe (or a device such as `/dev/null`) is written into, not
/// replaced by a renamed temporary file, which would leave a regular file in its place.
#[test]
fn an_output_pipe_stays_a_pipe_and_gets_the_samples() {
    use std::os::unix::fs::FileTypeExt;
    let dir = scratch("pipe");
    let pipe = dir.join("samples.csv");
    let made = Command::new("mkfifo").arg(&pipe).status();
    assert!(
        made.is_ok_and(|s| s.success()),
        "this test needs mkfifo (coreutils)"
    );
    // Opening a pipe for reading waits for its writer; the reader thread collects what comes.
    let reader = {
        let pipe = pipe.clone();
        std::thread::spawn(move || std::fs::read_to_string(pipe).unwrap())
    };
    let args = ["sample", "--exact", "8gaussians", "-n", "7", "--steps", "5"];
    let o = tinyscore(&[&args[..], &["--out", path_str(&pipe)]].concat());
    let still_a_pipe = std::fs::metadata(&pipe).is_ok_and(|m| m.file_type().is_fifo());
    assert!(still_a_pipe, "the pipe was replaced by a file");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = reader.join().unwrap();
    assert_eq!(csv.lines().count(), 1 + 7, "{csv}");
}

/// A model of 20 training steps in `dir` (for the checks that need any model file).
fn tiny_model(dir: &Path) -> PathBuf {
    let model = dir.join("m.tsm");
    tinyscore_ok(&[
        "train",
        "--data",
        "moons",
        "--steps",
        "20",
        "--batch",
        "16",
        "--hidden",
        "8",
        "--out",
        path_str(&model),
    ]);
    model
}

/// Runs `tinyscore args…`, which must fail with a message containing `says`; returns it.
fn refused(args: &[&str], says: &str) -> String {
    let o = tinyscore(args);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "{args:?} was accepted");
    assert!(
        stderr.contains(says),
        "{args:?}: expected a message with `{says}`, got: {stderr}"
    );
    stderr
}

#[test]
fn flags_that_do_not_apply_are_refused_not_ignored() {
    let dir = scratch("flags");
    let model = tiny_model(&dir);
    let out = dir.join("s.csv");
    let sample = ["sample", "-n", "4", "--steps", "2", "--out", path_str(&out)];
    refused(
        &[&sample[..], &["--model", path_str(&model), "--sde", "ve"]].concat(),
        "--sde",
    );
    refused(
        &[&sample[..], &["--exact", "8gaussians", "--normalized"]].concat(),
        "cannot be used with",
    );
    let langevin = [
        "langevin",
        "--target",
        "doublewell",
        "-n",
        "4",
        "--out",
        path_str(&out),
    ];
    for flag in ["--mass", "--friction", "--kt"] {
        refused(
            &[&langevin[..], &[flag, "2"]].concat(),
            &format!("{flag} applies to --method underdamped"),
        );
    }
    // Lower-order final steps belong to the multistep samplers.
    refused(
        &[
            &sample[..],
            &["--exact", "8gaussians", "--lower-order-final"],
        ]
        .concat(),
        "--lower-order-final applies to the multistep samplers",
    );
    assert!(!out.exists());
    let unipc = [
        "--exact",
        "8gaussians",
        "--sampler",
        "unipc",
        "--lower-order-final",
    ];
    tinyscore_ok(&[&sample[..], &unipc].concat());
    assert!(out.exists());
    std::fs::remove_file(&out).unwrap();
    // They do apply to the underdamped dynamics.
    tinyscore_ok(&[&langevin[..], &["--method", "underdamped", "--kt", "2"]].concat());
}

#[test]
fn a_diverging_langevin_chain_names_the_step_size() {
    let dir = scratch("diverging");
    let out = dir.join("l.csv");
    refused(
        &[
            "langevin",
            "--target",
            "doublewell",
            "--step",
            "100",
            "-n",
            "4",
            "--out",
            path_str(&out),
        ],
        "try a smaller --step",
    );
    assert!(!out.exists());
}

#[test]
fn thread_batch_and_point_counts_have_documented_limits() {
    let dir = scratch("limits");
    let out = dir.join("t.csv");
    let sample = [
        "sample",
        "--exact",
        "8gaussians",
        "-n",
        "100",
        "--steps",
        "10",
    ];
    refused(
        &[
            &sample[..],
            &["--threads", "100000", "--out", path_str(&out)],
        ]
        .concat(),
        "at most",
    );
    refused(
        &[
            &sample[..],
            &["--threads", "18446744073709551615", "--out", path_str(&out)],
        ]
        .concat(),
        "at most",
    );
    let help = String::from_utf8_lossy(&tinyscore_ok(&["sample", "--help"]).stdout).into_owned();
    assert!(help.contains("at most 4 per core"), "{help}");
    let model = dir.join("x.tsm");
    refused(
        &[
            "train",
            "--data",
            "moons",
            "--batch",
            "100000000",
            "--out",
            path_str(&model),
        ],
        "--batch must be 1 to 1048576",
    );
    assert!(!model.exists());
    refused(
        &[
            "langevin",
            "--target",
            "doublewell",
            "-n",
            "0",
            "--step=-1",
            "--out",
            path_str(&out),
        ],
        "-n must be at least 1",
    );
    refused(
        &[
            "langevin",
            "--target",
            "doublewell",
            "-n",
            "5",
            "--step=-1",
            "--out",
            path_str(&out),
        ],
        "step_size",
    );
    refused(
        &["demo", "-n", "0", "--out", path_str(&dir.join("demo"))],
        "-n must be at least 2",
    );
    assert!(
        !dir.join("demo").exists(),
        "demo -n 0 began before refusing"
    );
    let file = dir.join("a-file");
    std::fs::write(&file, "keep").unwrap();
    refused(
        &["demo", "-n", "100", "--out", path_str(&file)],
        "is a file: the demo writes a directory",
    );
    for seconds in ["NaN", "0", "-1", "inf"] {
        refused(&["bench", &format!("--seconds={seconds}")], "--seconds");
    }
    assert!(!out.exists());
}

#[test]
fn training_refuses_a_negative_weight_decay_and_resuming_on_other_data() {
    let dir = scratch("train-checks");
    let model = dir.join("d.tsm");
    refused(
        &[
            "train",
            "--data",
            "moons",
            "--weight-decay=-5",
            "--steps",
            "300",
            "--out",
            path_str(&model),
        ],
        "--weight-decay",
    );
    assert!(!model.exists());
    let common = [
        "--steps",
        "40",
        "--batch",
        "16",
        "--hidden",
        "8",
        "--checkpoint-every",
        "20",
    ];
    tinyscore_ok(
        &[
            &["train", "--data", "moons"][..],
            &common,
            &["--out", path_str(&model)],
        ]
        .concat(),
    );
    let message = refused(
        &[
            &["train", "--data", "8gaussians"][..],
            &common,
            &["--resume", "--out", path_str(&model)],
        ]
        .concat(),
        "other data",
    );
    assert!(message.contains("cannot resume"), "{message}");
    // A setting that differs is named, with both values, not the whole configuration.
    let message = refused(
        &[
            &["train", "--data", "moons", "--lr", "0.5"][..],
            &common,
            &["--resume", "--out", path_str(&model)],
        ]
        .concat(),
        "lr: 0.5 → 0.01",
    );
    assert!(!message.contains("fourier_scale"), "{message}");
}

#[test]
fn csv_values_beyond_f32_are_named_and_long_cells_are_cut() {
    let dir = scratch("csv-range");
    let csv = dir.join("ov.csv");
    std::fs::write(&csv, "x,y\n1e39,2\n.5,.1\n.2,.3\n.7,.9\n").unwrap();
    let model = dir.join("o.tsm");
    refused(
        &["train", "--data", path_str(&csv), "--out", path_str(&model)],
        "line 2, column 1: `1e39` is beyond the f32 range",
    );
    std::fs::write(&csv, "x,y\n1e300,2\n.5,.1\n").unwrap();
    refused(
        &["eval", path_str(&csv), "--against", "moons"],
        "beyond the f32 range",
    );
    let long = "9".repeat(1_000_000) + "x";
    std::fs::write(&csv, format!("x,y\n{long},2\n")).unwrap();
    let message = refused(
        &["eval", path_str(&csv), "--against", "moons"],
        "is not a number",
    );
    assert!(
        message.len() < 1000,
        "the message repeats the cell: {} bytes",
        message.len()
    );
}

#[test]
fn an_output_named_dash_is_standard_output() {
    let dir = scratch("dash");
    let o = Command::new(env!("CARGO_BIN_EXE_tinyscore"))
        .args([
            "sample",
            "--exact",
            "8gaussians",
            "-n",
            "3",
            "--steps",
            "2",
            "--out",
            "-",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8(o.stdout).unwrap();
    assert_eq!(stdout.lines().next(), Some("x0,x1"), "{stdout}");
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
    assert!(!dir.join("-").exists(), "a file named `-` was written");
}

#[test]
fn a_csv_without_a_header_or_with_another_separator_is_refused_with_why() {
    let dir = scratch("csv-shape");
    let csv = dir.join("d.csv");
    // Read with its first row as the header, this file would lose the point (1, 2).
    std::fs::write(&csv, "1,2\n3,4\n5,6\n").unwrap();
    refused(
        &["eval", path_str(&csv), "--against", "moons"],
        "line 1 is numbers, not column names",
    );
    std::fs::write(&csv, "x;y\n1;2\n3;4\n").unwrap();
    refused(
        &["eval", path_str(&csv), "--against", "moons"],
        "separated by commas, not ';'",
    );
}

#[test]
fn outputs_keep_the_umask_and_an_overwritten_files_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("modes");
    let out = dir.join("p.csv");
    // `tinyscore sample …` under the given umask.
    let sample = |umask: &str| {
        let o = Command::new("sh")
            .args(["-c", &format!("umask {umask} && exec \"$0\" \"$@\"")])
            .arg(env!("CARGO_BIN_EXE_tinyscore"))
            .args([
                "sample",
                "--exact",
                "8gaussians",
                "-n",
                "4",
                "--steps",
                "2",
                "--out",
            ])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    sample("022");
    assert_eq!(mode(&out), 0o644, "a new output is not 0666 less the umask");
    std::fs::remove_file(&out).unwrap();
    sample("077");
    assert_eq!(mode(&out), 0o600, "a new output is not 0666 less the umask");
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o664)).unwrap();
    sample("022");
    assert_eq!(mode(&out), 0o664, "overwriting changed the file's mode");
}

#[test]
fn no_command_writes_its_output_over_its_input() {
    let dir = scratch("out-is-input");
    let model = tiny_model(&dir);
    let link = dir.join("link.tsm");
    std::os::unix::fs::symlink(&model, &link).unwrap();
    let data = dir.join("data.csv");
    std::fs::write(&data, "x,y\n0.1,0.2\n0.3,0.1\n-0.2,0.4\n0.5,-0.3\n").unwrap();
    let (model_bytes, data_bytes) = (
        std::fs::read(&model).unwrap(),
        std::fs::read(&data).unwrap(),
    );
    let (m, l, d) = (path_str(&model), path_str(&link), path_str(&data));
    for args in [
        &[
            "sample", "--model", m, "-n", "4", "--steps", "2", "--out", m,
        ][..],
        &[
            "sample", "--model", l, "-n", "4", "--steps", "2", "--out", m,
        ],
        &["export", m, "--format", "rust", "--out", l],
        &["export", m, "--format", "safetensors", "--out", m],
        &["import", m, "--out", m],
        &["train", "--data", d, "--steps", "2", "--out", d],
        &[
            "firmware", "run", "--board", "qemu-m4", "--model", m, "-n", "1", "--out", m,
        ],
    ] {
        refused(args, "is the input");
    }
    assert_eq!(
        std::fs::read(&model).unwrap(),
        model_bytes,
        "the model was replaced"
    );
    assert_eq!(
        std::fs::read(&data).unwrap(),
        data_bytes,
        "the data were replaced"
    );
}

#[test]
fn quantize_refuses_to_overwrite_its_input_and_import_takes_the_sde() {
    let dir = scratch("quantize-self");
    let model = tiny_model(&dir);
    let before = std::fs::read(&model).unwrap();
    refused(
        &[
            "quantize",
            path_str(&model),
            "--calib",
            "moons",
            "--out",
            path_str(&model),
        ],
        "is the input",
    );
    assert_eq!(std::fs::read(&model).unwrap(), before);
    refused(
        &[
            "quantize",
            path_str(&model),
            "--calib",
            "moons",
            "--calib-points",
            "100000000",
            "--out",
            path_str(&dir.join("q.tsm")),
        ],
        "--calib-points",
    );
    // A safetensors file without metadata: the message names the options, which work.
    let bare = dir.join("bare.safetensors");
    let with_metadata = dir.join("full.safetensors");
    tinyscore_ok(&[
        "export",
        path_str(&model),
        "--format",
        "safetensors",
        "--out",
        path_str(&with_metadata),
    ]);
    strip_safetensors_metadata(&with_metadata, &bare);
    let imported = dir.join("i.tsm");
    refused(
        &["import", path_str(&bare), "--out", path_str(&imported)],
        "--sde",
    );
    refused(
        &[
            "import",
            path_str(&bare),
            "--sde",
            "vp",
            "--out",
            path_str(&imported),
        ],
        "--mean",
    );
    tinyscore_ok(&[
        "import",
        path_str(&bare),
        "--sde",
        "vp",
        "--mean=0.5,-0.25",
        "--std",
        "0.9,0.5",
        "--out",
        path_str(&imported),
    ]);
}

/// Copies a safetensors file without its `__metadata__`.
fn strip_safetensors_metadata(from: &Path, to: &Path) {
    let bytes = std::fs::read(from).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    header.as_object_mut().unwrap().remove("__metadata__");
    let mut text = serde_json::to_vec(&header).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + len..]);
    std::fs::write(to, out).unwrap();
}

#[test]
fn reserved_header_bytes_must_be_zero() {
    let dir = scratch("reserved");
    let model = tiny_model(&dir);
    let mut bytes = std::fs::read(&model).unwrap();
    bytes[37] = 1;
    let body = bytes.len() - 4;
    let crc = tinyscore::model::crc32(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_le_bytes());
    let forged = dir.join("forged.tsm");
    std::fs::write(&forged, &bytes).unwrap();
    refused(
        &[
            "sample",
            "--model",
            path_str(&forged),
            "-n",
            "2",
            "--out",
            path_str(&dir.join("s.csv")),
        ],
        "reserved header bytes 36..40",
    );
}

#[test]
fn eval_of_many_samples_stays_within_bounded_memory() {
    let dir = scratch("eval-many");
    let csv = dir.join("many.csv");
    gaussian_csv(&csv, 2, 60_000);
    // All pairs of 60 000 points would be 14 GB of distances; the limit is 2 GB.
    let o = Command::new("prlimit")
        .arg("--as=2000000000")
        .arg(env!("CARGO_BIN_EXE_tinyscore"))
        .args(["eval", path_str(&csv), "--against", "moons", "--json"])
        .output()
        .expect("prlimit (util-linux) runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let value: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(value["sw2"].as_f64().unwrap() > 0.0);
}

#[test]
fn large_samples_stream_in_bounded_memory() {
    // 30 million 2-D samples are 240 MB held at once; the address space allowed is 600 MB,
    // which holding them (and a copy) exceeds, and streaming them part by part does not.
    let o = Command::new("prlimit")
        .arg("--as=600000000")
        .arg(env!("CARGO_BIN_EXE_tinyscore"))
        .args([
            "sample",
            "--exact",
            "8gaussians",
            "-n",
            "30000000",
            "--steps",
            "1",
        ])
        .args(["--out", "/dev/null"])
        .output()
        .expect("prlimit (util-linux) runs");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    // Not on a terminal, a run of more than a second reports its progress in plain lines.
    assert!(
        stderr.contains("sampling: ") && stderr.contains(" of 30000000 "),
        "{stderr}"
    );
}

#[test]
fn ctrl_c_while_sampling_leaves_no_partial_file() {
    let dir = scratch("sample-interrupted");
    let out = dir.join("w.csv");
    let child = Command::new(env!("CARGO_BIN_EXE_tinyscore"))
        .args([
            "sample",
            "--exact",
            "8gaussians",
            "-n",
            "100000000",
            "--steps",
            "1",
        ])
        .arg("--out")
        .arg(&out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success(), "the interrupted run reported success");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("interrupted"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn negative_numbers_reach_the_checks_without_an_equals_sign() {
    let dir = scratch("negative");
    let out = dir.join("x.tsm");
    refused(
        &[
            "train",
            "--data",
            "moons",
            "--lr",
            "-1",
            "--out",
            path_str(&out),
        ],
        "--lr must be a finite number > 0",
    );
    refused(
        &[
            "langevin",
            "--target",
            "doublewell",
            "--step",
            "-1",
            "-n",
            "4",
            "--out",
            path_str(&out),
        ],
        "step_size",
    );
    assert!(!out.exists());
}

#[test]
fn a_sampling_error_is_not_called_a_write_error_and_a_full_disk_names_the_file() {
    let dir = scratch("error-words");
    let out = dir.join("s.csv");
    let args = [
        "sample",
        "--exact",
        "8gaussians",
        "-n",
        "5",
        "--out",
        path_str(&out),
    ];
    let message = refused(&[&args[..], &["--steps", "0"]].concat(), "steps");
    assert!(!message.contains("cannot write"), "{message}");
    assert!(!out.exists());
    let message = refused(
        &[
            "sample",
            "--exact",
            "8gaussians",
            "-n",
            "5",
            "--steps",
            "2",
            "--out",
            "/dev/full",
        ],
        "cannot write /dev/full: No space left on device",
    );
    assert_eq!(message.matches("cannot write").count(), 1, "{message}");
}

#[test]
fn likelihood_writes_a_row_per_point_and_refuses_bad_points_writing_nothing() {
    let dir = scratch("likelihood");
    let data = dir.join("x.csv");
    std::fs::write(&data, "x,y\n0.1,0.2\n1.9,0.1\n-1.4,1.4\n0.0,-2.0\n").unwrap();
    let (out, latents) = (dir.join("lp.csv"), dir.join("z.csv"));
    let run = |extra: &[&str]| {
        let args = [
            &[
                "likelihood",
                "--exact",
                "8gaussians",
                "--data",
                path_str(&data),
            ][..],
            &["--out", path_str(&out), "--latents", path_str(&latents)],
            extra,
        ]
        .concat();
        tinyscore_ok(&args)
    };
    let o = run(&["--json"]);
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(rows[0], "log_p,nfe");
    assert_eq!(rows.len(), 5);
    let log_p: Vec<f64> = rows[1..]
        .iter()
        .map(|r| r.split(',').next().unwrap().parse().unwrap())
        .collect();
    let nll = -log_p.iter().sum::<f64>() / 4.0;
    assert!((summary["nll"].as_f64().unwrap() - nll).abs() < 1e-9);
    let bpd = summary["bits_per_dim"].as_f64().unwrap();
    assert!((bpd - nll / (2.0 * std::f64::consts::LN_2)).abs() < 1e-9);
    assert!(summary["nfe"].as_f64().unwrap() > 10.0);
    // (0.1, 0.2) lies between the modes, (1.9, 0.1) on one: far less likely.
    assert!(log_p[0] < log_p[1] - 5.0, "{log_p:?}");
    assert_eq!(
        std::fs::read_to_string(&latents).unwrap().lines().count(),
        5
    );
    // Hutchinson's estimate: the same bits whatever the threads.
    let hutchinson = |threads: &str| {
        run(&["--hutchinson", "3", "--threads", threads]);
        std::fs::read(&out).unwrap()
    };
    assert_eq!(hutchinson("1"), hutchinson("2"));

    std::fs::remove_file(&out).unwrap();
    std::fs::write(&data, "x,y\n0.1,0.2\n1.9,nan\n").unwrap();
    refused(
        &[
            "likelihood",
            "--exact",
            "8gaussians",
            "--data",
            path_str(&data),
            "--out",
            path_str(&out),
        ],
        "line 3, column 2: `nan` is not finite",
    );
    std::fs::write(&data, "x,y\n0.1,0.2\n1.9\n").unwrap();
    refused(
        &[
            "likelihood",
            "--exact",
            "8gaussians",
            "--data",
            path_str(&data),
            "--out",
            path_str(&out),
        ],
        "line 3: 1 fields, the header has 2",
    );
    std::fs::write(&data, "x,y,z\n0.1,0.2,0.3\n").unwrap();
    refused(
        &[
            "likelihood",
            "--exact",
            "8gaussians",
            "--data",
            path_str(&data),
            "--out",
            path_str(&out),
        ],
        "the data have 3 coordinates",
    );
    assert!(!out.exists(), "a refused run wrote its output");
}

#[test]
fn likelihood_needs_an_f32_model_and_sound_tolerances() {
    let dir = scratch("likelihood-model");
    let model = tiny_model(&dir);
    let int8 = dir.join("q.tsm");
    tinyscore_ok(&[
        "quantize",
        path_str(&model),
        "--calib",
        "moons",
        "--out",
        path_str(&int8),
    ]);
    let out = dir.join("lp.csv");
    let likelihood = |m: &Path, extra: &[&str]| {
        [
            &[
                "likelihood",
                "--model",
                path_str(m),
                "--data",
                "moons",
                "-n",
                "3",
            ][..],
            &["--out", path_str(&out)],
            extra,
        ]
        .concat()
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
    };
    let args = likelihood(&int8, &[]);
    refused(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "an f32 network",
    );
    for (flag, value) in [
        ("--rtol", "0"),
        ("--atol", "nan"),
        ("--max-steps", "0"),
        ("--hutchinson", "65"),
    ] {
        let args = likelihood(&model, &[flag, value]);
        refused(&args.iter().map(String::as_str).collect::<Vec<_>>(), flag);
    }
    let args = likelihood(&model, &["--max-steps", "3"]);
    refused(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "limit of 3 steps",
    );
    assert!(!out.exists());
    tinyscore_ok(
        &likelihood(&model, &[])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
}

#[test]
fn the_adaptive_sampler_meets_a_converged_solution_and_refuses_grid_options() {
    let dir = scratch("rk45");
    let (adaptive, reference) = (dir.join("a.csv"), dir.join("r.csv"));
    let sample = |sampler: &str, extra: &[&str], out: &Path| {
        let args = [
            &[
                "sample",
                "--exact",
                "8gaussians",
                "-n",
                "300",
                "--sampler",
                sampler,
            ][..],
            extra,
            &["--out", path_str(out)],
        ]
        .concat();
        tinyscore_ok(&args);
        read_rows(out)
    };
    // The same starting points (particle i, stream i): RK4 with 4000 steps is converged to
    // f32 rounding, so the distance is the adaptive solver's error, which follows rtol.
    let converged = sample("ode-rk4", &["--steps", "4000"], &reference);
    let rms = |rtol: &str| {
        let got = sample("ode-rk45", &["--rtol", rtol, "--atol", rtol], &adaptive);
        let sum: f64 = got
            .iter()
            .zip(&converged)
            .map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>())
            .sum();
        (sum / got.len() as f64).sqrt()
    };
    let (loose, tight) = (rms("1e-3"), rms("1e-6"));
    assert!(tight < 1e-4, "rtol 1e-6: RMS {tight}");
    assert!(
        loose > 3.0 * tight && loose < 3e-2,
        "rtol 1e-3: RMS {loose}, 1e-6: {tight}"
    );
    refused(
        &[
            "sample",
            "--exact",
            "8gaussians",
            "--sampler",
            "ode-rk45",
            "--steps",
            "10",
            "--out",
            path_str(&adaptive),
        ],
        "--steps does not apply to ode-rk45",
    );
    refused(
        &[
            "sample",
            "--exact",
            "8gaussians",
            "--rtol",
            "1e-3",
            "--out",
            path_str(&adaptive),
        ],
        "--rtol applies to --sampler ode-rk45 only",
    );
}

#[test]
fn latents_given_back_to_the_ode_return_the_data() {
    // data → latent (likelihood --latents) → data (sample --init, the same ODE backwards): the
    // round trip's error is the two solves' (tolerance 1e-6), far below the data's scale.
    let dir = scratch("inversion");
    let (data, latents, back) = (dir.join("x.csv"), dir.join("z.csv"), dir.join("back.csv"));
    let lp = dir.join("lp.csv");
    tinyscore_ok(&[
        "sample",
        "--exact",
        "8gaussians",
        "-n",
        "100",
        "--out",
        path_str(&data),
    ]);
    let tight = ["--rtol", "1e-6", "--atol", "1e-6"];
    tinyscore_ok(
        &[
            &[
                "likelihood",
                "--exact",
                "8gaussians",
                "--data",
                path_str(&data),
            ][..],
            &["--out", path_str(&lp), "--latents", path_str(&latents)],
            &tight,
        ]
        .concat(),
    );
    tinyscore_ok(
        &[
            &[
                "sample",
                "--exact",
                "8gaussians",
                "--init",
                path_str(&latents),
            ][..],
            &["--sampler", "ode-rk45", "--out", path_str(&back)],
            &tight,
        ]
        .concat(),
    );
    let (original, returned) = (read_rows(&data), read_rows(&back));
    assert_eq!(original.len(), returned.len());
    let worst = original
        .iter()
        .zip(&returned)
        .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
        .fold(0.0, f64::max);
    assert!(worst < 1e-4, "the round trip moved a coordinate by {worst}");
    // The latents are far from the data: the round trip is not the identity by accident.
    let moved = read_rows(&latents)
        .iter()
        .zip(&original)
        .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
        .fold(0.0, f64::max);
    assert!(moved > 0.5, "{moved}");
    refused(
        &[
            "sample",
            "--exact",
            "8gaussians",
            "--init",
            path_str(&latents),
            "-n",
            "5",
            "--out",
            path_str(&back),
        ],
        "has 100 points, one per sample",
    );
}

#[test]
fn a_fitted_grid_beats_the_fixed_ones_and_sample_uses_it() {
    // dpm2 with 10 evaluations on exact 8-Gaussians: the best fixed grid (log-SNR) is 7.2e-2
    // RMS from the converged ODE; the fitted grid must reach the goal of 0.02 on the
    // held-out draws, and `sample --grid` must give what the fit measured.
    let dir = scratch("schedule");
    let grid = dir.join("grid.json");
    let o = tinyscore_ok(&[
        "schedule",
        "--exact",
        "8gaussians",
        "--sampler",
        "dpm2",
        "--nfe",
        "10",
        "--out",
        path_str(&grid),
    ]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("smaller"));
    let fitted: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&grid).unwrap()).unwrap();
    let rms = fitted["rms_error"].as_f64().unwrap();
    assert!(rms <= 0.02, "fitted grid: RMS {rms}");
    assert!(fitted["best_fixed_rms_error"].as_f64().unwrap() > 3.0 * rms);
    assert_eq!(fitted["times"].as_array().unwrap().len(), 11);
    let (fitted_out, converged) = (dir.join("f.csv"), dir.join("c.csv"));
    tinyscore_ok(&[
        "sample",
        "--exact",
        "8gaussians",
        "--sampler",
        "dpm2",
        "--grid",
        path_str(&grid),
        "-n",
        "512",
        "--seed",
        "1",
        "--out",
        path_str(&fitted_out),
    ]);
    tinyscore_ok(&[
        "sample",
        "--exact",
        "8gaussians",
        "--sampler",
        "ode-rk45",
        "--rtol",
        "1e-7",
        "--atol",
        "1e-7",
        "-n",
        "512",
        "--seed",
        "1",
        "--out",
        path_str(&converged),
    ]);
    let measured = rms_between(&fitted_out, &converged);
    assert!(
        (measured - rms).abs() < 1e-9,
        "sample --grid: {measured}, the fit said {rms}"
    );
    refused(
        &[
            "sample",
            "--exact",
            "8gaussians",
            "--grid",
            path_str(&grid),
            "--steps",
            "5",
            "--out",
            path_str(&fitted_out),
        ],
        "cannot be used with",
    );
}

#[test]
fn bespoke_coefficients_are_fitted_written_and_sampled_with() {
    // The bespoke solver on exact 8-Gaussians with 10 evaluations: `schedule` writes a row of
    // coefficients a step on UniPC's grid, and `sample --grid` reproduces the held-out RMS
    // error the fit reports (the same draws, seed 1, from the same starting points).
    let dir = scratch("bespoke");
    let grid = dir.join("grid.json");
    let o = tinyscore_ok(&[
        "schedule",
        "--exact",
        "8gaussians",
        "--sampler",
        "bespoke",
        "--nfe",
        "10",
        "--out",
        path_str(&grid),
    ]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("UniPC has RMS error"));
    let fitted: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&grid).unwrap()).unwrap();
    let rows = fitted["coefficients"].as_array().unwrap();
    assert_eq!(rows.len(), 10);
    assert!(rows.iter().all(|r| r.as_array().unwrap().len() == 4));
    let rms = fitted["rms_error"].as_f64().unwrap();
    let (out, converged) = (dir.join("b.csv"), dir.join("c.csv"));
    let sample = |sampler: &str, extra: &[&str], out: &Path| {
        let mut args = vec![
            "sample",
            "--exact",
            "8gaussians",
            "--sampler",
            sampler,
            "-n",
            "512",
            "--seed",
            "1",
            "--out",
            path_str(out),
        ];
        args.extend_from_slice(extra);
        tinyscore_ok(&args);
    };
    sample("bespoke", &["--grid", path_str(&grid)], &out);
    sample(
        "ode-rk45",
        &["--rtol", "1e-7", "--atol", "1e-7"],
        &converged,
    );
    let measured = rms_between(&out, &converged);
    assert!(
        (measured - rms).abs() < 1e-9,
        "sample --grid: {measured}, the fit said {rms}"
    );
    // Without coefficients the bespoke solver has nothing to run.
    refused(
        &[
            "sample",
            "--exact",
            "8gaussians",
            "--sampler",
            "bespoke",
            "--steps",
            "10",
            "--out",
            path_str(&out),
        ],
        "tinyscore schedule --sampler bespoke",
    );
}
