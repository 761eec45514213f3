//! Time grids fitted to a score and a sampler (in the spirit of Sabour et al., "Align Your
//! Steps", 2024): the `K − 1` interior points of a `K`-step grid, as fractions of the way in
//! log-SNR, chosen to minimise the RMS distance between the sampler's samples and the
//! converged probability-flow ODE solution from the same starting points.
//!
//! The search starts from the equal log-SNR grid and moves one point at a time within its
//! neighbours (coordinate search with a shrinking step), keeping a move only when the error on
//! the calibration draws falls. The gain is reported on other draws than those it was fitted
//! on.
//!
//! For the bespoke solver ([`tinyscore::Bespoke`]) the grid is UniPC's, and its coefficients
//! are then fitted step by step ([`fit_bespoke`]).

use crate::points::Samples;
use crate::sampling::{PointMap, SampleOptions, SamplerKind, ScheduleKind};
use anyhow::{ensure, Context, Result};
use tinyscore::{
    Bespoke, Dopri5, FittedGrid, LinearSde, ModelSde, Schedule, StepCoefficients, TimeGrid,
    MAX_BESPOKE_STEPS, MAX_FITTED_STEPS,
};

/// The times `t₀ = T > … > t_K = t_end` of a `steps`-step grid under `sde` (empty for a grid
/// that cannot be built).
pub fn grid_times(sde: ModelSde, t_end: f32, schedule: Schedule, steps: u32) -> Vec<f32> {
    TimeGrid::new(schedule, sde.t_max(), t_end, steps)
        .map(|g| (0..=g.steps()).map(|i| g.time(&sde, i)).collect())
        .unwrap_or_default()
}

/// Draws samples for the options given (the score and its SDE are the caller's).
pub type Draw<'a> = dyn Fn(&SampleOptions<'_>) -> Result<Samples> + 'a;

/// A fitted grid and what it gains.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FittedSchedule {
    /// The sampler it was fitted for.
    pub sampler: String,
    /// Its steps.
    pub steps: u32,
    /// Score evaluations per sample.
    pub nfe: u32,
    /// The interior log-SNR fractions.
    pub interior: Vec<f32>,
    /// The grid's times, from T to t_end (for reading; `interior` defines it).
    pub times: Vec<f32>,
    /// RMS error against the converged solution on held-out draws.
    pub rms_error: f64,
    /// The best fixed grid's, on the same draws.
    pub best_fixed_rms_error: f64,
    /// Which fixed grid that is.
    pub best_fixed_schedule: String,
    /// The bespoke solver's coefficients `[a, b, c, e]`, one row a step: f32 values written
    /// as f64, whose decimals read back through f64 to the same f32 bits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coefficients: Option<Vec<[f64; 4]>>,
    /// For the bespoke solver: UniPC's RMS error on the same grid and draws.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unipc_rms_error: Option<f64>,
}

/// A `tinyscore schedule` file: the grid, and the bespoke solver's coefficients when it was
/// fitted for that solver.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GridFile {
    /// The grid.
    pub grid: FittedGrid,
    /// The coefficients of [`SamplerKind::Bespoke`], if fitted.
    pub bespoke: Option<Bespoke>,
}

/// The score at chosen points, which fitting the bespoke solver needs besides sampling.
pub struct Pointwise<'a> {
    /// Draws from the prior: `n` points of a seed, the starting points the samplers draw.
    pub prior: &'a dyn Fn(u64, usize) -> Result<Samples>,
    /// A map of each of some points under the score.
    pub at: &'a dyn Fn(&Samples, PointMap) -> Result<Samples>,
}

/// Score evaluations a step of `sampler` takes, and those beyond its steps; `None` for the
/// samplers without a deterministic grid.
pub fn evaluations(sampler: SamplerKind) -> Option<(u32, u32)> {
    Some(match sampler {
        SamplerKind::OdeEuler
        | SamplerKind::Ddim
        | SamplerKind::Dpm2
        | SamplerKind::Unipc
        | SamplerKind::Bespoke => (1, 0),
        SamplerKind::Dpm3 => (1, 1),
        SamplerKind::OdeHeun | SamplerKind::EdmHeun => (2, 0),
        SamplerKind::OdeRk4 => (4, 0),
        _ => return None,
    })
}

/// RMS distance between two sample sets of one layout.
fn rms(a: &Samples, b: &Samples) -> f64 {
    let squares: f64 = a
        .values
        .iter()
        .zip(&b.values)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    (squares / a.len().max(1) as f64).sqrt()
}

/// Fits the grid of `sampler` with as many steps as `nfe` evaluations allow, on `particles`
/// draws of seed `seed`, and measures it against the fixed grids on `particles` draws of seed
/// `seed + 1`. `draw` samples the score for the options it is given (its `t_end` set).
pub fn fit(
    draw: &Draw<'_>,
    sampler: SamplerKind,
    nfe: u32,
    particles: usize,
    seed: u64,
    t_end: f32,
    times_of: &dyn Fn(&FittedGrid) -> Vec<f32>,
) -> Result<FittedSchedule> {
    let (per_step, extra) = evaluations(sampler).ok_or_else(|| {
        anyhow::anyhow!(
            "{} has no deterministic grid to fit (give ode-euler, ode-heun, ode-rk4, ddim, \
             dpm2, dpm3, unipc, edm-heun or bespoke)",
            sampler.name()
        )
    })?;
    let steps = nfe.saturating_sub(extra) / per_step;
    ensure!(
        (2..=MAX_FITTED_STEPS as u32).contains(&steps),
        "--nfe {nfe}: {} takes {per_step} evaluation(s) a step (+{extra}); a fitted grid has 2 \
         to {MAX_FITTED_STEPS} steps",
        sampler.name()
    );
    let options = |seed: u64| SampleOptions {
        ..SampleOptions::uniform(sampler, steps, particles, seed, t_end)
    };
    let converged = |seed: u64| {
        draw(&SampleOptions {
            adaptive: Dopri5::new(1e-7, 1e-7, 1_000_000)?,
            ..SampleOptions::uniform(SamplerKind::OdeRk45, 1, particles, seed, t_end)
        })
    };
    let error_with = |grid: &FittedGrid, seed: u64, reference: &Samples| -> Result<f64> {
        let samples = draw(&SampleOptions {
            fitted: Some(*grid),
            ..options(seed)
        })?;
        Ok(rms(&samples, reference))
    };

    let calibration = converged(seed)?;
    let mut interior: Vec<f32> = (1..steps).map(|i| i as f32 / steps as f32).collect();
    let mut grid = FittedGrid::new(&interior)?;
    let mut best = error_with(&grid, seed, &calibration)?;
    let mut delta = 0.4f32;
    while delta > 0.01 {
        let mut improved = false;
        for i in 0..interior.len() {
            let low = if i == 0 { 0.0 } else { interior[i - 1] };
            let high = interior.get(i + 1).copied().unwrap_or(1.0);
            for target in [low, high] {
                let mut trial = interior.clone();
                trial[i] = interior[i] + delta * (target - interior[i]);
                let Ok(candidate) = FittedGrid::new(&trial) else {
                    continue;
                };
                // A grid on which the sampler leaves the finite numbers is no candidate.
                let Ok(error) = error_with(&candidate, seed, &calibration) else {
                    continue;
                };
                if error < best {
                    (best, interior, grid, improved) = (error, trial, candidate, true);
                }
            }
        }
        if !improved {
            delta *= 0.5;
        }
    }

    let held_out = converged(seed.wrapping_add(1))?;
    let rms_error = error_with(&grid, seed.wrapping_add(1), &held_out)?;
    let mut best_fixed = (f64::INFINITY, ScheduleKind::Uniform);
    for schedule in [
        ScheduleKind::Uniform,
        ScheduleKind::Karras,
        ScheduleKind::Logsnr,
    ] {
        let samples = draw(&SampleOptions {
            schedule,
            ..options(seed.wrapping_add(1))
        });
        if let Ok(samples) = samples {
            let error = rms(&samples, &held_out);
            if error < best_fixed.0 {
                best_fixed = (error, schedule);
            }
        }
    }
    Ok(FittedSchedule {
        sampler: sampler.name(),
        steps,
        nfe: steps * per_step + extra,
        times: times_of(&grid),
        interior,
        rms_error,
        best_fixed_rms_error: best_fixed.0,
        best_fixed_schedule: best_fixed.1.name(),
        coefficients: None,
        unipc_rms_error: None,
    })
}

/// Solves the small symmetric system `a·x = b` (normal equations) by Gaussian elimination
/// with partial pivoting, after a ridge of 10⁻¹⁰ of the mean diagonal that keeps it regular.
fn solve_normal(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    let ridge = 1e-10 * (0..n).map(|i| a[i][i]).sum::<f64>() / n.max(1) as f64;
    for (i, row) in a.iter_mut().enumerate() {
        row[i] += ridge;
    }
    for c in 0..n {
        let pivot = (c..n)
            .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
            .unwrap_or(c);
        a.swap(c, pivot);
        b.swap(c, pivot);
        let (pivot_row, pivot_b) = (a[c].clone(), b[c]);
        if pivot_row[c] == 0.0 {
            continue;
        }
        for (r, (row, rhs)) in a.iter_mut().zip(b.iter_mut()).enumerate() {
            if r != c {
                let f = row[c] / pivot_row[c];
                for (value, p) in row.iter_mut().zip(&pivot_row) {
                    *value -= f * p;
                }
                *rhs -= f * pivot_b;
            }
        }
    }
    (0..n)
        .map(|i| if a[i][i] != 0.0 { b[i] / a[i][i] } else { 0.0 })
        .collect()
}

/// The bespoke solver's coefficients on the grid of `times` (from T to its end), fitted
/// on `particles` draws of `seed`: step by step, the row that brings the solver's own states
/// closest (least squares over every particle and coordinate) to the converged solution at the
/// step's end, from where the fitted earlier steps left them. The first step combines the
/// state and its prediction only, the second leaves out the start (its state is already a
/// combination of the start and the first prediction).
pub fn fit_coefficients(
    pointwise: &Pointwise<'_>,
    times: &[f32],
    particles: usize,
    seed: u64,
) -> Result<Bespoke> {
    let steps = times.len().saturating_sub(1);
    let start = (pointwise.prior)(seed, particles)?;
    let mut x = start.clone();
    // The converged solution, carried from each time of the grid to the next.
    let mut target = start.clone();
    let mut previous: Option<Samples> = None;
    let mut rows: Vec<StepCoefficients> = Vec::with_capacity(steps);
    for i in 0..steps {
        let prediction = (pointwise.at)(&x, PointMap::Denoise { t: times[i] })?;
        target = (pointwise.at)(
            &target,
            PointMap::Flow {
                t0: times[i],
                t1: times[i + 1],
                solver: Dopri5::new(1e-7, 1e-7, 1_000_000)?,
            },
        )?;
        // Regressors in the row's order [x, x̂₀, previous x̂₀, start], those the step uses.
        let terms: Vec<(usize, &Samples)> = [
            Some((0, &x)),
            Some((1, &prediction)),
            previous.as_ref().map(|p| (2, p)),
            (i >= 2).then_some((3, &start)),
        ]
        .into_iter()
        .flatten()
        .collect();
        let n = terms.len();
        let (mut gram, mut moment) = (vec![vec![0.0f64; n]; n], vec![0.0f64; n]);
        for k in 0..x.values.len() {
            let values: Vec<f64> = terms.iter().map(|(_, s)| s.values[k] as f64).collect();
            let y = target.values[k] as f64;
            for a in 0..n {
                moment[a] += values[a] * y;
                for b in 0..n {
                    gram[a][b] += values[a] * values[b];
                }
            }
        }
        let solution = solve_normal(gram, moment);
        let mut row = [0.0f32; 4];
        for ((slot, _), value) in terms.iter().zip(&solution) {
            row[*slot] = *value as f32;
        }
        rows.push(row);
        // The next state as the solver makes it, from the rounded row.
        let zeros = vec![0.0f32; x.values.len()];
        let before = previous.as_ref().map_or(&zeros[..], |p| &p.values[..]);
        let next: Vec<f32> = (0..x.values.len())
            .map(|k| {
                Bespoke::combine(
                    &row,
                    &[x.values[k]],
                    &[prediction.values[k]],
                    &[before[k]],
                    &[start.values[k]],
                )[0]
            })
            .collect();
        x = Samples {
            dim: x.dim,
            values: next,
        };
        previous = Some(prediction);
    }
    Bespoke::new(&rows).map_err(|e| anyhow::anyhow!("the fitted coefficients: {e}"))
}

/// Fits the bespoke solver with as many steps as `nfe` evaluations: UniPC's fitted grid
/// ([`fit`]), then the coefficients on it ([`fit_coefficients`]), on `particles` draws of
/// `seed`; measured on `particles` draws of `seed + 1` against UniPC on the same grid and
/// against the bespoke solver fitted on each fixed grid.
#[allow(clippy::too_many_arguments)]
pub fn fit_bespoke(
    draw: &Draw<'_>,
    pointwise: &Pointwise<'_>,
    sde: ModelSde,
    nfe: u32,
    particles: usize,
    seed: u64,
    t_end: f32,
) -> Result<FittedSchedule> {
    ensure!(
        (nfe as usize) <= MAX_BESPOKE_STEPS,
        "--nfe {nfe}: the bespoke solver takes one evaluation a step, and at most \
         {MAX_BESPOKE_STEPS} steps"
    );
    let unipc = fit(
        draw,
        SamplerKind::Unipc,
        nfe,
        particles,
        seed,
        t_end,
        &|grid| grid_times(sde, t_end, Schedule::Fitted(*grid), grid.steps()),
    )?;
    let steps = unipc.steps;
    let grid = FittedGrid::new(&unipc.interior)?;
    let held_out = draw(&SampleOptions {
        adaptive: Dopri5::new(1e-7, 1e-7, 1_000_000)?,
        ..SampleOptions::uniform(SamplerKind::OdeRk45, 1, particles, seed + 1, t_end)
    })?;
    let error_of = |bespoke: Bespoke, fitted: Option<FittedGrid>, schedule| -> Result<f64> {
        let samples = draw(&SampleOptions {
            fitted,
            schedule,
            bespoke: Some(bespoke),
            ..SampleOptions::uniform(SamplerKind::Bespoke, steps, particles, seed + 1, t_end)
        })?;
        Ok(rms(&samples, &held_out))
    };
    let bespoke = fit_coefficients(pointwise, &unipc.times, particles, seed)?;
    let rms_error = error_of(bespoke, Some(grid), ScheduleKind::Uniform)?;
    let mut best_fixed = (f64::INFINITY, ScheduleKind::Uniform);
    for schedule in [
        ScheduleKind::Uniform,
        ScheduleKind::Karras,
        ScheduleKind::Logsnr,
    ] {
        let times = grid_times(sde, t_end, schedule.schedule(), steps);
        // A grid the fit or the solver cannot follow in finite numbers is no candidate.
        let error = fit_coefficients(pointwise, &times, particles, seed)
            .and_then(|fixed| error_of(fixed, None, schedule));
        if let Ok(error) = error {
            if error < best_fixed.0 {
                best_fixed = (error, schedule);
            }
        }
    }
    Ok(FittedSchedule {
        sampler: SamplerKind::Bespoke.name(),
        rms_error,
        best_fixed_rms_error: best_fixed.0,
        best_fixed_schedule: best_fixed.1.name(),
        coefficients: Some(
            bespoke
                .coefficients()
                .iter()
                .map(|row| row.map(f64::from))
                .collect(),
        ),
        unipc_rms_error: Some(unipc.rms_error),
        ..unipc
    })
}

/// The grid of a `tinyscore schedule` file (its interior fractions), with the bespoke
/// solver's coefficients if it has them.
pub fn read_grid(path: &std::path::Path) -> Result<GridFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let interior: Vec<f32> = value
        .get("interior")
        .and_then(|v| v.as_array())
        .and_then(|a| a.iter().map(|v| v.as_f64().map(|x| x as f32)).collect())
        .with_context(|| {
            format!(
                "{}: no `interior` list of numbers (write it with `tinyscore schedule`)",
                path.display()
            )
        })?;
    let grid =
        FittedGrid::new(&interior).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let bespoke = match value.get("coefficients") {
        None => None,
        Some(rows) => {
            let rows: Vec<[f64; 4]> = serde_json::from_value(rows.clone()).with_context(|| {
                format!(
                    "{}: `coefficients` is not a list of [a, b, c, e] rows",
                    path.display()
                )
            })?;
            ensure!(
                rows.len() == grid.steps() as usize,
                "{}: {} rows of coefficients for a grid of {} steps",
                path.display(),
                rows.len(),
                grid.steps()
            );
            let rows: Vec<StepCoefficients> = rows.iter().map(|r| r.map(|c| c as f32)).collect();
            Some(Bespoke::new(&rows).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?)
        }
    };
    Ok(GridFile { grid, bespoke })
}
