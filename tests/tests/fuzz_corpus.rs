//! Replays the fuzzer's corpus (`fuzz/corpus/parse_model/`) through the model parser and
//! evaluator on stable Rust, so every input the fuzzer ever kept is checked in CI: none may
//! panic, and the committed seed models must parse.

use std::path::Path;
use tinyscore::{Model, NeuralScore, Score};

#[test]
fn every_corpus_input_parses_or_fails_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/parse_model");
    let mut inputs = 0;
    let mut accepted = 0;
    for entry in std::fs::read_dir(&dir).expect("the fuzz corpus is committed") {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        inputs += 1;
        if let Ok(model) = Model::parse(&bytes) {
            accepted += 1;
            let n = model.header().dims.dim as usize;
            let mut out = vec![0.0f32; n];
            model.predict_noise(&vec![0.25; n], 0.5, &mut out).unwrap();
            if let Ok(score) = NeuralScore::<2>::new(model) {
                let _ = score.score(&[0.1, 0.2], 0.5);
            }
        }
    }
    println!("{inputs} corpus inputs, {accepted} valid models");
    assert!(
        inputs >= 4 && accepted >= 4,
        "the four seed models must be in the corpus and parse"
    );
    for seed in [
        "moons_ref.tsm",
        "small_ve.tsm",
        "tiny_vp.tsm",
        "tiny_vp_residual.tsm",
    ] {
        let bytes = std::fs::read(dir.join(seed)).unwrap();
        Model::parse(&bytes).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}
