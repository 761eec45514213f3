//! Pictures of a model (plotters, PNG and GIF): data beside samples, the score field at
//! chosen times, sample trajectories, and particles flowing from noise to data. Every picture
//! has a title, labelled axes and a legend, drawn with the DejaVu Sans font the binary carries
//! (no system font is needed).

use crate::points::Points;
use anyhow::{anyhow, bail, ensure, Result};
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

    /// Whether `p` is inside the square.
    fn contains(&self, p: [f64; 2]) -> bool {
        p[0].abs() <= self.half && p[1].abs() <= self.half
    }
}

const PANEL: u32 = 480;
/// The colour of data points.
pub const DATA: RGBColor = RGBColor(31, 119, 180);
/// The colour of samples.
pub const SAMPLES: RGBColor = RGBColor(214, 39, 40);
const FONT: &str = "sans-serif";

/// Registers the font the pictures are written in, once per process.
fn register_font() -> Result<()> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    ensure!(ok, "the plots' font (DejaVu Sans) does not load");
    Ok(())
}

/// Chart coordinates on `area`: the view's square.
type SquareChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A panel on `area`: the view's square with the title `title`, axes labelled `x_label` and
/// `y_label` (empty: no axis label), and a light grid.
fn panel<'a, DB: DrawingBackend + 'a>(
    area: &'a DrawingArea<DB, plotters::coord::Shift>,
    view: View,
    title: &str,
    (x_label, y_label): (&str, &str),
) -> Result<SquareChart<'a, DB>>
where
    DB::ErrorType: 'static,
{
    let h = view.half;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 18))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(-h..h, -h..h)
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 14))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    Ok(chart)
}

/// The legend of `chart`, in its upper right corner.
fn legend<'a, DB: DrawingBackend + 'a>(chart: &mut SquareChart<'a, DB>) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(|e| anyhow!("{e}"))
}

/// The axes' labels of points of `dim` coordinates (a 1-D strip has no vertical axis).
fn axes(dim: usize) -> (&'static str, &'static str) {
    if dim == 1 {
        ("x₀", "")
    } else {
        ("x₀", "x₁")
    }
}

/// Draws `points` as small dots of `color`, labelled `label` in the legend.
fn dots<'a, DB: DrawingBackend + 'a>(
    chart: &mut SquareChart<'a, DB>,
    points: &[[f64; 2]],
    color: RGBColor,
    radius: u32,
    label: &str,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .draw_series(
            points
                .iter()
                .map(|p| Circle::new((p[0], p[1]), radius, color.mix(0.6).filled())),
        )
        .map_err(|e| anyhow!("{e}"))?
        .label(label)
        .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
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

/// Two sets side by side on the same square, each titled (`titles`): the data (blue) and the
/// samples (red), or any two sets of points of one dimension (the first two coordinates, or
/// 1-D points spread vertically).
pub fn data_and_samples(
    path: &Path,
    data: &Points,
    samples: &Points,
    titles: [&str; 2],
) -> Result<()> {
    point_panels(
        path,
        data,
        &[(data, DATA, titles[0]), (samples, SAMPLES, titles[1])],
    )
}

/// Point sets side by side, one panel each (points, colour, title), in the view of `frame`.
pub fn point_panels(path: &Path, frame: &Points, sets: &[(&Points, RGBColor, &str)]) -> Result<()> {
    if let Some((points, ..)) = sets.iter().find(|(p, ..)| p.dim != frame.dim) {
        bail!(
            "the data have {} coordinates, the samples {}",
            frame.dim,
            points.dim
        );
    }
    register_font()?;
    let view = View::around(frame);
    let columns = sets.len().max(1);
    write_png(path, columns as u32 * PANEL, PANEL, |root| {
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        for (area, (points, color, title)) in root.split_evenly((1, columns)).iter().zip(sets) {
            let mut chart = panel(area, view, title, axes(frame.dim))?;
            let count = format!("{} points", points.len());
            dots(&mut chart, &pairs(points, view), *color, 1, &count)?;
            legend(&mut chart)?;
        }
        Ok(())
    })
}

/// The score field at each of `times` (panels left to right, each titled with its time): an
/// arrow per grid point in the score's direction, its length growing with the score's norm
/// (log scale, capped).
pub fn score_field(
    path: &Path,
    view: View,
    dim: usize,
    times: &[f32],
    score: impl Fn([f32; 2], f32) -> [f32; 2],
) -> Result<()> {
    ensure!(!times.is_empty(), "no times to plot");
    register_font()?;
    let grid = 21;
    let h = view.half;
    write_png(path, PANEL * times.len() as u32, PANEL, |root| {
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        for (area, &t) in root.split_evenly((1, times.len())).iter().zip(times) {
            let title = format!("score ∇log p_t at t = {t}");
            let mut chart = panel(area, view, &title, axes(dim))?;
            let cell = 2.0 * h / grid as f64;
            let mut arrows = Vec::new();
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
                    arrows.push([(x, y), (x + dx, y + dy)]);
                }
            }
            chart
                .draw_series(
                    arrows
                        .iter()
                        .map(|a| PathElement::new(a.to_vec(), BLACK.mix(0.7).stroke_width(1))),
                )
                .map_err(|e| anyhow!("{e}"))?;
            chart
                .draw_series(
                    arrows
                        .iter()
                        .map(|a| Circle::new(a[1], 2, SAMPLES.filled())),
                )
                .map_err(|e| anyhow!("{e}"))?
                .label("direction of the score (head)")
                .legend(|(x, y)| Circle::new((x + 8, y), 3, SAMPLES.filled()));
            legend(&mut chart)?;
        }
        Ok(())
    })
}

/// Sample trajectories over the data: each path from noise (faint) to its end (dark, with a
/// dot), drawn only where it is inside the view, so nothing is clamped to the frame.
pub fn trajectories(
    path: &Path,
    data: &Points,
    paths: &[Vec<[f64; 2]>],
    title: &str,
) -> Result<()> {
    register_font()?;
    let view = View::around(data);
    let data_points = pairs(data, view);
    write_png(path, PANEL + 120, PANEL + 120, |root| {
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let mut chart = panel(root, view, title, axes(data.dim))?;
        dots(&mut chart, &data_points, DATA, 1, "data")?;
        for path in paths {
            let steps = path.len().max(2) - 1;
            let segments = path.windows(2).enumerate().filter_map(|(k, pair)| {
                let (a, b) = (pair[0], pair[1]);
                (view.contains(a) && view.contains(b)).then(|| {
                    let opacity = 0.08 + 0.82 * (k as f64 / steps as f64);
                    PathElement::new(
                        vec![(a[0], a[1]), (b[0], b[1])],
                        SAMPLES.mix(opacity).stroke_width(1),
                    )
                })
            });
            chart.draw_series(segments).map_err(|e| anyhow!("{e}"))?;
        }
        let ends: Vec<[f64; 2]> = paths
            .iter()
            .filter_map(|p| p.last().copied())
            .filter(|p| view.contains(*p))
            .collect();
        chart
            .draw_series(
                ends.iter()
                    .map(|p| Circle::new((p[0], p[1]), 3, SAMPLES.filled())),
            )
            .map_err(|e| anyhow!("{e}"))?
            .label("trajectory, noise (faint) to sample (dot)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], SAMPLES.stroke_width(2)));
        legend(&mut chart)
    })
}

/// An animated GIF of particles over the data: `frames[k]` is every particle at time
/// `times[k]`, which each frame names; the last frame is held for two seconds.
pub fn animation(
    path: &Path,
    data: &Points,
    frames: &[Vec<[f64; 2]>],
    times: &[f32],
) -> Result<()> {
    ensure!(!frames.is_empty(), "no frames to animate");
    register_font()?;
    let view = View::around(data);
    let data_points = pairs(data, view);
    let tmp = crate::io::temporary_sibling(path)?;
    {
        const FRAME_MS: u32 = 100;
        let root = BitMapBackend::gif(tmp.path(), (PANEL, PANEL), FRAME_MS)
            .map_err(|e| anyhow!("{e}"))?
            .into_drawing_area();
        let held = std::iter::repeat_n(frames.len() - 1, (2000 / FRAME_MS) as usize);
        for k in (0..frames.len()).chain(held) {
            root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
            let t = times.get(k).copied().unwrap_or_default();
            let title = format!("reverse SDE, t = {t:.3}");
            let mut chart = panel(&root, view, &title, axes(data.dim))?;
            dots(&mut chart, &data_points, DATA, 1, "data")?;
            // Particles still outside the view are left out, not drawn on its edge.
            let inside: Vec<[f64; 2]> = frames[k]
                .iter()
                .copied()
                .filter(|p| view.contains(*p))
                .collect();
            dots(&mut chart, &inside, SAMPLES, 2, "particles")?;
            legend(&mut chart)?;
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

/// The paths of `solver` (`steps` steps from T to `t_end`) of particles `0..n` of `seed`,
/// each state `(t, x)` with `x` mapped by `to_data`, in states whose first `coordinates` are
/// the data's (see [`crate::dims`]).
#[allow(clippy::too_many_arguments)]
fn sample_paths<P, D, S, const N: usize>(
    solver: P,
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
    P: tinyscore::Solver<D, N>,
    D: tinyscore::LinearSde,
    S: tinyscore::Score<N>,
{
    let grid = tinyscore::TimeGrid::uniform(sde.t_max(), t_end, steps)?;
    let sampler = tinyscore::Sampler::new(solver, grid);
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
/// field at t = 0.01, 0.1, 0.5, 1), `trajectories.png` (32 probability-flow ODE paths) and
/// `flow.gif` (400 reverse-SDE
/// particles from noise to data, 41 frames evenly spaced in log-SNR, the last held). `score` is in the model's coordinates; `to_data`
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
        "the data have {} coordinates, the score {coordinates}",
        data.dim
    );
    let files: Vec<_> = ["samples.png", "score.png", "trajectories.png", "flow.gif"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    let progress = crate::progress::Progress::new("plot", 4, "pictures");
    data_and_samples(&files[0], data, samples, ["data", "samples"])?;
    progress.advance(1);
    let view = View::around(data);
    let origin = to_data(&[0.0; N]);
    score_field(
        &files[1],
        view,
        coordinates,
        &[0.01, 0.1, 0.5, 1.0],
        |p, t| {
            let mut x = origin;
            x[..N.min(2)].copy_from_slice(&p[..N.min(2)]);
            let s = score.score(&to_model(&x), t);
            [s[0], if N >= 2 { s[1] } else { 0.0 }]
        },
    )?;
    let steps = 200;
    let t_max = sde.t_max();
    // 1-D: time is the height, T at the top.
    let time_height =
        |t: f32| ((2.0 * (t - t_end) / (t_max - t_end)) as f64 - 1.0) * 0.9 * view.half;
    let to_f64 = |x: &[f32; N]| x.map(f64::from);
    // The probability-flow ODE's paths: smooth, where the SDE's are a tangle of noise.
    let ode = tinyscore::OdeHeun;
    let paths: Vec<Vec<[f64; 2]>> = sample_paths(
        ode,
        sde,
        score,
        t_end,
        steps / 2,
        32,
        seed,
        coordinates,
        to_data,
    )?
    .iter()
    .map(|path| {
        path.iter()
            .map(|(t, x)| project(&to_f64(x), time_height(*t)))
            .collect()
    })
    .collect();
    let title = format!("32 probability-flow ODE paths, t from {t_max} to {t_end}");
    trajectories(&files[2], data, &paths, &title)?;
    progress.advance(1);
    let em = tinyscore::EulerMaruyama;
    let particles = sample_paths(
        em,
        sde,
        score,
        t_end,
        steps,
        400,
        seed,
        coordinates,
        to_data,
    )?;
    // Frames evenly spaced in log-SNR, where the particles move evenly (in t, most frames
    // would show noise and the last few the whole collapse onto the data).
    let grid_times: Vec<f32> = particles
        .first()
        .map(|p| p.iter().map(|(t, _)| *t).collect())
        .unwrap_or_default();
    let (first, last) = (sde.log_snr(t_max), sde.log_snr(t_end));
    let steps_at: Vec<usize> = (0..=FRAMES)
        .map(|k| {
            let lambda = first + (last - first) * k as f32 / FRAMES as f32;
            let nearest = |t: &f32| (sde.log_snr(*t) - lambda).abs();
            (0..grid_times.len())
                .min_by(|a, b| nearest(&grid_times[*a]).total_cmp(&nearest(&grid_times[*b])))
                .unwrap_or(0)
        })
        .collect();
    let frames: Vec<Vec<[f64; 2]>> = steps_at
        .iter()
        .map(|&step| {
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
    let times: Vec<f32> = steps_at
        .iter()
        .map(|&step| grid_times.get(step).copied().unwrap_or(t_end))
        .collect();
    animation(&files[3], data, &frames, &times)?;
    progress.finish();
    Ok(files)
}

/// Frames of `flow.gif` after the first.
const FRAMES: usize = 40;

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
