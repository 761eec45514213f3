//! Any bytes into the model parser: it must return Ok or Err, never panic, and a model it
//! accepts must evaluate without panicking. Each input is parsed twice: as it is (mostly
//! stopped by the checksum) and with its CRC-32 trailer recomputed, so the fuzzer also
//! explores every check after the checksum. A model that packs (precision 2 or 4) must parse and
//! give the same noise prediction as the model it was packed from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tinyscore::model::crc32;
use tinyscore::{Model, NeuralScore, Score};

fn exercise(bytes: &[u8]) {
    if let Ok(model) = Model::parse(bytes) {
        let n = (model.header().dims.dim as usize).min(64);
        let mut out = [0.0f32; 64];
        let _ = model.predict_noise(&[0.1f32; 64][..n], 0.7, &mut out[..n]);
        if let Ok(score) = NeuralScore::<2>::new(model) {
            let _ = score.score(&[0.5, -0.5], 0.3);
        }
        let _ = model.denormalize(&[1.0f32; 2]);
        let len = tinyscore::model::packed::packed_len(bytes).unwrap_or(0);
        let mut packed = vec![0u8; len];
        if tinyscore::model::packed::pack(bytes, &mut packed).is_ok() {
            let packed = Model::parse(&packed).expect("a packed model parses");
            let mut packed_out = [0.0f32; 64];
            let _ = packed.predict_noise(&[0.1f32; 64][..n], 0.7, &mut packed_out[..n]);
            assert_eq!(
                out[..n].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                packed_out[..n].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "packing changed the outputs"
            );
        }
    }
}

fuzz_target!(|bytes: &[u8]| {
    exercise(bytes);
    if bytes.len() >= 4 {
        let mut fixed = bytes.to_vec();
        let end = fixed.len() - 4;
        let checksum = crc32(&fixed[..end]);
        fixed[end..].copy_from_slice(&checksum.to_le_bytes());
        exercise(&fixed);
    }
});
