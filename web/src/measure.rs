//! Live measures of the particles against exact draws of a mixture: sliced W2, energy
//! distance, the share of particles per mode and the spread. They are the definitions
//! `tinyscore eval` uses, on fewer directions and points so that they refresh while the
//! particles move; [`Reference::floor`] is the same measure between two exact draws, the
//! value a perfect sampler shows.

use rand_core::Rng;
use tinyscore::{particle_noise, particle_rng, Component};

/// Directions of the live sliced W2: evenly spread angles over the half circle.
pub const DIRECTIONS: usize = 90;
/// The exact draws the live sliced W2 compares with (projected and sorted once).
pub const REFERENCE_POINTS: usize = 2_000;
/// The most particles the live sliced W2 projects (a measure every half second then takes a
/// few milliseconds, within a frame's budget beside 10 000 particles' step and drawing).
pub const SLICED_POINTS: usize = 1_000;
/// The most points of a set the live energy distance pairs.
pub const PAIRED_POINTS: usize = 600;

/// Exact draws of a mixture: the reference of the measures.
pub struct Reference {
    points: Vec<[f64; 2]>,
    /// The draws projected on each direction, sorted.
    projected: Vec<Vec<f64>>,
    floor: Measures,
    weights: Vec<f64>,
    variance: [f64; 2],
}

/// The measures of one set of particles.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Measures {
    /// Sliced Wasserstein-2.
    pub sw2: f64,
    /// Energy distance.
    pub energy: f64,
}

/// `n` draws of the mixture, from the fixed streams of `seed`.
fn draw(components: &[Component<2>], weights: &[f32], n: usize, seed: u64) -> Vec<[f64; 2]> {
    let total: f64 = weights.iter().map(|&w| w as f64).sum();
    let mut choice = particle_rng(seed, u64::MAX - 1);
    let mut noise = particle_noise(seed, u64::MAX);
    (0..n)
        .map(|_| {
            let u = Rng::next_u32(&mut choice) as f64 / 4_294_967_296.0 * total;
            let mut acc = 0.0;
            let k = weights
                .iter()
                .position(|&w| {
                    acc += w as f64;
                    u < acc
                })
                .unwrap_or(weights.len() - 1);
            let c = &components[k];
            let z: [f32; 2] = noise.normal();
            [0, 1].map(|d| c.mean()[d] as f64 + c.std()[d] as f64 * z[d] as f64)
        })
        .collect()
}

impl Reference {
    /// Exact draws of the mixture of `components` with `weights`.
    pub fn new(components: &[Component<2>], weights: &[f32]) -> Reference {
        let points = draw(components, weights, REFERENCE_POINTS, 1);
        let second = draw(components, weights, SLICED_POINTS, 2);
        let total: f64 = weights.iter().map(|&w| w as f64).sum();
        let weights: Vec<f64> = weights.iter().map(|&w| w as f64 / total).collect();
        // The mixture's variance per axis: Σ w (s² + μ²) − (Σ w μ)².
        let variance = [0, 1].map(|d| {
            let mean: f64 = components
                .iter()
                .zip(&weights)
                .map(|(c, w)| w * c.mean()[d] as f64)
                .sum();
            components
                .iter()
                .zip(&weights)
                .map(|(c, w)| w * ((c.std()[d] as f64).powi(2) + (c.mean()[d] as f64).powi(2)))
                .sum::<f64>()
                - mean * mean
        });
        let projected = (0..DIRECTIONS)
            .map(|k| project_sorted(&points, k))
            .collect();
        let mut reference = Reference {
            points,
            projected,
            floor: Measures::default(),
            weights,
            variance,
        };
        reference.floor = reference.measure(&second);
        reference
    }

    /// Sliced W2 and energy distance of `particles` to the draws.
    pub fn measure(&self, particles: &[[f64; 2]]) -> Measures {
        Measures {
            sw2: self.sliced_w2(&even_subsample(particles, SLICED_POINTS)),
            energy: energy_distance(
                &even_subsample(particles, PAIRED_POINTS),
                &even_subsample(&self.points, PAIRED_POINTS),
            ),
        }
    }

    /// Sliced W2 of `points` to the draws, over [`DIRECTIONS`] evenly spread directions.
    fn sliced_w2(&self, points: &[[f64; 2]]) -> f64 {
        let sum: f64 = self
            .projected
            .iter()
            .enumerate()
            .map(|(k, reference)| w2_squared_sorted(&project_sorted(points, k), reference))
            .sum();
        (sum / DIRECTIONS as f64).sqrt()
    }

    /// The measures of exact draws as many as the particles measured (independent of the
    /// reference draws): what a perfect sampler shows.
    pub fn floor(&self) -> Measures {
        self.floor
    }

    /// The mixture's weights, normalised.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// The mixture's variance along x and y.
    pub fn variance(&self) -> [f64; 2] {
        self.variance
    }
}

/// At most `most` of `points`, evenly spread through them.
fn even_subsample(points: &[[f64; 2]], most: usize) -> Vec<[f64; 2]> {
    let n = points.len();
    if n <= most {
        return points.to_vec();
    }
    (0..most).map(|k| points[k * n / most]).collect()
}

/// Squared 1-D W2 between two sorted samples of any sizes (exact for step quantiles).
fn w2_squared_sorted(a: &[f64], b: &[f64]) -> f64 {
    let (n, m) = (a.len(), b.len());
    let (mut i, mut j, mut u, mut total) = (0, 0, 0.0f64, 0.0);
    while i < n && j < m {
        let (next_a, next_b) = ((i + 1) as f64 / n as f64, (j + 1) as f64 / m as f64);
        let next = next_a.min(next_b);
        total += (next - u) * (a[i] - b[j]).powi(2);
        u = next;
        i += usize::from(next_a <= next);
        j += usize::from(next_b <= next);
    }
    total
}

/// `points` projected on direction `k` of [`DIRECTIONS`] (angle kπ/DIRECTIONS), sorted.
fn project_sorted(points: &[[f64; 2]], k: usize) -> Vec<f64> {
    let angle = core::f64::consts::PI * k as f64 / DIRECTIONS as f64;
    let (c, s) = (angle.cos(), angle.sin());
    let mut p: Vec<f64> = points.iter().map(|x| c * x[0] + s * x[1]).collect();
    p.sort_unstable_by(f64::total_cmp);
    p
}

/// Energy distance 2E|X−Y| − E|X−X'| − E|Y−Y'| (V-statistics).
pub fn energy_distance(a: &[[f64; 2]], b: &[[f64; 2]]) -> f64 {
    let mean = |xs: &[[f64; 2]], ys: &[[f64; 2]]| {
        let total: f64 = xs
            .iter()
            .map(|x| {
                ys.iter()
                    .map(|y| ((x[0] - y[0]).powi(2) + (x[1] - y[1]).powi(2)).sqrt())
                    .sum::<f64>()
            })
            .sum();
        total / (xs.len() * ys.len()) as f64
    };
    2.0 * mean(a, b) - mean(a, a) - mean(b, b)
}
