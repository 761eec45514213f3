//! `cargo xtask <command>`: set-up and orchestration for tinyscore.
//!
//! - `setup`: installs what the build and tests need (rustup targets and components, QEMU,
//!   and a Python virtual environment with LiteRT in `target/python`);
//! - `test`: setup, then every check CI makes, with a summary (`.ci/run` calls this);
//! - `demo`: setup, then `tinyscore demo`;
//! - `bench`: `tinyscore bench`;
//! - `web`: builds the page, `out/web/index.html`: the core compiled to WebAssembly, inlined
//!   with its wasm-bindgen glue into one self-contained file;
//! - `fuzz [RUNS]`: installs cargo-fuzz if missing and fuzzes the model parser for RUNS
//!   executions (default 10⁷) from the committed corpus, adding what it finds to it.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

/// The web page's target.
const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// The embedded targets `core` must build for.
const CORE_TARGETS: [&str; 3] = [
    "thumbv6m-none-eabi",
    "thumbv7em-none-eabihf",
    "riscv32imc-unknown-none-elf",
];
/// The real boards (`firmware/boards/*`): built in CI, run by a user with the board.
const BOARDS: [&str; 3] = ["nucleo-f411re", "nrf52840-dk", "pico"];
/// Feature sets `core` must build with, each on its own.
const CORE_FEATURES: [&str; 4] = ["", "defmt", "fast-math", "int16x8"];
/// The core's features a chip may turn on together (`std` is the host's).
const CHIP_FEATURES: &str = "defmt,fast-math";

mod web;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map(String::as_str).unwrap_or("help");
    let rest = &args[args.len().min(1)..];
    let ok = match command {
        "setup" => setup(),
        "test" => test(),
        "demo" => setup() && host_command("demo", rest),
        "bench" => host_command("bench", rest),
        "web" => web::build().is_ok_and(|page| {
            eprintln!("open {} in a browser", page.display());
            true
        }),
        "fuzz" => fuzz(rest.first().map_or("10000000", String::as_str)),
        _ => {
            eprintln!(
                "usage: cargo xtask <setup | test | demo [args] | bench [args] | web | fuzz [runs]>"
            );
            command == "help"
        }
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Fuzzes the model parser for `runs` executions. libFuzzer needs no nightly with the
/// sanitizer off; inputs are capped at 4 KiB so the run explores structure, not length.
fn fuzz(runs: &str) -> bool {
    let installed = Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed && !cargo(&["install", "--locked", "cargo-fuzz"]) {
        eprintln!("could not install cargo-fuzz: run `cargo install cargo-fuzz`");
        return false;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let fuzz_dir = format!("{root}/../fuzz");
    let status = Command::new("cargo")
        .current_dir(&fuzz_dir)
        .args([
            "fuzz",
            "run",
            "--sanitizer",
            "none",
            "parse_model",
            "corpus/parse_model",
            "--",
            &format!("-runs={runs}"),
            "-max_len=4096",
        ])
        .status();
    status.is_ok_and(|s| s.success())
}

/// The API documentation builds without a warning (broken or private links).
fn doc_without_warnings() -> bool {
    eprintln!(
        "$ RUSTDOCFLAGS=\"-D warnings\" cargo doc --no-deps -p tinyscore -p tinyscore-host \
         -p tinyscore-web --lib"
    );
    Command::new("cargo")
        .args([
            "doc",
            "--no-deps",
            "-p",
            "tinyscore",
            "-p",
            "tinyscore-host",
            "-p",
            "tinyscore-web",
            "--lib",
        ])
        .env("RUSTDOCFLAGS", "-D warnings")
        .status()
        .is_ok_and(|s| s.success())
}

/// `tinyscore <command> <rest…>`, built in release mode first with cargo's progress shown
/// (a clean build takes minutes).
fn host_command(command: &str, rest: &[String]) -> bool {
    eprintln!("== building the tinyscore command (release)");
    if !cargo(&["build", "--release", "-p", "tinyscore-host"]) {
        return false;
    }
    let head = [
        "run",
        "--release",
        "-q",
        "-p",
        "tinyscore-host",
        "--",
        command,
    ];
    cargo(&[&head[..], &strs(rest)[..]].concat())
}

/// `cargo args` in the directory `dir` (the firmware lives outside the workspace).
fn cargo_in(dir: &str, args: &[&str]) -> bool {
    eprintln!("$ (cd {dir}) cargo {}", args.join(" "));
    Command::new("cargo")
        .current_dir(dir)
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn run(program: &str, args: &[&str]) -> bool {
    eprintln!("$ {program} {}", args.join(" "));
    match Command::new(program).args(args).status() {
        Ok(status) => status.success(),
        Err(e) => {
            eprintln!("cannot run {program}: {e}");
            false
        }
    }
}

fn cargo(args: &[&str]) -> bool {
    run("cargo", args)
}

/// Installs the rustup targets and components; says what to install by hand if rustup is
/// missing.
fn setup() -> bool {
    if Command::new("rustup").arg("--version").output().is_err() {
        eprintln!(
            "rustup is not installed: install it from the Rust project (rustup.rs) and rerun"
        );
        return false;
    }
    run(
        "rustup",
        &[&["target", "add", WASM_TARGET], &CORE_TARGETS[..]].concat(),
    ) && run("rustup", &["component", "add", "clippy", "rustfmt"])
        && install_apt("qemu-system-arm", "qemu-system-arm", "the firmware tests")
        && install_apt("chromium", "chromium", "the web page's tests")
        && install_apt("chromium-driver", "chromedriver", "the web page's tests")
        && web::install_bindgen()
        && python_references()
}

/// The virtual environment of the Python tools the tests use as independent references.
const VENV: &str = "target/python";
/// What it holds, pinned: LiteRT (TFLite's interpreter) and numpy.
const PYTHON_PACKAGES: [&str; 2] = ["ai-edge-litert==2.3.0", "numpy==2.4.6"];

/// Makes [`VENV`] with [`PYTHON_PACKAGES`] from PyPI when it lacks them (python3's `venv`;
/// says what to install when python3 or its venv module is missing).
fn python_references() -> bool {
    let python = format!("{VENV}/bin/python");
    let has_packages = || {
        Command::new(&python)
            .args(["-c", "import ai_edge_litert.interpreter, numpy"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has_packages() {
        return true;
    }
    eprintln!(
        "making {VENV} with {} (pip, from PyPI)",
        PYTHON_PACKAGES.join(", ")
    );
    let made = run("python3", &["-m", "venv", VENV])
        && run(
            &python,
            &[&["-m", "pip", "install", "-q"][..], &PYTHON_PACKAGES[..]].concat(),
        );
    if !(made && has_packages()) {
        eprintln!(
            "could not make {VENV}: install Python 3 with its venv module (Debian/Ubuntu: \
             apt-get install python3-venv) and rerun `cargo xtask setup`"
        );
        return false;
    }
    true
}

/// Installs the Debian package `package`, which provides the command `binary`, when that
/// command is missing: QEMU runs the firmware in the tests, Chromium and its WebDriver the
/// web page. From apt (as root, or with sudo where it needs no password), never removing a
/// package: when apt would remove one to install it (an installed `qemu-utils` from
/// backports conflicts with Debian 12's `qemu-system-arm`), setup stops and names the
/// conflict. apt's output goes to `target/xtask-apt.log`.
fn install_apt(package: &str, binary: &str, why: &str) -> bool {
    let present = || {
        Command::new(binary)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if present() {
        return true;
    }
    eprintln!("installing {package} (apt-get; its output in {APT_LOG}) for {why}");
    let as_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let apt = |args: &[&str]| -> Option<String> {
        let mut command = if as_root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", "apt-get"]);
            sudo
        };
        let output = command
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        append_to_log(&text);
        output.status.success().then_some(text)
    };
    let plan = apt(&["update", "-qq"]).and_then(|_| apt(&["install", "-s", package]));
    let removed = plan.as_deref().map(removals).unwrap_or_default();
    if !removed.is_empty() {
        eprintln!(
            "installing {package} would remove {}: setup removes nothing. Install it yourself \
             (apt-get install {package}) if that is what you want, or install a {package} \
             that goes with them, and rerun",
            removed.join(", ")
        );
        return false;
    }
    let installed = plan.is_some()
        && apt(&[
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "--no-remove",
            package,
        ])
        .is_some();
    if !(installed && present()) {
        eprintln!(
            "could not install {package} (see {APT_LOG}): install the `{package}` package \
             (Debian/Ubuntu: apt-get install {package}) and rerun"
        );
        return false;
    }
    true
}

/// Where apt's output goes.
const APT_LOG: &str = "target/xtask-apt.log";

fn append_to_log(text: &str) {
    use std::io::Write;
    let path = format!("{}/../{APT_LOG}", env!("CARGO_MANIFEST_DIR"));
    if let Ok(mut log) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = log.write_all(text.as_bytes());
    }
}

/// The packages an `apt-get install -s` plan removes (its `Remv` lines).
fn removals(plan: &str) -> Vec<String> {
    plan.lines()
        .filter_map(|line| line.strip_prefix("Remv "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Runs `cargo test` and adds up its `test result:` lines.
fn cargo_test(args: &[&str], passed: &mut u64, failed: &mut u64) -> bool {
    eprintln!("$ cargo {}", args.join(" "));
    let mut child = match Command::new("cargo")
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot run cargo: {e}");
            return false;
        }
    };
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                let count = |word: &str| {
                    rest.split(';')
                        .find_map(|part| {
                            part.trim()
                                .strip_suffix(word)?
                                .trim()
                                .rsplit(' ')
                                .next()?
                                .parse::<u64>()
                                .ok()
                        })
                        .unwrap_or(0)
                };
                *passed += count(" passed");
                *failed += count(" failed");
            }
        }
    }
    child.wait().map(|s| s.success()).unwrap_or(false)
}

fn test() -> bool {
    let start = Instant::now();
    let mut steps: Vec<(String, bool)> = Vec::new();
    let (mut passed, mut failed) = (0u64, 0u64);
    let mut step = |name: String, ok: bool| {
        let seconds = start.elapsed().as_secs();
        eprintln!(
            "[{seconds:>5} s] {} {name}",
            if ok { "ok  " } else { "FAIL" }
        );
        steps.push((name, ok));
    };
    step(
        "setup (rustup targets, clippy, rustfmt, QEMU, Python references)".into(),
        setup(),
    );
    step(
        "cargo fmt --check".into(),
        cargo(&["fmt", "--all", "--", "--check"]),
    );
    step(
        "clippy -D warnings (workspace, all targets)".into(),
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--release",
            "--",
            "-D",
            "warnings",
        ]),
    );
    step(
        "cargo doc -D warnings (core, host library, web)".into(),
        doc_without_warnings(),
    );
    for target in &CORE_TARGETS[..2] {
        step(
            format!("clippy -D warnings (core, {target}, every chip feature)"),
            cargo(&[
                "clippy",
                "-p",
                "tinyscore",
                "--target",
                target,
                "--features",
                CHIP_FEATURES,
                "--",
                "-D",
                "warnings",
            ]),
        );
    }
    for target in CORE_TARGETS {
        for features in CORE_FEATURES {
            let mut args = vec![
                "build",
                "-q",
                "-p",
                "tinyscore",
                "--release",
                "--target",
                target,
                "--no-default-features",
            ];
            if !features.is_empty() {
                args.extend(["--features", features]);
            }
            let label = if features.is_empty() {
                "no features"
            } else {
                features
            };
            step(format!("core builds for {target} ({label})"), cargo(&args));
        }
    }
    step(
        "core without its default features: the pinned bits, int16x8 refused by name".into(),
        cargo(&[
            "test",
            "-q",
            "-p",
            "tinyscore",
            "--release",
            "--no-default-features",
            "--test",
            "value_stability",
        ]),
    );
    let firmware = format!("{}/../firmware", env!("CARGO_MANIFEST_DIR"));
    step(
        "firmware: cargo fmt --check".into(),
        cargo_in(&firmware, &["fmt", "--", "--check"]),
    );
    for target in &CORE_TARGETS[..2] {
        step(
            format!("firmware: clippy -D warnings ({target})"),
            cargo_in(
                &firmware,
                &[
                    "clippy",
                    "--release",
                    "--target",
                    target,
                    "--",
                    "-D",
                    "warnings",
                ],
            ),
        );
    }
    for board in BOARDS {
        let dir = format!("{firmware}/boards/{board}");
        step(
            format!("board {board}: fmt, clippy -D warnings, release build"),
            cargo_in(&dir, &["fmt", "--", "--check"])
                && cargo_in(&dir, &["clippy", "--release", "--", "-D", "warnings"])
                && cargo_in(&dir, &["build", "--release"]),
        );
    }
    let tests_ok = cargo_test(
        &["test", "--workspace", "--release"],
        &mut passed,
        &mut failed,
    );
    step(
        format!("cargo test --workspace --release ({passed} passed, {failed} failed)"),
        tests_ok,
    );

    println!("\n== summary ({:.0} s) ==", start.elapsed().as_secs_f64());
    for (name, ok) in &steps {
        println!("{} {name}", if *ok { "ok  " } else { "FAIL" });
    }
    let all_ok = steps.iter().all(|(_, ok)| *ok);
    let failed_steps = steps.iter().filter(|(_, ok)| !ok).count() as u64;
    println!(
        "checks: {} passed, {} failed",
        steps.len() as u64 - failed_steps,
        failed_steps
    );
    println!("tests: {passed} passed, {failed} failed");
    // The browser test reports the page's frame rate (it asserts nothing about it).
    let frame_rate = web::page_path().with_file_name("frame-rate.json");
    if let Ok(report) = std::fs::read_to_string(frame_rate) {
        println!("web page, 10 000 Langevin particles: {}", report.trim());
    }
    all_ok
}

#[cfg(test)]
mod tests {
    use super::removals;

    #[test]
    fn an_install_plan_that_removes_a_package_names_it() {
        let plan = "NOTE: This is only a simulation!\n\
                    Remv qemu-utils [1:10.0.2+ds-2+deb13u1~bpo12+1]\n\
                    Inst qemu-system-arm (1:7.2+dfsg-7+deb12u18 Debian:12.12/stable [amd64])\n\
                    Conf qemu-system-arm (1:7.2+dfsg-7+deb12u18 Debian:12.12/stable [amd64])\n";
        assert_eq!(removals(plan), ["qemu-utils"]);
        assert!(
            removals("Inst qemu-system-arm (1:7.2)\nConf qemu-system-arm (1:7.2)\n").is_empty()
        );
    }
}
