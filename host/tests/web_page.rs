//! The web page in a real browser: Debian's Chromium, driven through WebDriver by its
//! chromedriver (both installed by `cargo xtask setup`). The page is built first
//! (`cargo xtask web`) and opened from `file://`.
//!
//! One browser runs every check in turn (starting one costs seconds):
//! - the page loads with no error and draws (pixel statistics of the canvas);
//! - moving a component changes the field;
//! - `tinyscore.run()` gives the command line's bits for every sampler of its scripting
//!   surface and two seeds, and for f32 and int8 models dropped on the page;
//! - a corrupt model file shows the core's own message and the page goes on working;
//! - the configuration is restored from the page's link;
//! - the frame rate with 10 000 Langevin particles is reported (not asserted), and a
//!   screenshot is saved to `out/web/screenshot.png`.

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// Builds the page with `cargo xtask web`; its path.
fn build_page() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace())
        .args(["xtask", "web"])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "`cargo xtask web` failed: see above");
    workspace().join("out/web/index.html")
}

/// A chromedriver on a free local port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start chromedriver ({e}): run `cargo xtask setup`, which installs \
                     Debian's chromium and chromium-driver"
                )
            });
        Driver { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium, with the flags this sandboxed, offline machine needs.
async fn browser(driver: &Driver, profile: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1100,1250",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let url = format!("http://127.0.0.1:{}", driver.port);
    for _ in 0..100 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&url)
            .await
        {
            Ok(client) => return client,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("chromedriver did not answer on {url}");
}

/// Runs `script` (a function body; `arguments[i]` are `args`) in the page.
async fn js(client: &Client, script: &str, args: Vec<Value>) -> Value {
    client
        .execute(script, args)
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
}

/// chromedriver's `se/log` command (a path of the WebDriver protocol) for the browser's
/// console log: every message since the last call.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", id.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type": "browser"}"#.into()))
    }
}

/// The page's errors so far: what it caught itself (`window.tinyscoreErrors`) and the
/// console's messages of level SEVERE (a script or resource error the page cannot see).
async fn errors(client: &Client) -> Vec<String> {
    let value = js(client, "return window.tinyscoreErrors;", vec![]).await;
    let mut errors: Vec<String> = serde_json::from_value(value).unwrap();
    let log = client.issue_cmd(BrowserLog).await.expect("the browser log");
    for entry in log.as_array().expect("a list of log entries") {
        if entry["level"] == "SEVERE" {
            errors.push(format!("console: {}", entry["message"]));
        }
    }
    errors
}

/// Writes `bytes` to `path` through a temporary file beside it and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) {
    let mut temp = tempfile::NamedTempFile::new_in(path.parent().unwrap()).unwrap();
    std::io::Write::write_all(&mut temp, bytes).unwrap();
    temp.persist(path).unwrap();
}

fn tinyscore(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_tinyscore"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tinyscore {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The f32 bits of a CSV the command line wrote.
fn csv_bits(path: &Path) -> Vec<u32> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .skip(1)
        .flat_map(|line| line.split(',').map(|v| v.parse::<f32>().unwrap().to_bits()))
        .collect()
}

/// The bits of `tinyscore.run()` after `tinyscore.load(config)`.
async fn page_bits(client: &Client, config: &Value) -> Vec<u32> {
    let value = js(
        client,
        "window.tinyscore.load(arguments[0]); return Array.from(window.tinyscore.run());",
        vec![config.clone()],
    )
    .await;
    let values: Vec<f64> = serde_json::from_value(value).unwrap();
    // Each is an f32 widened exactly to a JavaScript number.
    values.iter().map(|&v| (v as f32).to_bits()).collect()
}

/// Canvas statistics: the share of pixels that are not white, and the standard deviation of
/// their luminance.
async fn canvas_stats(client: &Client) -> (f64, f64) {
    let value = js(
        client,
        r#"const c = document.getElementById('canvas');
           const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
           let coloured = 0, sum = 0, sum2 = 0, n = d.length / 4;
           for (let k = 0; k < d.length; k += 4) {
             const l = 0.299 * d[k] + 0.587 * d[k + 1] + 0.114 * d[k + 2];
             if (l < 250) coloured++;
             sum += l; sum2 += l * l;
           }
           return [coloured / n, Math.sqrt(sum2 / n - (sum / n) ** 2)];"#,
        vec![],
    )
    .await;
    let v: [f64; 2] = serde_json::from_value(value).unwrap();
    (v[0], v[1])
}

#[tokio::test(flavor = "current_thread")]
async fn the_page_runs_the_cores_bits_in_chromium() {
    let page = build_page();
    let dir = tempfile::tempdir().unwrap();
    let driver = Driver::start();
    let client = browser(&driver, &dir.path().join("profile")).await;
    let url = format!("file://{}", page.display());
    client.goto(&url).await.unwrap();

    // Loads from file:// with no error, and draws.
    js(
        &client,
        "return new Promise((done) => setTimeout(done, 1000));",
        vec![],
    )
    .await;
    assert_eq!(
        errors(&client).await,
        Vec::<String>::new(),
        "errors on load"
    );
    let state = js(&client, "return window.tinyscore.state();", vec![]).await;
    assert!(
        state["step"].as_u64().unwrap() > 0,
        "the particles move: {state}"
    );
    let (coloured, spread) = canvas_stats(&client).await;
    assert!(
        coloured > 0.5 && spread > 10.0,
        "a drawn canvas: {coloured:.2} coloured, luminance spread {spread:.1}"
    );

    // Moving a component changes the field: with one mode at (1.5, 0), the score at the
    // origin points right; with the mode moved to (0, 1.5), up.
    let one = json!({"weights": [1], "means": [[1.5, 0]], "stds": [[0.5, 0.5]]});
    js(
        &client,
        "window.tinyscore.load({mixture: arguments[0], sampler: 'ula', steps: 10, n: 100, seed: 0});",
        vec![one],
    )
    .await;
    let before: Vec<f64> =
        serde_json::from_value(js(&client, "return window.tinyscore.fieldAt(0, 0);", vec![]).await)
            .unwrap();
    let pixels_before = canvas_stats(&client).await;
    js(
        &client,
        "window.tinyscore.moveComponent(0, 0, 1.5);",
        vec![],
    )
    .await;
    let after: Vec<f64> =
        serde_json::from_value(js(&client, "return window.tinyscore.fieldAt(0, 0);", vec![]).await)
            .unwrap();
    // The exact score at the origin: (μ − 0)/s² = 6 along the mean's direction.
    assert!(
        (before[0] - 6.0).abs() < 0.1 && before[1].abs() < 0.1,
        "before: {before:?}"
    );
    assert!(
        after[0].abs() < 0.1 && (after[1] - 6.0).abs() < 0.1,
        "after: {after:?}"
    );
    assert_ne!(
        pixels_before,
        canvas_stats(&client).await,
        "the canvas is redrawn"
    );

    // `run()` gives the command line's bits.
    let mixture = json!({"weights": [2, 1, 1], "means": [[-1.5, 0], [1.5, 0.5], [0, -2]],
                         "stds": [[0.3, 0.3], [0.5, 0.2], [0.2, 0.6]]});
    let mix_path = dir.path().join("mix.json");
    std::fs::write(&mix_path, mixture.to_string()).unwrap();
    let mix = mix_path.to_str().unwrap();
    let out = dir.path().join("out.csv");
    let out_s = out.to_str().unwrap();
    let grid_cases = [
        ("em", "vp", "uniform"),
        ("pc", "vp", "karras"),
        ("ode-heun", "ve", "logsnr"),
        ("dpm2", "vp", "logsnr"),
        ("ald", "ve", "uniform"),
    ];
    for seed in [0u64, 5] {
        for (sampler, sde, schedule) in grid_cases {
            let (steps, n) = (40u32, 300usize);
            tinyscore(&[
                "sample",
                "--exact",
                mix,
                "--sampler",
                sampler,
                "--sde",
                sde,
                "--schedule",
                schedule,
                "--steps",
                &steps.to_string(),
                "-n",
                &n.to_string(),
                "--seed",
                &seed.to_string(),
                "--out",
                out_s,
            ]);
            let config = json!({"mixture": mixture, "sampler": sampler, "steps": steps, "n": n,
                                "seed": seed, "sde": sde, "schedule": schedule});
            assert_eq!(
                page_bits(&client, &config).await,
                csv_bits(&out),
                "{sampler} {sde} {schedule} seed {seed}"
            );
        }
        tinyscore(&[
            "langevin",
            "--target",
            mix,
            "--step",
            "0.02",
            "--steps",
            "200",
            "-n",
            "300",
            "--seed",
            &seed.to_string(),
            "--out",
            out_s,
        ]);
        let config = json!({"mixture": mixture, "sampler": "ula", "steps": 200, "n": 300,
                            "seed": seed, "step_size": 0.02});
        assert_eq!(
            page_bits(&client, &config).await,
            csv_bits(&out),
            "ula seed {seed}"
        );
    }

    // Models dropped on the page: f32 and int8 sample with the command line's bits, and the
    // page compares their fields.
    let f32_model = dir.path().join("f32.tsm");
    let int8_model = dir.path().join("int8.tsm");
    tinyscore(&[
        "train",
        "--data",
        "moons",
        "--steps",
        "300",
        "--seed",
        "1",
        "--out",
        f32_model.to_str().unwrap(),
    ]);
    tinyscore(&[
        "quantize",
        f32_model.to_str().unwrap(),
        "--calib",
        "moons",
        "--out",
        int8_model.to_str().unwrap(),
    ]);
    for (slot, path) in [("f32", &f32_model), ("int8", &int8_model)] {
        let bytes = std::fs::read(path).unwrap();
        js(
            &client,
            "window.tinyscore.loadModel(new Uint8Array(arguments[0]));",
            vec![json!(bytes)],
        )
        .await;
        tinyscore(&[
            "sample",
            "--model",
            path.to_str().unwrap(),
            "--sampler",
            "em",
            "--steps",
            "30",
            "-n",
            "200",
            "--seed",
            "3",
            "--out",
            out_s,
        ]);
        let config = json!({"target": slot, "sampler": "em", "steps": 30, "n": 200, "seed": 3});
        assert_eq!(
            page_bits(&client, &config).await,
            csv_bits(&out),
            "{slot} model"
        );
    }
    let caption = js(
        &client,
        "return document.getElementById('compare').style.display + ' ' + \
         document.getElementById('cmp-caption').textContent;",
        vec![],
    )
    .await;
    println!("f32 against int8: {caption}");
    assert!(
        caption.as_str().unwrap().starts_with("block |f32 − int8|"),
        "{caption}"
    );
    // A model with int16 activations takes the quantized slot under its own name.
    let int16x8_model = dir.path().join("int16x8.tsm");
    tinyscore(&[
        "quantize",
        f32_model.to_str().unwrap(),
        "--calib",
        "moons",
        "--activations",
        "int16",
        "--out",
        int16x8_model.to_str().unwrap(),
    ]);
    let named = js(
        &client,
        "window.tinyscore.loadModel(new Uint8Array(arguments[0])); \
         return document.getElementById('cmp-caption').textContent + ' / ' + \
         document.querySelector('#target option[value=int8]').textContent;",
        vec![json!(std::fs::read(&int16x8_model).unwrap())],
    )
    .await;
    let named = named.as_str().unwrap();
    assert!(
        named.starts_with("|f32 − int16x8|") && named.contains("/ the int16x8 model: "),
        "{named}"
    );

    // A corrupt model file: the core's own message, and the page still works.
    let mut corrupt = std::fs::read(&f32_model).unwrap();
    corrupt[40] ^= 0x55;
    let core_message = tinyscore::Model::parse(&corrupt).unwrap_err().to_string();
    let shown = js(
        &client,
        "try { window.tinyscore.loadModel(new Uint8Array(arguments[0])); return 'loaded'; } \
         catch (e) { return document.getElementById('error').textContent; }",
        vec![json!(corrupt)],
    )
    .await;
    assert_eq!(
        shown.as_str().unwrap(),
        format!("model file: {core_message}")
    );
    let config = json!({"mixture": mixture, "sampler": "em", "steps": 40, "n": 300, "seed": 0,
                        "sde": "vp", "schedule": "uniform"});
    tinyscore(&[
        "sample",
        "--exact",
        mix,
        "--sampler",
        "em",
        "--steps",
        "40",
        "-n",
        "300",
        "--seed",
        "0",
        "--out",
        out_s,
    ]);
    assert_eq!(
        page_bits(&client, &config).await,
        csv_bits(&out),
        "after the corrupt file"
    );

    // The frame rate: 10 000 particles, one Langevin step and one full redraw per frame,
    // without waiting for the display (reported, not asserted).
    let bench = js(
        &client,
        "return window.tinyscore.benchmark({n: 10000, frames: 300, seconds: 3});",
        vec![],
    )
    .await;
    println!("frame rate: {bench}");
    write_atomically(
        &workspace().join("out/web/frame-rate.json"),
        format!("{bench}\n").as_bytes(),
    );

    // The configuration lives in the URL: opening the link restores it.
    let shared = json!({"mixture": {"weights": [1, 3], "means": [[-1, 1], [2, 0]],
                                    "stds": [[0.2, 0.2], [0.4, 0.4]]},
                        "sampler": "dpm2", "steps": 17, "n": 250, "seed": 9, "sde": "ve",
                        "schedule": "karras"});
    let link = js(
        &client,
        "window.tinyscore.load(arguments[0]); return location.href;",
        vec![shared.clone()],
    )
    .await;
    client.goto("about:blank").await.unwrap();
    client.goto(link.as_str().unwrap()).await.unwrap();
    let restored = js(&client, "return window.tinyscore.state();", vec![]).await;
    for key in ["sampler", "steps", "n", "seed", "sde", "schedule"] {
        assert_eq!(
            restored["settings"][key], shared[key],
            "{key} from the link"
        );
    }
    assert_eq!(
        restored["mixture"], shared["mixture"],
        "the mixture from the link"
    );

    // The screenshot the README shows: the page as it opens (8 Gaussians, Langevin), a
    // moment into the run.
    assert_eq!(
        errors(&client).await,
        Vec::<String>::new(),
        "errors before reopening"
    );
    client.goto("about:blank").await.unwrap();
    client.goto(&url).await.unwrap();
    js(
        &client,
        "return new Promise((done) => setTimeout(done, 2000));",
        vec![],
    )
    .await;
    let png = client.screenshot().await.unwrap();
    let shot = workspace().join("out/web/screenshot.png");
    write_atomically(&shot, &png);
    println!("screenshot: {}", shot.display());
    assert_eq!(
        errors(&client).await,
        Vec::<String>::new(),
        "errors at the end"
    );
    client.close().await.unwrap();
}
