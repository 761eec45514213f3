//! The data a command takes: the toy datasets of the field, drawn reproducibly from a seed,
//! CSV files, and Gaussian mixtures (a dataset or a JSON file) for exact scores.

use crate::dims::MAX_DIM;
use crate::points::Points;
use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;
use tinyscore::{particle_noise, Component};

/// A diagonal Gaussian mixture of any dimension, as the command line reads it; the core's
/// [`Component`]s of one dimension come from [`Mixture::components`].
#[derive(Clone, Debug, PartialEq)]
pub struct Mixture {
    /// Where it came from, for messages.
    pub name: String,
    /// Unnormalised weights.
    pub weights: Vec<f32>,
    /// Component means.
    pub means: Vec<Vec<f32>>,
    /// Component standard deviations per coordinate.
    pub stds: Vec<Vec<f32>>,
}

impl Mixture {
    /// Coordinates per point.
    pub fn dim(&self) -> usize {
        self.means.first().map_or(0, Vec::len)
    }

    /// The components as the core's type on states of `N` coordinates, each validated; a
    /// mixture of fewer dimensions is padded with means 0 and stds 1 (see [`crate::dims`]).
    pub fn components<const N: usize>(&self) -> Result<Vec<Component<N>>> {
        let padded = |v: &[f32], k: usize, pad: f32| -> Result<[f32; N]> {
            ensure!(
                v.len() <= N,
                "{}: component {k} has {} coordinates, more than {N}",
                self.name,
                v.len()
            );
            Ok(core::array::from_fn(|d| v.get(d).copied().unwrap_or(pad)))
        };
        (0..self.weights.len())
            .map(|k| {
                let mean = padded(&self.means[k], k, 0.0)?;
                let std = padded(&self.stds[k], k, 1.0)?;
                Component::new(self.weights[k], mean, std)
                    .with_context(|| format!("{}: component {k}", self.name))
            })
            .collect()
    }
}

/// A named toy dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dataset {
    /// 8 Gaussians of std 0.1 at 2·(cos kπ/4, sin kπ/4).
    EightGaussians,
    /// scikit-learn's `make_moons(noise=0.05)`, standardized.
    Moons,
    /// A 4×4 checkerboard of uniform squares in [−2, 2]² (the FFJORD toy, unscaled).
    Checkerboard,
    /// scikit-learn's `make_swiss_roll(noise=0.5)`, dimensions 0 and 2, divided by 5.
    SwissRoll,
    /// Four concentric rings of radii 0.75, 1.5, 2.25, 3 with noise 0.08 (FFJORD).
    Rings,
    /// Five curved arms, radial std 0.3, tangential std 0.1, rate 0.25, scaled by 2 (FFJORD).
    Pinwheel,
    /// Two interleaved spirals (FFJORD's `2spirals`).
    TwoSpirals,
}

/// Every named dataset, in the order `--help` lists them.
pub const DATASETS: [Dataset; 7] = [
    Dataset::Moons,
    Dataset::EightGaussians,
    Dataset::Checkerboard,
    Dataset::SwissRoll,
    Dataset::Rings,
    Dataset::Pinwheel,
    Dataset::TwoSpirals,
];

/// Mean and std that standardize `make_moons(noise=0.05)` (the reference model's convention).
pub const MOONS_MEAN: [f64; 2] = [0.49980527299876004, 0.25006654551606106];
/// See [`MOONS_MEAN`].
pub const MOONS_STD: [f64; 2] = [0.8675906202556419, 0.4965160285032869];

impl Dataset {
    /// The dataset called `name`.
    pub fn from_name(name: &str) -> Result<Self> {
        match DATASETS.iter().find(|d| d.name() == name) {
            Some(d) => Ok(*d),
            None => {
                let known: Vec<&str> = DATASETS.iter().map(|d| d.name()).collect();
                bail!(
                    "unknown dataset `{name}` (known: {}, or a CSV file)",
                    known.join(", ")
                )
            }
        }
    }

    /// Its name on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Dataset::EightGaussians => "8gaussians",
            Dataset::Moons => "moons",
            Dataset::Checkerboard => "checkerboard",
            Dataset::SwissRoll => "swissroll",
            Dataset::Rings => "rings",
            Dataset::Pinwheel => "pinwheel",
            Dataset::TwoSpirals => "2spirals",
        }
    }

    /// The dataset as a Gaussian mixture, where it is one (its exact score is then known).
    pub fn mixture(&self) -> Option<Mixture> {
        match self {
            Dataset::EightGaussians => Some(Mixture {
                name: self.name().to_owned(),
                weights: vec![1.0; 8],
                means: eight_gaussians()
                    .iter()
                    .map(|c| c.mean().to_vec())
                    .collect(),
                stds: eight_gaussians().iter().map(|c| c.std().to_vec()).collect(),
            }),
            _ => None,
        }
    }

    /// `n` points drawn with `seed`.
    pub fn sample(&self, n: usize, seed: u64) -> Points {
        // One Gaussian stream per dataset draw; a second for discrete choices.
        let mut noise = particle_noise(seed, u64::MAX);
        let rows: Vec<[f32; 2]> = match self {
            Dataset::EightGaussians => {
                let components = eight_gaussians();
                let mut choice = tinyscore::particle_rng(seed, u64::MAX - 1);
                (0..n)
                    .map(|_| {
                        let k = (rand_core::Rng::next_u32(&mut choice) >> 29) as usize;
                        let m = components[k].mean();
                        [m[0] + 0.1 * noise.sample(), m[1] + 0.1 * noise.sample()]
                    })
                    .collect()
            }
            Dataset::Moons => {
                let outer = n / 2;
                let inner = n - outer;
                let arc = |i: usize, count: usize| {
                    std::f64::consts::PI * i as f64 / (count.max(2) - 1) as f64
                };
                let mut rows = Vec::with_capacity(n);
                for i in 0..outer {
                    let a = arc(i, outer);
                    rows.push([a.cos(), a.sin()]);
                }
                for i in 0..inner {
                    let a = arc(i, inner);
                    rows.push([1.0 - a.cos(), 1.0 - a.sin() - 0.5]);
                }
                rows.into_iter()
                    .map(|[x, y]: [f64; 2]| {
                        let x = x + 0.05 * noise.sample() as f64;
                        let y = y + 0.05 * noise.sample() as f64;
                        [
                            ((x - MOONS_MEAN[0]) / MOONS_STD[0]) as f32,
                            ((y - MOONS_MEAN[1]) / MOONS_STD[1]) as f32,
                        ]
                    })
                    .collect()
            }
            toy => {
                let mut uniform = Uniform(tinyscore::particle_rng(seed, u64::MAX - 1));
                ffjord_toy(*toy, n, &mut uniform, &mut || noise.sample() as f64)
            }
        };
        Points::from_rows(&rows)
    }
}

/// Uniform draws in [0, 1) with 24 bits, from one PCG stream.
struct Uniform(tinyscore::DefaultRng);

impl Uniform {
    fn next(&mut self) -> f64 {
        (rand_core::Rng::next_u32(&mut self.0) >> 8) as f64 / (1u32 << 24) as f64
    }
}

/// The FFJORD-style toys: `n` points from `uniform` and `normal` draws.
fn ffjord_toy(
    dataset: Dataset,
    n: usize,
    uniform: &mut Uniform,
    normal: &mut impl FnMut() -> f64,
) -> Vec<[f32; 2]> {
    use std::f64::consts::PI;
    let mut rows: Vec<[f64; 2]> = match dataset {
        Dataset::Checkerboard => (0..n)
            .map(|_| {
                let x1 = uniform.next() * 4.0 - 2.0;
                let x2 = uniform.next() - 2.0 * (uniform.next() < 0.5) as u8 as f64;
                [x1, x2 + x1.floor().rem_euclid(2.0)]
            })
            .collect(),
        Dataset::SwissRoll => (0..n)
            .map(|_| {
                let t = 1.5 * PI * (1.0 + 2.0 * uniform.next());
                let (x, z) = (t * t.cos() + 0.5 * normal(), t * t.sin() + 0.5 * normal());
                [x / 5.0, z / 5.0]
            })
            .collect(),
        Dataset::Rings => (0..n)
            .map(|i| {
                let ring = i % 4;
                let radius = 0.75 * (4 - ring) as f64;
                let angle = 2.0 * PI * (i / 4) as f64 / n.div_ceil(4).max(1) as f64;
                [
                    radius * angle.cos() + 0.08 * normal(),
                    radius * angle.sin() + 0.08 * normal(),
                ]
            })
            .collect(),
        Dataset::Pinwheel => (0..n)
            .map(|i| {
                let arm = (i % 5) as f64;
                let (radial, tangential) = (1.0 + 0.3 * normal(), 0.1 * normal());
                let angle = 2.0 * PI * arm / 5.0 + 0.25 * radial.exp();
                let (sin, cos) = angle.sin_cos();
                [
                    2.0 * (radial * cos - tangential * sin),
                    2.0 * (radial * sin + tangential * cos),
                ]
            })
            .collect(),
        Dataset::TwoSpirals => (0..n)
            .map(|i| {
                let r = uniform.next().sqrt() * 540.0 * 2.0 * PI / 360.0;
                let x = -r.cos() * r + uniform.next() * 0.5;
                let y = r.sin() * r + uniform.next() * 0.5;
                let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
                [
                    sign * x / 3.0 + 0.1 * normal(),
                    sign * y / 3.0 + 0.1 * normal(),
                ]
            })
            .collect(),
        _ => Vec::new(),
    };
    rows.truncate(n);
    rows.iter().map(|r| [r[0] as f32, r[1] as f32]).collect()
}

/// The points of `spec`: `n` draws (with `seed`) of a named dataset, or every row of a CSV
/// file (a path).
pub fn load(spec: &str, n: usize, seed: u64) -> Result<Points> {
    match Dataset::from_name(spec) {
        Ok(dataset) => Ok(dataset.sample(n, seed)),
        Err(unknown) if !std::path::Path::new(spec).exists() => {
            Err(unknown.context(format!("`{spec}` is neither a dataset nor a file")))
        }
        Err(_) => crate::io::read_csv(std::path::Path::new(spec)),
    }
}

/// Two independent sets of up to `n` points of `spec`, to measure samples against the first
/// and to give the metric's floor (the first against the second): two draws (seeds `seed`
/// and `seed + 1000003`) of a named dataset, or the two halves of a CSV file's rows after a
/// shuffle by `seed`.
pub fn reference_pair(spec: &str, n: usize, seed: u64) -> Result<(Points, Points)> {
    let all = match Dataset::from_name(spec) {
        Ok(dataset) => {
            return Ok((
                dataset.sample(n, seed),
                dataset.sample(n, seed.wrapping_add(1_000_003)),
            ))
        }
        Err(_) => load(spec, 0, seed)?,
    };
    let mut order: Vec<usize> = (0..all.len()).collect();
    let mut rng = tinyscore::particle_rng(seed, u64::MAX - 2);
    for i in (1..order.len()).rev() {
        let j = (rand_core::Rng::next_u64(&mut rng) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let half = (all.len() / 2).min(n);
    anyhow::ensure!(half > 0, "{spec}: too few rows to split in two");
    let take = |rows: &[usize]| Points {
        dim: all.dim,
        values: rows.iter().flat_map(|&i| all.row(i).to_vec()).collect(),
    };
    Ok((take(&order[..half]), take(&order[half..2 * half])))
}

/// The 8 components of the 8-Gaussians mixture (means rounded from f64).
pub fn eight_gaussians() -> [Component<2>; 8] {
    core::array::from_fn(|k| {
        let angle = k as f64 * std::f64::consts::FRAC_PI_4;
        let mean = [(2.0 * angle.cos()) as f32, (2.0 * angle.sin()) as f32];
        Component::new(1.0, mean, [0.1, 0.1]).expect("8-Gaussians parameters are valid")
    })
}

/// A Gaussian mixture as JSON: `{"weights": [w…], "means": [[x…]…], "stds": [[s…]…]}`.
#[derive(Debug, Deserialize)]
struct MixtureJson {
    weights: Vec<f32>,
    means: Vec<Vec<f32>>,
    stds: Vec<Vec<f32>>,
}

/// The mixture `spec`: a dataset that is a Gaussian mixture (`8gaussians`) or a JSON file
/// `{"weights": [w…], "means": [[x…]…], "stds": [[s…]…]}` of 1 to 64 dimensions.
pub fn mixture(spec: &str) -> Result<Mixture> {
    if spec.ends_with(".json") {
        let text = std::fs::read_to_string(spec).with_context(|| format!("cannot read {spec}"))?;
        let m: MixtureJson = serde_json::from_str(&text)
            .with_context(|| format!("{spec}: expected {{\"weights\", \"means\", \"stds\"}}"))?;
        ensure!(
            !m.weights.is_empty()
                && m.weights.len() == m.means.len()
                && m.means.len() == m.stds.len(),
            "{spec}: weights, means and stds must be non-empty and of one length"
        );
        let mixture = Mixture {
            name: spec.to_owned(),
            weights: m.weights,
            means: m.means,
            stds: m.stds,
        };
        let dim = mixture.dim();
        ensure!(
            (1..=MAX_DIM).contains(&dim),
            "{spec}: means of {dim} coordinates (1 to {MAX_DIM} allowed)"
        );
        ensure!(
            mixture
                .means
                .iter()
                .chain(&mixture.stds)
                .all(|v| v.len() == dim),
            "{spec}: every mean and std must have {dim} coordinates, as the first mean"
        );
        return Ok(mixture);
    }
    Dataset::from_name(spec)?
        .mixture()
        .with_context(|| format!("`{spec}` has no closed-form score (not a Gaussian mixture)"))
}
