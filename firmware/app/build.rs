//! Bakes the model and the sampling configuration in:
//! `TINYSCORE_MODEL` (a `.tsm`, default `firmware/models/default.tsm`), `TINYSCORE_SAMPLER`
//! (a sampler on a time grid by its command-line name: `em`, `rd`, `ancestral`, `pc`, `ald`,
//! or a deterministic one: `ode-euler`, `ode-heun`, `ode-rk4`, `ddim`, `dpm2`, `dpm3`,
//! `unipc`, `edm-heun`, `bespoke`), `TINYSCORE_LOWER_ORDER_FINAL` (`0` or `1`: the
//! multistep samplers' last steps at a lower order), `TINYSCORE_STEPS`, `TINYSCORE_SCHEDULE` (`uniform`, `karras`,
//! `logsnr`), `TINYSCORE_GRID` (a fitted grid's interior log-SNR fractions, comma-separated,
//! as `tinyscore schedule` writes them), `TINYSCORE_BESPOKE` (the bespoke solver's
//! coefficients, four a step, comma-separated), `TINYSCORE_PARTICLES`, `TINYSCORE_SEED` (a number, or `hardware` for a board's
//! RNG),
//! `TINYSCORE_MODE` (`sample`, or `count` to measure instructions under QEMU's `-icount`),
//! `TINYSCORE_SINK` (`defmt`, or `binary` for the app's `BinarySink` records where
//! the board has a byte stream for them), `TINYSCORE_TASK` (`sample`, or `likelihood` to
//! compute the log-likelihoods of points read from the host, with an f32 model) and the
//! likelihood's solver: `TINYSCORE_RTOL`, `TINYSCORE_ATOL`, `TINYSCORE_MAX_STEPS`.

use std::env;
use std::fs;
use std::path::PathBuf;

fn setting(name: &str, default: &str) -> String {
    println!("cargo:rerun-if-env-changed={name}");
    env::var(name).unwrap_or_else(|_| default.to_string())
}

/// The comma-separated numbers of the variable `name` (none when it is unset or empty).
fn floats(name: &str) -> Vec<f32> {
    setting(name, "")
        .split(',')
        .filter(|v| !v.trim().is_empty())
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}: `{v}` is not a number"))
        })
        .collect()
}

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let model = PathBuf::from(setting("TINYSCORE_MODEL", "../models/default.tsm"));
    let model = if model.is_absolute() {
        model
    } else {
        manifest.join(model)
    };
    println!("cargo:rerun-if-changed={}", model.display());
    let mut bytes = fs::read(&model)
        .unwrap_or_else(|e| panic!("cannot read the model {}: {e}", model.display()));
    // A file that does not parse is still baked in (as 1-D): the firmware reports its error
    // at start-up, as it would for a file corrupted in flash.
    let parsed = tinyscore::Model::parse(&bytes).ok().map(|m| *m.header());
    let dim = parsed.map_or(1, |h| h.dims.dim);
    // Cores with the DSP extension (Cortex-M4/M7, `thumbv7em`) multiply an int8 or int16x8 model in
    // the packed layout with the SMLAD kernel (`src/smlad.rs`): same numbers, same bits.
    println!("cargo::rustc-check-cfg=cfg(tinyscore_dsp)");
    println!("cargo::rustc-check-cfg=cfg(tinyscore_packed)");
    println!("cargo::rustc-check-cfg=cfg(tinyscore_int8)");
    println!("cargo::rustc-check-cfg=cfg(tinyscore_single_rounding)");
    if parsed.is_some_and(|h| h.rounding == tinyscore::model::Rounding::Single) {
        // The fused requantization in `src/smlad.rs` is assembled for the model's rounding.
        println!("cargo::rustc-cfg=tinyscore_single_rounding");
    }
    let dsp = env::var("TARGET").is_ok_and(|t| t.starts_with("thumbv7em"));
    let precision = parsed.map(|h| h.precision);
    let int8 = precision == Some(tinyscore::model::Precision::Int8);
    let int16x8 = precision == Some(tinyscore::model::Precision::Int16x8);
    // Other builds leave the int16x8 parser and evaluator out of flash.
    if int16x8 && env::var_os("CARGO_FEATURE_INT16X8").is_none() {
        panic!(
            "{} is an int16x8 model: build with `--features int16x8`",
            model.display()
        );
    }
    if (int8 || int16x8) && !dsp {
        // The application links only the integer evaluator (`Int8Score`).
        println!("cargo::rustc-cfg=tinyscore_int8");
    }
    if dsp {
        println!("cargo::rustc-cfg=tinyscore_dsp");
        if int8 || int16x8 {
            let unpacked = std::mem::take(&mut bytes);
            let packing = tinyscore::model::packed::packed_len(&unpacked).and_then(|len| {
                bytes.resize(len, 0);
                tinyscore::model::packed::pack(&unpacked, &mut bytes)
            });
            packing.unwrap_or_else(|e| panic!("cannot pack {}: {e}", model.display()));
            // The application links only the packed evaluator (`PackedScore`).
            println!("cargo::rustc-cfg=tinyscore_packed");
        }
    }
    fs::write(out.join("model.tsm"), &bytes).expect("OUT_DIR is writable");

    let name = setting("TINYSCORE_SAMPLER", "em");
    let sampler = tinyscore::Method::from_name(&name).unwrap_or_else(|| {
        let names: Vec<&str> = tinyscore::Method::ALL.iter().map(|m| m.name()).collect();
        panic!(
            "TINYSCORE_SAMPLER={name}: expected one of {}",
            names.join(", ")
        )
    });
    let sampler = format!("Method::{sampler:?}");
    // `TINYSCORE_GRID`: a fitted grid's interior log-SNR fractions, comma-separated.
    let fitted = floats("TINYSCORE_GRID");
    // `TINYSCORE_BESPOKE`: the bespoke solver's coefficients, four a step.
    let bespoke = floats("TINYSCORE_BESPOKE");
    if sampler == "Method::Bespoke" && (bespoke.is_empty() || !bespoke.len().is_multiple_of(4)) {
        panic!(
            "TINYSCORE_SAMPLER=bespoke needs TINYSCORE_BESPOKE, four coefficients a step (those \
             `tinyscore schedule --sampler bespoke` fits; `tinyscore firmware --grid` passes them)"
        );
    }
    let bespoke: Vec<[f32; 4]> = bespoke
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect();
    let spacing = match setting("TINYSCORE_SCHEDULE", "uniform").as_str() {
        _ if !fitted.is_empty() => "Spacing::Fitted",
        "uniform" => "Spacing::Uniform",
        "karras" => "Spacing::Karras",
        "logsnr" => "Spacing::LogSnr",
        other => panic!("TINYSCORE_SCHEDULE={other}: expected uniform, karras or logsnr"),
    };
    let lower_order_final = match setting("TINYSCORE_LOWER_ORDER_FINAL", "0").as_str() {
        "0" => false,
        "1" => true,
        other => panic!("TINYSCORE_LOWER_ORDER_FINAL={other}: expected 0 or 1"),
    };
    // `TINYSCORE_SEED=hardware`: a board with a hardware RNG draws the seed at start-up.
    let hardware_seed = setting("TINYSCORE_SEED", "0") == "hardware";
    let number = |name: &str, default: &str| -> u64 {
        let v = setting(name, default);
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
    };
    let count = match setting("TINYSCORE_MODE", "sample").as_str() {
        "sample" => false,
        "count" => true,
        other => panic!("TINYSCORE_MODE={other}: expected sample or count"),
    };
    let binary_sink = match setting("TINYSCORE_SINK", "defmt").as_str() {
        "defmt" => false,
        "binary" => true,
        other => panic!("TINYSCORE_SINK={other}: expected defmt or binary"),
    };
    let likelihood = match setting("TINYSCORE_TASK", "sample").as_str() {
        "sample" => false,
        "likelihood" => true,
        other => panic!("TINYSCORE_TASK={other}: expected sample or likelihood"),
    };
    let float = |name: &str, default: &str| -> f32 {
        let v = setting(name, default);
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
    };
    // `{:?}` writes an f32 so that it reads back as the same bits.
    let solver = format!(
        "/// Compute log-likelihoods of points from the host instead of sampling.
         pub const LIKELIHOOD: bool = {likelihood};
         /// The likelihood solver's relative tolerance.
pub const RTOL: f32 = {:?};
         /// Its absolute tolerance.
pub const ATOL: f32 = {:?};
         /// Its limit of steps per point.
pub const MAX_STEPS: u32 = {};
",
        float("TINYSCORE_RTOL", "1e-5"),
        float("TINYSCORE_ATOL", "1e-5"),
        number("TINYSCORE_MAX_STEPS", "10000"),
    );
    let config = format!(
        "/// Count instructions instead of only sampling.\npub const COUNT: bool = {count};\n\
         /// The sampler.\npub const SAMPLER: Method = {sampler};\n\
         /// Steps of the time grid.\npub const STEPS: u32 = {};\n\
         /// The grid's spacing.\npub const SPACING: Spacing = {spacing};\n\
         /// The multistep samplers' last steps at a lower order.\n\
         pub const LOWER_ORDER_FINAL: bool = {lower_order_final};\n\
         /// A fitted grid's interior log-SNR fractions.\npub const FITTED: &[f32] = &{fitted:?};\n\
         /// The bespoke solver's coefficients, one row a step.\n\
         pub const BESPOKE: &[[f32; 4]] = &{bespoke:?};\n\
         /// Particles to sample.\npub const PARTICLES: u32 = {};\n\
         /// Seed: particle i uses stream i.\npub const SEED: u64 = {};\n\
         /// Draw the seed from a hardware RNG where the board has one.\n\
         pub const HARDWARE_SEED: bool = {hardware_seed};\n\
         /// The model's data dimension.\npub const DIM: usize = {dim};\n\
         /// Send samples as binary records instead of defmt frames.\n\
         pub const BINARY_SINK: bool = {binary_sink};\n",
        number("TINYSCORE_STEPS", "100"),
        number("TINYSCORE_PARTICLES", "8"),
        if hardware_seed {
            0
        } else {
            number("TINYSCORE_SEED", "0")
        },
    );
    fs::write(out.join("config.rs"), config + &solver).expect("OUT_DIR is writable");
}
