//! Helpers shared by the cross-crate tests.

use std::path::PathBuf;

/// The shared reference vectors, `../shared/reference/` beside the checkout.
pub fn reference_file(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: the tests need ../shared/reference/ beside the checkout",
        path.display()
    );
    path
}

/// A reference JSON file, parsed.
pub fn reference_json(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(reference_file(name)).expect("reference file is readable");
    serde_json::from_str(&text).expect("reference file is valid JSON")
}

/// A JSON array of pairs as `[f64; 2]` rows.
pub fn pairs(value: &serde_json::Value) -> Vec<[f64; 2]> {
    value
        .as_array()
        .expect("an array of pairs")
        .iter()
        .map(|p| {
            [
                p[0].as_f64().expect("a number"),
                p[1].as_f64().expect("a number"),
            ]
        })
        .collect()
}
