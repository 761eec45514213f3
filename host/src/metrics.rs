//! Sample-quality metrics between a set of samples and a reference set, in f64.
//!
//! - `sw2`: sliced Wasserstein-2, √(mean over 512 fixed unit directions of the squared 1-D W2
//!   between the projected sets);
//! - `energy`: the energy distance 2E|X−Y| − E|X−X'| − E|Y−Y'| (V-statistics);
//! - `mmd2`: the V-statistic MMD² with the Gaussian kernel exp(−|a−b|²/2h²), h the median
//!   pairwise distance within the reference set.
//!
//! Large sets are measured on even subsamples, so that time and memory stay bounded (the
//! pairwise statistics are O(n²)): `sw2` on at most [`SLICED_POINTS`] points of each set,
//! `energy` and `mmd2` on at most [`PAIRWISE_POINTS`], the bandwidth on at most
//! [`BANDWIDTH_POINTS`]. A floor computed the same way shares the subsampling.

use crate::points::Points;
use crate::progress::Progress;
use anyhow::{ensure, Result};
use rayon::prelude::*;
use serde::Serialize;
use tinyscore::particle_noise;

/// The number of projection directions of `sw2`.
pub const DIRECTIONS: usize = 512;

/// The most points of a set `sw2` projects.
pub const SLICED_POINTS: usize = 200_000;

/// The most points of a set the energy distance and MMD² pair.
pub const PAIRWISE_POINTS: usize = 10_000;

/// The most points of the reference set whose pairwise distances give the MMD bandwidth.
pub const BANDWIDTH_POINTS: usize = 5_000;

/// At most `most` of `points`, evenly spread through them (all of them if there are no more).
pub fn even_subsample(points: &Points, most: usize) -> std::borrow::Cow<'_, Points> {
    let n = points.len();
    if n <= most {
        return std::borrow::Cow::Borrowed(points);
    }
    let values = (0..most)
        .flat_map(|k| points.row(k * n / most).iter().copied())
        .collect();
    std::borrow::Cow::Owned(Points {
        dim: points.dim,
        values,
    })
}

/// The three metrics of one comparison.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Metrics {
    /// Sliced Wasserstein-2.
    pub sw2: f64,
    /// Energy distance.
    pub energy: f64,
    /// Squared maximum mean discrepancy.
    pub mmd2: f64,
}

/// The units of work of one [`compare`], as it reports them: one per projection direction of
/// `sw2`, one for the energy distance, one for MMD².
pub const COMPARISON_UNITS: u64 = DIRECTIONS as u64 + 2;

/// All three metrics of `samples` against `reference`, advancing `progress` by
/// [`COMPARISON_UNITS`].
pub fn compare(samples: &Points, reference: &Points, progress: &Progress) -> Result<Metrics> {
    ensure!(
        samples.dim == reference.dim,
        "samples have dimension {} but the reference has {}",
        samples.dim,
        reference.dim
    );
    ensure!(
        !samples.is_empty() && !reference.is_empty(),
        "nothing to compare: a set is empty"
    );
    let sliced = |p| even_subsample(p, SLICED_POINTS);
    let paired = |p| even_subsample(p, PAIRWISE_POINTS);
    let sw2 = sliced_w2_reporting(&sliced(samples), &sliced(reference), progress);
    let energy = energy_distance(&paired(samples), &paired(reference));
    progress.advance(1);
    let mmd2 = mmd2(&paired(samples), &paired(reference));
    progress.advance(1);
    Ok(Metrics { sw2, energy, mmd2 })
}

/// 512 unit vectors in `dim` dimensions, the same for every call (normalised Gaussian draws
/// from a fixed seed; in 2-D close to evenly spread angles).
pub fn directions(dim: usize) -> Vec<Vec<f64>> {
    let mut noise = particle_noise(0x5_1ced, dim as u64);
    (0..DIRECTIONS)
        .map(|_| loop {
            let v: Vec<f64> = (0..dim).map(|_| noise.sample() as f64).collect();
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm > 1e-6 {
                break v.into_iter().map(|x| x / norm).collect();
            }
        })
        .collect()
}

/// Squared 1-D Wasserstein-2 distance ∫₀¹ (F⁻¹(u) − G⁻¹(u))² du between two sorted samples of
/// any sizes (the quantile functions are step functions; the integral is exact).
pub fn w2_squared_sorted(a: &[f64], b: &[f64]) -> f64 {
    let (n, m) = (a.len(), b.len());
    let (mut i, mut j) = (0, 0);
    let mut u = 0.0f64;
    let mut total = 0.0;
    while i < n && j < m {
        let next_a = (i + 1) as f64 / n as f64;
        let next_b = (j + 1) as f64 / m as f64;
        let next = next_a.min(next_b);
        total += (next - u) * (a[i] - b[j]).powi(2);
        u = next;
        if next_a <= next {
            i += 1;
        }
        if next_b <= next {
            j += 1;
        }
    }
    total
}

fn project_sorted(points: &Points, direction: &[f64]) -> Vec<f64> {
    let mut p: Vec<f64> = points
        .rows()
        .map(|r| r.iter().zip(direction).map(|(x, d)| x * d).sum())
        .collect();
    p.sort_unstable_by(f64::total_cmp);
    p
}

/// Sliced Wasserstein-2 over the 512 fixed directions.
pub fn sliced_w2(samples: &Points, reference: &Points) -> f64 {
    sliced_w2_reporting(samples, reference, &Progress::silent())
}

/// [`sliced_w2`], advancing `progress` by one per direction.
fn sliced_w2_reporting(samples: &Points, reference: &Points, progress: &Progress) -> f64 {
    let dirs = directions(samples.dim);
    let sum: f64 = dirs
        .par_iter()
        .map(|d| {
            let w2 = w2_squared_sorted(&project_sorted(samples, d), &project_sorted(reference, d));
            progress.advance(1);
            w2
        })
        .sum();
    (sum / dirs.len() as f64).sqrt()
}

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Mean of `f(|a − b|)` over all pairs of `xs` × `ys` (V-statistic: i = j included).
fn mean_pairwise(xs: &Points, ys: &Points, f: impl Fn(f64) -> f64 + Sync) -> f64 {
    let total: f64 = (0..xs.len())
        .into_par_iter()
        .map(|i| {
            let a = xs.row(i);
            ys.rows().map(|b| f(distance(a, b))).sum::<f64>()
        })
        .sum();
    total / (xs.len() as f64 * ys.len() as f64)
}

/// Energy distance 2E|X−Y| − E|X−X'| − E|Y−Y'| (V-statistics).
pub fn energy_distance(samples: &Points, reference: &Points) -> f64 {
    let identity = |d: f64| d;
    2.0 * mean_pairwise(samples, reference, identity)
        - mean_pairwise(samples, samples, identity)
        - mean_pairwise(reference, reference, identity)
}

/// The median distance between distinct points of `points` (0 for fewer than 2 points).
pub fn median_pairwise_distance(points: &Points) -> f64 {
    let n = points.len();
    let mut d: Vec<f64> = (0..n)
        .into_par_iter()
        .flat_map_iter(|i| (i + 1..n).map(move |j| distance(points.row(i), points.row(j))))
        .collect();
    if d.is_empty() {
        return 0.0;
    }
    let mid = d.len() / 2;
    let (_, upper, _) = d.select_nth_unstable_by(mid, f64::total_cmp);
    let upper = *upper;
    if d.len() % 2 == 1 {
        upper
    } else {
        let lower = d[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        0.5 * (lower + upper)
    }
}

/// V-statistic MMD² with the Gaussian kernel of bandwidth `h` = median pairwise distance of
/// `reference` (of at most [`BANDWIDTH_POINTS`] of its points).
pub fn mmd2(samples: &Points, reference: &Points) -> f64 {
    let h = median_pairwise_distance(&even_subsample(reference, BANDWIDTH_POINTS))
        .max(f64::MIN_POSITIVE);
    let kernel = |d: f64| (-d * d / (2.0 * h * h)).exp();
    mean_pairwise(samples, samples, kernel) + mean_pairwise(reference, reference, kernel)
        - 2.0 * mean_pairwise(samples, reference, kernel)
}
