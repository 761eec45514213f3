//! The packed layouts (precisions 2 and 4, `core/src/model/packed.rs`): the kernels'
//! algebra, and that a packed model gives the unpacked model's bits, int8 or int16x8 — on the
//! reference models, on a model whose widths leave partial row groups and input tails, and on
//! random weights, biases and zero points over their whole ranges.

use rand_core::Rng;
use tinyscore::model::packed::{
    operands, pack, packed_len, rows_portable, wide_portable, GROUP_ROWS,
};
use tinyscore::model::quant::QuantParams;
use tinyscore::model::{Dims, Model, ModelError, Precision};
use tinyscore::{particle_rng, NeuralScore, PackedScore, Score, VpSde};
use tinyscore_host::model_file::Network;
use tinyscore_host::quantize::{
    ActivationWidth, QuantizedActivation, QuantizedLayer, QuantizedNetwork, SiluLut,
};
use tinyscore_tests::{helix_int8, packed, reference_int8, reference_model_bytes};

/// ε̂ of both files at `count` pseudo-random points and times must agree bit for bit, and
/// so must the packed model's batched scores (which share the time features' sums between
/// the points) with the int8 model's scores point by point, for batches of 1 to 9 points;
/// [`PackedScore`] (the firmware's) gives the same bits, batched and alone.
fn assert_same_bits<const N: usize>(int8: &[u8], count: usize, seed: u64) {
    let packed = packed(int8);
    let plain = NeuralScore::<N>::new(Model::parse(int8).unwrap()).unwrap();
    let model = Model::parse(&packed).unwrap();
    let expected = match Model::parse(int8).unwrap().header().precision {
        Precision::Int16x8 => Precision::Int16x8Packed,
        _ => Precision::Int8Packed,
    };
    assert_eq!(model.header().precision, expected);
    let fast = NeuralScore::<N>::new(model).unwrap();
    let only_packed = PackedScore::<N>::new(model).unwrap();
    let mut rng = particle_rng(seed, 0);
    let mut uniform = || (rng.next_u32() >> 8) as f32 / (1 << 24) as f32;
    for _ in 0..count {
        // Points well outside the data too, so that inputs clamp at the int8 range.
        let x: [f32; N] = core::array::from_fn(|_| 8.0 * uniform() - 4.0);
        let t = uniform();
        assert_eq!(
            fast.predict_noise(&x, t).map(f32::to_bits),
            plain.predict_noise(&x, t).map(f32::to_bits),
            "x {x:?} t {t}"
        );
    }
    for batch in 1..=9 {
        let xs: Vec<[f32; N]> = (0..batch)
            .map(|_| core::array::from_fn(|_| 8.0 * uniform() - 4.0))
            .collect();
        let t = uniform();
        let mut scores = vec![[0.0f32; N]; batch];
        fast.score_batch(&xs, t, &mut scores);
        // The firmware's packed-only score, batched and one point at a time.
        let mut packed_only = vec![[0.0f32; N]; batch];
        only_packed.score_batch(&xs, t, &mut packed_only);
        for ((x, s), p) in xs.iter().zip(&scores).zip(&packed_only) {
            let one = plain.score(x, t);
            assert_eq!(s.map(f32::to_bits), one.map(f32::to_bits), "x {x:?} t {t}");
            assert_eq!(p.map(f32::to_bits), one.map(f32::to_bits), "x {x:?} t {t}");
            let alone = only_packed.score(x, t);
            assert_eq!(
                alone.map(f32::to_bits),
                one.map(f32::to_bits),
                "x {x:?} t {t}"
            );
        }
    }
}

#[test]
fn the_kernel_computes_the_corrected_dot_product_plus_its_start() {
    // The identity in the module docs (the sums are 256 times it), for every row of a group, over random words and
    // inputs that include the extremes −128 and 127.
    let mut rng = particle_rng(5, 0);
    for _ in 0..2000 {
        let words = 1 + rng.next_u32() as usize % 16;
        let q: Vec<i8> = (0..4 * words).map(|_| rng.next_u32() as i8).collect();
        let w: Vec<[i8; 4 * 16]> = (0..GROUP_ROWS)
            .map(|_| core::array::from_fn(|_| rng.next_u32() as i8))
            .collect();
        let mut stored = Vec::new();
        for k in 0..words {
            for row in &w {
                for b in 0..4 {
                    let byte = row[4 * k + b] as u8;
                    stored.push(if b % 2 == 0 { byte ^ 0x80 } else { byte });
                }
            }
        }
        let mut pairs = vec![0u32; 2 * words];
        let even = operands(&q, &mut pairs);
        assert_eq!(
            even,
            (0..words)
                .map(|k| q[4 * k] as i32 + q[4 * k + 2] as i32)
                .sum::<i32>()
        );
        // The sums start from −256·128·Σq_even, so that after the shift only the starts are
        // left to add (as the packed evaluation runs it).
        let starts: Vec<i32> = (0..GROUP_ROWS)
            .map(|_| rng.next_u32() as i32 >> 2)
            .collect();
        let start_bytes: Vec<u8> = starts.iter().flat_map(|s| s.to_le_bytes()).collect();
        let init = even.wrapping_mul(-128 * 256);
        let mut acc = [1i32; GROUP_ROWS];
        rows_portable(&stored, 4 * words, &pairs, init, &start_bytes, &mut acc);
        for ((row, acc), start) in w.iter().zip(acc).zip(&starts) {
            let dot: i64 = (0..4 * words).map(|j| row[j] as i64 * q[j] as i64).sum();
            let odd: i64 = (0..4 * words)
                .filter(|j| j % 2 == 1)
                .map(|j| row[j] as i64)
                .sum();
            assert_eq!(acc as i64, dot - 127 * odd + *start as i64);
        }
    }
}

#[test]
fn the_wide_kernel_computes_the_dot_product_plus_its_start() {
    // The wide part's layout (module docs): groups of four rows interleaved word by word,
    // the rows left over one after another; a word holds two weights as i16 halves. For
    // 1 to 9 rows (every count of rows left over) and inputs of both parities, with levels
    // and weights that include the extremes −128 and 127.
    let mut rng = particle_rng(6, 0);
    for _ in 0..2000 {
        let rows = 1 + rng.next_u32() as usize % 9;
        let inputs = 1 + rng.next_u32() as usize % 40;
        let pairs = inputs.div_ceil(2);
        let q: Vec<i8> = (0..inputs).map(|_| rng.next_u32() as i8).collect();
        let w: Vec<Vec<i8>> = (0..rows)
            .map(|_| (0..inputs).map(|_| rng.next_u32() as i8).collect())
            .collect();
        let half = |row: &[i8], j: usize| row.get(j).map_or(0, |&v| v as i16 as u16 as u32);
        let word = |row: &[i8], k: usize| half(row, 2 * k) | (half(row, 2 * k + 1) << 16);
        let grouped = rows - rows % GROUP_ROWS;
        let mut stored = Vec::new();
        for group in w[..grouped].chunks(GROUP_ROWS) {
            for k in 0..pairs {
                for row in group {
                    stored.extend(word(row, k).to_le_bytes());
                }
            }
        }
        for row in &w[grouped..] {
            for k in 0..pairs {
                stored.extend(word(row, k).to_le_bytes());
            }
        }
        let levels: Vec<u32> = (0..pairs).map(|k| word(&q, k)).collect();
        let starts: Vec<i32> = (0..rows).map(|_| rng.next_u32() as i32 >> 2).collect();
        let start_bytes: Vec<u8> = starts.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut totals = vec![1i32; rows];
        wide_portable(&stored, pairs, &levels, &start_bytes, &mut totals);
        for ((row, total), start) in w.iter().zip(&totals).zip(&starts) {
            let dot: i32 = row.iter().zip(&q).map(|(w, q)| *w as i32 * *q as i32).sum();
            assert_eq!(*total, start + dot);
        }
    }
}

#[test]
fn the_packed_reference_model_gives_the_int8_bits() {
    let (_, bytes) = reference_int8();
    assert_same_bits::<2>(&bytes, 3000, 1);
    // And in a batch longer than the host's lanes.
    let packed = packed(&bytes);
    let fast = NeuralScore::<2>::new(Model::parse(&packed).unwrap()).unwrap();
    let plain = NeuralScore::<2>::new(Model::parse(&bytes).unwrap()).unwrap();
    let xs: Vec<[f32; 2]> = (0..53).map(|i| [0.1 * i as f32 - 2.0, 0.5]).collect();
    let (mut a, mut b) = (vec![[0.0; 2]; 53], vec![[0.0; 2]; 53]);
    fast.score_batch(&xs, 0.3, &mut a);
    plain.score_batch(&xs, 0.3, &mut b);
    assert_eq!(
        a.iter().flatten().map(|v| v.to_bits()).collect::<Vec<_>>(),
        b.iter().flatten().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}

#[test]
fn partial_row_groups_and_input_tails_give_the_int8_bits() {
    // 3-D data, width 32: 35 inputs (8 words and a tail of 3), an output group of 3 rows.
    assert_same_bits::<3>(&helix_int8(), 2000, 2);
}

/// An int8 network of the given shape with every weight, bias, zero point, multiplier,
/// shift and table entry drawn at random over the whole range the format allows.
fn random_network(dim: u32, fourier: u32, hidden: u32, layers: u32, seed: u64) -> Vec<u8> {
    random_network_in(dim, fourier, hidden, layers, seed, 30, -31..=8)
}

/// A random int8 network like [`random_network`] with biases within ±2^`bias_bits` and
/// shifts drawn from `shifts`. Small biases and shifts that keep the hidden levels inside
/// the int8 range make every input's product reach the output's low bits, where biases
/// near 2³⁰ would round them away in ε̂'s f32.
fn random_network_in(
    dim: u32,
    fourier: u32,
    hidden: u32,
    layers: u32,
    seed: u64,
    bias_bits: u32,
    shifts: std::ops::RangeInclusive<i8>,
) -> Vec<u8> {
    random_network_of(
        dim,
        fourier,
        hidden,
        layers,
        seed,
        bias_bits,
        shifts,
        ActivationWidth::Int8,
    )
}

/// A random network of activations `width`, as [`random_network_in`] describes. With int16
/// activations (int16x8) every zero point is 0 and the SiLU tables are random interpolated
/// ones; biases within ±2^29 keep every row within the format's bound on a row's sum.
#[allow(clippy::too_many_arguments)]
fn random_network_of(
    dim: u32,
    fourier: u32,
    hidden: u32,
    layers: u32,
    seed: u64,
    bias_bits: u32,
    shifts: std::ops::RangeInclusive<i8>,
    width: ActivationWidth,
) -> Vec<u8> {
    let mut rng = particle_rng(seed, 0);
    let mut next = move || rng.next_u32();
    let dims = Dims {
        dim,
        fourier,
        hidden,
        layers,
    };
    let int16 = width == ActivationWidth::Int16;
    let params = |r: u32, s: u32| QuantParams {
        scale: 0.001 + (r % 1000) as f32 * if int16 { 1e-5 } else { 1e-3 },
        zero_point: if int16 { 0 } else { (s % 256) as i32 - 128 },
    };
    let mut shapes = (0..=layers).map(|i| dims.layer_shape(i));
    let quantized_layers = (0..=layers)
        .map(|i| {
            let (inputs, outputs) = shapes.next().unwrap();
            QuantizedLayer {
                weights: (0..inputs * outputs).map(|_| next() as i8).collect(),
                bias: (0..outputs)
                    .map(|_| (next() % (2 << bias_bits)) as i32 - (1 << bias_bits))
                    .collect(),
                weight_scale: (0..outputs).map(|_| 0.01).collect(),
                activation: (i < layers).then(|| QuantizedActivation {
                    multiplier: (0..outputs)
                        .map(|_| (1 << 30) + (next() >> 2) as i32)
                        .collect(),
                    shift: (0..outputs)
                        .map(|_| {
                            let span = (shifts.end() - shifts.start()) as u32 + 1;
                            shifts.start() + (next() % span) as i8
                        })
                        .collect(),
                    pre: params(next(), next()),
                    lut: if int16 {
                        SiluLut::Int16(Box::new(core::array::from_fn(|_| next() as i16)))
                    } else {
                        SiluLut::Int8(Box::new(core::array::from_fn(|_| next() as i8)))
                    },
                    post: params(next(), next()),
                }),
            }
        })
        .collect();
    let float = Network {
        dims,
        sde: tinyscore::ModelSde::Vp(VpSde::default()),
        t_end: 1e-3,
        output: tinyscore::model::Output::Noise,
        mean: vec![0.0; dim as usize],
        std: vec![1.0; dim as usize],
        fourier: (0..fourier).map(|k| k as f32 * 0.7).collect(),
        layers: Vec::new(),
        activations: Vec::new(),
        activation_width: tinyscore_host::quantize::ActivationWidth::Int8,
    };
    // Both roundings: the packed evaluator must follow the file's as the int8 one does.
    let rounding = if next() % 2 == 0 {
        tinyscore::model::Rounding::Double
    } else {
        tinyscore::model::Rounding::Single
    };
    QuantizedNetwork {
        float,
        input: params(next(), next()),
        layers: quantized_layers,
        rounding,
        width,
    }
    .to_bytes()
    .expect("a random network in range writes")
}

#[test]
fn random_networks_of_awkward_shapes_give_the_int8_bits() {
    // Widths below one word (3 inputs), every tail length, groups of 1 to 4 rows; data
    // that fills the only word (4 + 2 inputs) or reaches into the tail (5 + 2), whose
    // sums are then each point's own.
    assert_same_bits::<1>(&random_network(1, 1, 5, 1, 1), 300, 3);
    assert_same_bits::<4>(&random_network_in(4, 1, 9, 1, 7, 12, -14..=-6), 300, 8);
    assert_same_bits::<5>(&random_network_in(5, 1, 6, 2, 8, 12, -14..=-6), 300, 9);
    assert_same_bits::<9>(&random_network_in(9, 3, 12, 1, 9, 12, -14..=-6), 300, 10);
    assert_same_bits::<2>(&random_network(2, 3, 7, 2, 2), 300, 4);
    assert_same_bits::<3>(&random_network(3, 16, 64, 3, 3), 300, 5);
    assert_same_bits::<4>(&random_network(4, 64, 256, 2, 4), 100, 6);
}

#[test]
fn the_packed_int16x8_reference_model_and_random_ones_give_the_unpacked_bits() {
    use ActivationWidth::Int16;
    assert_same_bits::<2>(&tinyscore_tests::reference_int16x8().1, 3000, 11);
    // Shapes as for int8: partial row groups, every time-feature tail, data past a word.
    assert_same_bits::<1>(
        &random_network_of(1, 1, 5, 1, 12, 29, -31..=8, Int16),
        300,
        12,
    );
    assert_same_bits::<5>(
        &random_network_of(5, 1, 6, 2, 13, 12, -14..=-6, Int16),
        300,
        13,
    );
    assert_same_bits::<2>(
        &random_network_of(2, 3, 7, 2, 14, 29, -31..=8, Int16),
        300,
        14,
    );
    assert_same_bits::<3>(
        &random_network_of(3, 16, 64, 3, 15, 20, -20..=-2, Int16),
        300,
        15,
    );
    assert_same_bits::<4>(
        &random_network_of(4, 64, 256, 2, 16, 29, -31..=8, Int16),
        100,
        16,
    );
}

#[test]
fn only_int8_models_pack_only_packed_ones_make_a_packed_score_and_a_short_buffer_is_refused() {
    let float = reference_model_bytes();
    let mut out = vec![0u8; float.len()];
    assert!(matches!(
        pack(&float, &mut out),
        Err(ModelError::InvalidParameter(e)) if e.parameter == "model to pack"
    ));
    let (_, int8) = reference_int8();
    let mut short = vec![0u8; packed_len(&int8).unwrap() - 1];
    assert!(matches!(
        pack(&int8, &mut short),
        Err(ModelError::InvalidParameter(e)) if e.parameter == "packing buffer"
    ));
    // Only a packed model makes a PackedScore, and only of its own dimension.
    let int8_model = Model::parse(&int8).unwrap();
    assert!(matches!(
        PackedScore::<2>::new(int8_model),
        Err(ModelError::InvalidParameter(e)) if e.parameter == "model"
    ));
    let packed_model = packed(&int8);
    assert!(matches!(
        PackedScore::<3>::new(Model::parse(&packed_model).unwrap()),
        Err(ModelError::DimensionMismatch { .. })
    ));
    // A packed file is not packed twice, and a corrupted one is refused like any other.
    let twice = packed(&int8);
    assert!(pack(&twice, &mut out).is_err());
    // The host's tools that read weights back (export, quantize) refuse it with a reason.
    let error = Network::from_model(&Model::parse(&twice).unwrap()).unwrap_err();
    assert!(error.to_string().contains("packed"), "{error}");
    let mut corrupted = twice.clone();
    corrupted[100] ^= 1;
    assert!(matches!(
        Model::parse(&corrupted),
        Err(ModelError::ChecksumMismatch { .. })
    ));
}
