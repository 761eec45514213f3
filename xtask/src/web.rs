//! The web page: the `tinyscore-web` crate compiled to WebAssembly, bound by wasm-bindgen,
//! and inlined with its glue into `web/page/index.html`, giving one file,
//! `out/web/index.html`, that needs no server and makes no request.

use crate::{cargo, run, WASM_TARGET};
use base64::Engine;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
fn root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

/// The wasm-bindgen version `Cargo.lock` pins: the command-line tool must be the same.
fn pinned_bindgen() -> Option<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).ok()?;
    let mut lines = lock.lines();
    lines.find(|line| *line == "name = \"wasm-bindgen\"")?;
    let version = lines
        .next()?
        .strip_prefix("version = \"")?
        .strip_suffix('"')?;
    Some(version.to_owned())
}

/// The installed `wasm-bindgen`'s version, if any.
fn installed_bindgen() -> Option<String> {
    let out = Command::new("wasm-bindgen")
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.split_whitespace().nth(1).map(str::to_owned)
}

/// Installs `wasm-bindgen-cli` from crates.io at the version `Cargo.lock` pins, unless it is
/// there. (Not `--locked`: its lock file names a `webpki-roots` that some registry mirrors
/// lack; the versions of its own dependencies do not change what it generates.)
pub fn install_bindgen() -> bool {
    let Some(pinned) = pinned_bindgen() else {
        eprintln!("Cargo.lock pins no wasm-bindgen: run `cargo generate-lockfile`");
        return false;
    };
    if installed_bindgen().as_deref() == Some(pinned.as_str()) {
        return true;
    }
    eprintln!("installing wasm-bindgen-cli {pinned} from crates.io (a few minutes, once)");
    let ok = cargo(&["install", "wasm-bindgen-cli", "--version", &pinned]);
    if !ok || installed_bindgen().as_deref() != Some(pinned.as_str()) {
        eprintln!(
            "could not install wasm-bindgen-cli {pinned}: run `cargo install wasm-bindgen-cli \
             --version {pinned}` and rerun"
        );
        return false;
    }
    true
}

/// Where the page is written.
pub fn page_path() -> PathBuf {
    root().join("out/web/index.html")
}

/// Builds the page; its path. Says what failed on stderr.
pub fn build() -> Result<PathBuf, ()> {
    let root = root();
    if !(run("rustup", &["target", "add", WASM_TARGET]) && install_bindgen()) {
        return Err(());
    }
    let built = cargo(&[
        "build",
        "-q",
        "--profile",
        "wasm",
        "--target",
        WASM_TARGET,
        "-p",
        "tinyscore-web",
    ]);
    if !built {
        return Err(());
    }
    let wasm = root.join("target/wasm32-unknown-unknown/wasm/tinyscore_web.wasm");
    let bound = root.join("target/web-bindgen");
    let bind = run(
        "wasm-bindgen",
        &[
            "--target",
            "no-modules",
            "--no-typescript",
            "--out-dir",
            &bound.to_string_lossy(),
            &wasm.to_string_lossy(),
        ],
    );
    if !bind {
        return Err(());
    }
    let read = |path: PathBuf| {
        std::fs::read(&path).map_err(|e| eprintln!("cannot read {}: {e}", path.display()))
    };
    let module = read(bound.join("tinyscore_web_bg.wasm"))?;
    let glue = String::from_utf8(read(bound.join("tinyscore_web.js"))?)
        .map_err(|_| eprintln!("the wasm-bindgen glue is not UTF-8"))?;
    let template = String::from_utf8(read(root.join("web/page/index.html"))?)
        .map_err(|_| eprintln!("web/page/index.html is not UTF-8"))?;
    let page = inline(&template, &glue, &module)?;
    let out = page_path();
    write_atomically(&out, page.as_bytes())
        .map_err(|e| eprintln!("cannot write {}: {e}", out.display()))?;
    eprintln!(
        "wrote {} ({} bytes; the WebAssembly module {} bytes)",
        out.display(),
        page.len(),
        module.len()
    );
    Ok(out)
}

/// The page: `template` with the glue and the module (base64) in place of their markers.
fn inline(template: &str, glue: &str, module: &[u8]) -> Result<String, ()> {
    const GLUE: &str = "/*WASM_BINDGEN_GLUE*/";
    const MODULE: &str = "__WASM_BASE64__";
    if template.matches(GLUE).count() != 1 || template.matches(MODULE).count() != 1 {
        eprintln!("web/page/index.html must hold {GLUE} and {MODULE} once each");
        return Err(());
    }
    // Inside a <script>, only `</script` would end it early.
    let glue = glue.replace("</script", "<\\/script");
    let module = base64::engine::general_purpose::STANDARD.encode(module);
    Ok(template
        .replacen(GLUE, &glue, 1)
        .replacen(MODULE, &module, 1))
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so a
/// reader sees the old page or the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("page")
    ));
    std::fs::write(&temp, bytes)?;
    std::fs::rename(&temp, path)
}

#[cfg(test)]
mod tests {
    use super::inline;

    #[test]
    fn the_page_inlines_the_glue_and_the_module_once() {
        let template = "<script>/*WASM_BINDGEN_GLUE*/</script><script>'__WASM_BASE64__'</script>";
        let page = inline(template, "let a = '</script>';", &[0, 97, 115, 109]).unwrap();
        assert_eq!(
            page,
            "<script>let a = '<\\/script>';</script><script>'AGFzbQ=='</script>"
        );
        assert!(inline("no markers", "", &[]).is_err());
    }
}
