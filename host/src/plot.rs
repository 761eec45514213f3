//! Pictures of a model (plotters, PNG and GIF): data beside samples, the score field at
//! chosen times, sample trajectories, and particles flowing from noise to data.
//!
//! The plots carry no text (plotters' font support needs system fonts, which a fresh CI
//! machine lacks); each file's layout is fixed and described where it is written.

use crate::points::Points;
use anyhow::{anyhow, ensure, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::path::Path;

/// The square `[-half, half]²` every panel shows.
#[derive(Clone, Copy, Debug)]
pub struct View {
    /// Half the side of the square.
    pub half: f64,
}

impl View {
    /// A square holding the central 99.5% of `points` (at least ±1).
    pub fn around(points: &Points) -> View {
        let mut extent: Vec<f64> = points.values.iter().map(|v| v.abs()).collect();
        extent.sort_by(f64::total_cmp);
        let q = extent
            .get((extent.len() as f64 * 0.995) as usize)
            .copied()
            .unwrap_or(1.0);
        View {
            half: (1.15 * q).max(1.0),
        }
    }
}

const PANEL: u32 = 480;
const DATA: RGBColor = RGBColor(31, 119, 180);
const SAMPLES: RGBColor = RGBColor(214, 39, 40);

/// Chart coordinates on `area`: the view's square, with the margin every panel has.
type SquareChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn square_chart<'a, DB: DrawingBackend + 'a>(
    area: &'a DrawingArea<DB, plotters::coord::Shift>,
    view: View,
) -> Result<SquareChart<'a, DB>>
where
    DB::ErrorType: 'static,
{
    let h = view.half;
    ChartBuilder::on(area)
        .margin(8)
        .build_cartesian_2d(-h..h, -h..h)
        .map_err(|e| anyhow!("{e}"))
}

fn draw_points<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    view: View,
    points: &[[f64; 2]],
    color: RGBColor,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut chart = square_chart(area, view)?;
    chart
        .draw_series(
            points
                .iter()
                .map(|p| Circle::new((p[0], p[1]), 1, color.mix(0.6).filled())),
        )
        .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// Where a point is drawn: its first two coordinates, or, for 1-D data, its coordinate at
/// height `height` (a strip plot).
fn project(x: &[f64], height: f64) -> [f64; 2] {
    match x {
        [a, b, ..] => [*a, *b],
        [a] => [*a, height],
        [] => [0.0, height],
    }
}

/// The height of point `i` in a 1-D strip plot: spread evenly over the view, in no pattern.
fn strip_height(i: usize, view: View) -> f64 {
    ((i as f64 * 0.618_033_988_749_895).fract() * 2.0 - 1.0) * 0.9 * view.half
}

/// Every point of `points`, projected (see [`project`]).
fn pairs(points: &Points, view: View) -> Vec<[f64; 2]> {
    points
        .rows()
        .enumerate()
        .map(|(i, r)| project(r, strip_height(i, view)))
        .collect()
}

/// Data (left, blue) beside samples (right, red), on the same square: the first two
/// coordinates, or 1-D points spread vertically.
pub fn data_and_samples(path: &Path, data: &Points, samples: &Points) -> Result<()> {
    ensure!(
        data.dim == samples.dim,
        "the data have {} coordinates, the samples {}",
        data.dim,
        samples.dim
    );
    let view = View::around(data);
    let (data, samples) = (pairs(data, view), pairs(samples, view));
    write_png(path, 2 * PANEL, PANEL, |root| {
        let panels = root.split_evenly((1, 2));
        draw_points(&panels[0], view, &data, DATA)?;
        draw_points(&panels[1], view, &samples, SAMPLES)
    })
}

/// The score field at each of `times` (panels left to right): an arrow per grid point in the
/// score's direction, its length growing with the score's norm (log scale, capped).
pub fn score_field(
    path: &Path,
    view: View,
    times: &[f32],
    score: impl Fn([f32; 2], f32) -> [f32; 2],
) -> Result<()> {
    ensure!(!times.is_empty(), "no times to plot");
    let grid = 21;
    let h = view.half;
    write_png(path, PANEL * times.len() as u32, PANEL, |root| {
        for (panel, &t) in root.split_evenly((1, times.len())).iter().zip(times) {
            panel.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
            let mut chart = square_chart(panel, view)?;
            let cell = 2.0 * h / grid as f64;
            for i in 0..grid {
                for j in 0..grid {
                    let x = -h + cell * (i as f64 + 0.5);
                    let y = -h + cell * (j as f64 + 0.5);
                    let s = score([x as f32, y as f32], t);
                    let norm = ((s[0] * s[0] + s[1] * s[1]) as f64).sqrt();
                    if !(norm.is_finite() && norm > 0.0) {
                        continue;
                    }
                    let length = 0.45 * cell * (1.0 + norm.ln_1p()).min(2.0);
                    let (dx, dy) = (s[0] as f64 / norm * length, s[1] as f64 / norm * length);
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            vec![(x, y), (x + dx, y + dy)],
                            BLACK.stroke_width(1),
                        )))
                        .map_err(|e| anyhow!("{e}"))?;
                    chart
                        .draw_series(std::iter::once(Circle::new(
                            (x + dx, y + dy),
                            2,
                            SAMPLES.filled(),
                        )))
                        .map_err(|e| anyhow!("{e}"))?;
                }
            }
        }
        Ok(())
    })
}

/// Sample trajectories from noise (light) to data (dark), over the data in blue.
pub fn trajectories(path: &Path, data: &Points, paths: &[Vec<[f64; 2]>]) -> Result<()> {
    let view = View::around(data);
    let data = pairs(data, view);
    write_png(path, PANEL, PANEL, |root| {
        draw_points(root, view, &data, DATA)?;
        let mut chart = square_chart(root, view)?;
        for path in paths {
            let line = path.iter().map(|p| (p[0], p[1]));
            chart
                .draw_series(std::iter::once(PathElement::new(
                    line.collect::<Vec<_>>(),
                    SAMPLES.mix(0.5).stroke_width(1),
                )))
                .map_err(|e| anyhow!("{e}"))?;
            if let Some(end) = path.last() {
                chart
                    .draw_series(std::iter::once(Circle::new(
                        (end[0], end[1]),
                        3,
                        SAMPLES.filled(),
                    )))
                    .map_err(|e| anyhow!("{e}"))?;
            }
        }
        Ok(())
    })
}

/// An animated GIF of particles (`frames[k]` = every particle at frame k) over the data.
pub fn animation(path: &Path, data: &Points, frames: &[Vec<[f64; 2]>]) -> Result<()> {
    ensure!(!frames.is_empty(), "no frames to animate");
    let view = View::around(data);
    let data = pairs(data, view);
    let tmp = crate::io::temporary_sibling(path)?;
    {
        let root = BitMapBackend::gif(tmp.path(), (PANEL, PANEL), 80)
            .map_err(|e| anyhow!("{e}"))?
            .into_drawing_area();
        for frame in frames {
            draw_points(&root, view, &data, DATA)?;
            let mut chart = square_chart(&root, view)?;
            chart
                .draw_series(
                    frame
                        .iter()
                        .map(|p| Circle::new((p[0], p[1]), 2, SAMPLES.filled())),
                )
                .map_err(|e| anyhow!("{e}"))?;
            root.present().map_err(|e| anyhow!("{e}"))?;
        }
    }
    crate::io::commit_temporary(tmp, path)
}

/// Draws with `draw` into a PNG written atomically at `path`.
fn write_png(
    path: &Path,
    width: u32,
    height: u32,
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()>,
) -> Result<()> {
    let tmp = crate::io::temporary_sibling(path)?;
    {
        let root = BitMapBackend::new(tmp.path(), (width, height)).into_drawing_area();
        draw(&root)?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    crate::io::commit_temporary(tmp, path)
}

/// A particle's states, each with its time.
type TimedPath<const N: usize> = Vec<(f32, [f32; N])>;

/// Records every state of a particle's path with its time.
struct PathRecorder<const N: usize>(TimedPath<N>);

impl<const N: usize> tinyscore::Observer<N> for PathRecorder<N> {
    fn observe(&mut self, _step: u32, t: f32, x: &[f32; N]) {
        self.0.push((t, *x));
    }
}

/// The Euler–Maruyama paths (`steps` steps from T to `t_end`) of particles `0..n` of `seed`,
/// each state `(t, x)` with `x` mapped by `to_data`, in states whose first `coordinates` are
/// the data's (see [`crate::dims`]).
#[allow(clippy::too_many_arguments)]
fn sample_paths<D, S, const N: usize>(
    sde: &D,
    score: &S,
    t_end: f32,
    steps: u32,
    n: usize,
    seed: u64,
    coordinates: usize,
    to_data: impl Fn(&[f32; N]) -> [f32; N],
) -> Result<Vec<TimedPath<N>>>
where
    D: tinyscore::LinearSde,
    S: tinyscore::Score<N>,
{
    let grid = tinyscore::TimeGrid::uniform(sde.t_max(), t_end, steps)?;
    let sampler = tinyscore::Sampler::new(tinyscore::EulerMaruyama, grid);
    (0..n)
        .map(|i| {
            let mut recorder = PathRecorder(Vec::with_capacity(steps as usize + 1));
            let mut noise = tinyscore::particle_noise(seed, i as u64).with_coordinates(coordinates);
            sampler
                .sample(sde, score, &mut noise, &mut recorder)
                .map_err(|e| anyhow!("particle {i}: {e}"))?;
            Ok(recorder.0.iter().map(|(t, x)| (*t, to_data(x))).collect())
        })
        .collect()
}

/// Every picture of a model in `dir`: `samples.png` (data | samples), `score.png` (the score
/// field at t = 0.01, 0.1, 0.5, 1), `trajectories.png` (32 paths) and `flow.gif` (the
/// particles from noise to data, 40 frames). `score` is in the model's coordinates; `to_data`
/// maps them to data units.
///
/// Points of more than two coordinates are drawn by their first two, and the score field is
/// the slice through the model's origin (the data mean) in the others. One coordinate is
/// drawn as a strip: particles at spread-out heights, the score as horizontal arrows, and
/// trajectories with time running from the top (T) to the bottom.
#[allow(clippy::too_many_arguments)]
pub fn all<D, S, const N: usize>(
    dir: &Path,
    data: &Points,
    samples: &Points,
    sde: &D,
    score: &S,
    t_end: f32,
    seed: u64,
    coordinates: usize,
    to_data: impl Fn(&[f32; N]) -> [f32; N] + Copy,
    to_model: impl Fn(&[f32; N]) -> [f32; N],
) -> Result<Vec<std::path::PathBuf>>
where
    D: tinyscore::LinearSde,
    S: tinyscore::Score<N>,
{
    ensure!(
        data.dim == coordinates,
        "the data have {} coordinates, the model {coordinates}",
        data.dim
    );
    let files: Vec<_> = ["samples.png", "score.png", "trajectories.png", "flow.gif"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    data_and_samples(&files[0], data, samples)?;
    let view = View::around(data);
    let origin = to_data(&[0.0; N]);
    score_field(&files[1], view, &[0.01, 0.1, 0.5, 1.0], |p, t| {
        let mut x = origin;
        x[..N.min(2)].copy_from_slice(&p[..N.min(2)]);
        let s = score.score(&to_model(&x), t);
        [s[0], if N >= 2 { s[1] } else { 0.0 }]
    })?;
    let steps = 200;
    let t_max = sde.t_max();
    // 1-D: time is the height, T at the top.
    let time_height =
        |t: f32| ((2.0 * (t - t_end) / (t_max - t_end)) as f64 - 1.0) * 0.9 * view.half;
    let to_f64 = |x: &[f32; N]| x.map(f64::from);
    let paths: Vec<Vec<[f64; 2]>> =
        sample_paths(sde, score, t_end, steps, 32, seed, coordinates, to_data)?
            .iter()
            .map(|path| {
                path.iter()
                    .map(|(t, x)| project(&to_f64(x), time_height(*t)))
                    .collect()
            })
            .collect();
    trajectories(&files[2], data, &paths)?;
    let particles = sample_paths(sde, score, t_end, steps, 400, seed, coordinates, to_data)?;
    let frames: Vec<Vec<[f64; 2]>> = (0..=40)
        .map(|k| {
            let step = (k * steps as usize / 40).min(steps as usize);
            particles
                .iter()
                .enumerate()
                .filter_map(|(i, p)| {
                    p.get(step)
                        .map(|(_, x)| project(&to_f64(x), strip_height(i, view)))
                })
                .collect()
        })
        .collect();
    animation(&files[3], data, &frames)?;
    Ok(files)
}

/// [`all`] for a model file's network (its SDE, end time and normalisation from the file).
pub fn all_for_model(
    dir: &Path,
    data: &Points,
    samples: &Points,
    model: tinyscore::Model<'_>,
    seed: u64,
) -> Result<Vec<std::path::PathBuf>> {
    crate::with_dim!(
        model.header().dims.dim as usize,
        all_for_model_in(dir, data, samples, model, seed)
    )
}

fn all_for_model_in<const N: usize>(
    dir: &Path,
    data: &Points,
    samples: &Points,
    model: tinyscore::Model<'_>,
    seed: u64,
) -> Result<Vec<std::path::PathBuf>> {
    let score = crate::simd::neural_score::<N>(model)?;
    all(
        dir,
        data,
        samples,
        &score.sde(),
        &score,
        model.header().t_end,
        seed,
        model.header().dims.dim as usize,
        |x| model.denormalize(x),
        |x| model.normalize(x),
    )
}

/// [`all`] for the exact score of a Gaussian mixture under the VP-SDE.
pub fn all_for_mixture(
    dir: &Path,
    data: &Points,
    samples: &Points,
    mixture: &crate::data::Mixture,
    t_end: f32,
    seed: u64,
) -> Result<Vec<std::path::PathBuf>> {
    crate::with_dim!(
        mixture.dim(),
        all_for_mixture_in(dir, data, samples, mixture, t_end, seed)
    )
}

fn all_for_mixture_in<const N: usize>(
    dir: &Path,
    data: &Points,
    samples: &Points,
    mixture: &crate::data::Mixture,
    t_end: f32,
    seed: u64,
) -> Result<Vec<std::path::PathBuf>> {
    use crate::sampling::ScoreFor;
    let exact = crate::sampling::ExactMixture::<N>::new(mixture)?;
    let sde = tinyscore::ModelSde::Vp(tinyscore::VpSde::default());
    let score = exact.for_sde(sde);
    all(
        dir,
        data,
        samples,
        &sde,
        &score,
        t_end,
        seed,
        mixture.dim(),
        |x| *x,
        |x| *x,
    )
}
