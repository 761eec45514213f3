//! Statistics shared by the core's tests, in f64, and the synthetic networks they run.
#![allow(dead_code)]

use tinyscore::model::format::{write_file, F32LayerValues, Header, LayerValues, Payload};

/// Deterministic values in `[−1, 1)` from a seed (xorshift32).
pub fn values(seed: u32) -> impl FnMut() -> f32 {
    let mut state = seed.max(1);
    move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state >> 8) as f32 / (1 << 23) as f32 - 1.0
    }
}

/// An f32 model file of `header`'s shape: each layer's weights, then its biases (scaled by
/// 0.1), from `values(seed)`, with the given normalisation and Fourier frequencies.
pub fn f32_network(
    header: &Header,
    seed: u32,
    mean: &[f32],
    std: &[f32],
    fourier: &[f32],
) -> Vec<u8> {
    let mut next = values(seed);
    let layers: Vec<(Vec<f32>, Vec<f32>)> = (0..=header.dims.layers)
        .map(|i| {
            let (inputs, outputs) = header.dims.layer_shape(i);
            let weights = (0..inputs * outputs).map(|_| next()).collect();
            let bias = (0..outputs).map(|_| 0.1 * next()).collect();
            (weights, bias)
        })
        .collect();
    let values: Vec<F32LayerValues<'_>> = layers
        .iter()
        .map(|(weights, bias)| F32LayerValues { weights, bias })
        .collect();
    let mut bytes = Vec::new();
    write_file(
        header,
        &Payload {
            mean,
            std,
            fourier,
            layers: LayerValues::F32 {
                layers: &values,
                activations: &[],
            },
        },
        |piece| bytes.extend_from_slice(piece),
    )
    .expect("a valid synthetic network");
    bytes
}

/// Mean and unbiased variance.
pub fn mean_var(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

/// Sample skewness and excess kurtosis (moment estimators).
pub fn skew_kurtosis(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let m2 = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    let m3 = xs.iter().map(|x| (x - mean).powi(3)).sum::<f64>() / n;
    let m4 = xs.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n;
    (m3 / m2.powf(1.5), m4 / (m2 * m2) - 3.0)
}

/// Pearson correlation of two equally long samples.
pub fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let (ma, va) = mean_var(a);
    let (mb, vb) = mean_var(b);
    let n = a.len() as f64;
    let cov = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - ma) * (y - mb))
        .sum::<f64>()
        / (n - 1.0);
    cov / (va * vb).sqrt()
}

/// The standard normal CDF.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// Kolmogorov–Smirnov statistic D = sup |F_n − F| of a sample against a continuous CDF.
pub fn ks_statistic(xs: &[f64], cdf: impl Fn(f64) -> f64) -> f64 {
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    sorted
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = cdf(x);
            (f - i as f64 / n).max((i + 1) as f64 / n - f)
        })
        .fold(0.0, f64::max)
}

/// Least-squares slope of ln(error) against ln(step size): the measured order.
pub fn loglog_slope(step_sizes: &[f64], errors: &[f64]) -> f64 {
    let xs: Vec<f64> = step_sizes.iter().map(|h| h.ln()).collect();
    let ys: Vec<f64> = errors.iter().map(|e| e.ln()).collect();
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    sxy / sxx
}
