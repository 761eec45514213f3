//! Time grids fitted to a score and a sampler (in the spirit of Sabour et al., "Align Your
//! Steps", 2024): the `K − 1` interior points of a `K`-step grid, as fractions of the way in
//! log-SNR, chosen to minimise the RMS distance between the sampler's samples and the
//! converged probability-flow ODE solution from the same starting points.
//!
//! The search starts from the equal log-SNR grid and moves one point at a time within its
//! neighbours (coordinate search with a shrinking step), keeping a move only when the error on
//! the calibration draws falls. The gain is reported on other draws than those it was fitted
//! on.

use crate::points::Samples;
use crate::sampling::{SampleOptions, SamplerKind, ScheduleKind};
use anyhow::{ensure, Result};
use tinyscore::{Dopri5, FittedGrid, MAX_FITTED_STEPS};

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
}

/// Score evaluations a step of `sampler` takes, and those beyond its steps; `None` for the
/// samplers without a deterministic grid.
pub fn evaluations(sampler: SamplerKind) -> Option<(u32, u32)> {
    Some(match sampler {
        SamplerKind::OdeEuler | SamplerKind::Ddim | SamplerKind::Dpm2 | SamplerKind::Unipc => {
            (1, 0)
        }
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
             dpm2, dpm3, unipc or edm-heun)",
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
    })
}

/// The grid of a `tinyscore schedule` file (its interior fractions).
pub fn read_grid(path: &std::path::Path) -> Result<FittedGrid> {
    use anyhow::Context;
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
    FittedGrid::new(&interior).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
