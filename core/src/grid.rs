//! Time grids `t₀ = t_start > t₁ > … > t_K = t_end` for the reverse-time samplers.
//!
//! - [`Schedule::Uniform`]: equal steps in `t`, `t_i = t_start + i(t_end − t_start)/K`
//!   (score_sde's grid);
//! - [`Schedule::Karras`]: the EDM grid of Karras et al. (2022), equal steps in `σ̃^{1/ρ}` where
//!   `σ̃ = σ/α = e^{−λ}` is the noise-to-signal ratio; small steps near the data;
//! - [`Schedule::LogSnr`]: equal steps in the log-SNR `λ` (DPM-Solver's grid);
//! - [`Schedule::Fitted`]: any increasing log-SNR fractions, such as a grid fitted to a model
//!   and sampler (`tinyscore schedule`, in the spirit of "Align Your Steps").
//!
//! The last three are mapped back to times with [`LinearSde::time_at_log_snr`]; the grid points
//! are computed when asked, so a grid costs no memory.

use crate::error::ParamError;
use crate::math;
use crate::sde::LinearSde;

/// How the grid points are spaced.
// The fitted grid is held inline (no allocator to box it in); a build that never uses it
// measures the same stack with 31 or 63 inline points (the Cortex-M4 Euler–Maruyama firmware).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Schedule {
    /// Equal steps in `t`.
    Uniform,
    /// Equal steps in `σ̃^{1/ρ}` (EDM; `rho = 7` is the usual choice).
    Karras {
        /// The exponent ρ.
        rho: f32,
    },
    /// Equal steps in the log-SNR.
    LogSnr,
    /// The log-SNR at given fractions of the way from the first time to the last.
    Fitted(FittedGrid),
}

/// The most steps of a [`FittedGrid`] (fitted grids are for few-step sampling).
pub const MAX_FITTED_STEPS: usize = 64;

/// A grid of `K` steps as the `K − 1` interior points' fractions `0 < u₁ < … < u_{K−1} < 1` of
/// the way in log-SNR from the first time to the last: `λ_i = λ₀ + u_i(λ_K − λ₀)`. Held inline
/// (no allocation), so a grid read from a file or baked into firmware is a `Copy` value.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FittedGrid {
    interior: [f32; MAX_FITTED_STEPS - 1],
    steps: u32,
}

impl FittedGrid {
    /// The grid whose interior fractions are `interior` (strictly increasing, in (0, 1); at
    /// most [`MAX_FITTED_STEPS`] − 1 of them).
    pub fn new(interior: &[f32]) -> Result<Self, ParamError> {
        ParamError::require(
            interior.len() < MAX_FITTED_STEPS,
            "interior",
            "at most 63 points (64 steps)",
        )?;
        let mut previous = 0.0f32;
        for &u in interior {
            ParamError::require(
                u.is_finite() && u > previous && u < 1.0,
                "interior",
                "strictly increasing fractions in (0, 1)",
            )?;
            previous = u;
        }
        let mut fractions = [0.0f32; MAX_FITTED_STEPS - 1];
        fractions[..interior.len()].copy_from_slice(interior);
        Ok(FittedGrid {
            interior: fractions,
            steps: interior.len() as u32 + 1,
        })
    }

    /// The interior fractions.
    pub fn interior(&self) -> &[f32] {
        &self.interior[..(self.steps as usize - 1).min(MAX_FITTED_STEPS - 1)]
    }

    /// The number of steps.
    pub fn steps(&self) -> u32 {
        self.steps
    }
}

/// `steps + 1` times from `t_start` down to `t_end`, spaced by a [`Schedule`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TimeGrid {
    schedule: Schedule,
    t_start: f32,
    t_end: f32,
    steps: u32,
}

impl TimeGrid {
    /// A grid of `steps ≥ 1` steps from `t_start` down to `t_end`, with `0 < t_end < t_start`.
    pub fn new(
        schedule: Schedule,
        t_start: f32,
        t_end: f32,
        steps: u32,
    ) -> Result<Self, ParamError> {
        ParamError::positive(t_end, "t_end")?;
        ParamError::require(
            t_start.is_finite() && t_start > t_end,
            "t_start",
            "finite and > t_end",
        )?;
        ParamError::require(steps >= 1, "steps", ">= 1")?;
        match schedule {
            Schedule::Karras { rho } => ParamError::positive(rho, "rho")?,
            Schedule::Fitted(grid) => ParamError::require(
                grid.steps() == steps,
                "steps",
                "the fitted grid's number of steps",
            )?,
            Schedule::Uniform | Schedule::LogSnr => {}
        }
        Ok(TimeGrid {
            schedule,
            t_start,
            t_end,
            steps,
        })
    }

    /// A uniform grid.
    pub fn uniform(t_start: f32, t_end: f32, steps: u32) -> Result<Self, ParamError> {
        Self::new(Schedule::Uniform, t_start, t_end, steps)
    }

    /// The number of steps `K`.
    pub fn steps(&self) -> u32 {
        self.steps
    }

    /// The first time, `t₀`.
    pub fn t_start(&self) -> f32 {
        self.t_start
    }

    /// The last time, `t_K`.
    pub fn t_end(&self) -> f32 {
        self.t_end
    }

    /// The spacing.
    pub fn schedule(&self) -> Schedule {
        self.schedule
    }

    /// The time `t_i` for `i ∈ 0..=K` (clamped to `K`); `t₀` and `t_K` are exact.
    pub fn time<D: LinearSde>(&self, sde: &D, i: u32) -> f32 {
        if i == 0 {
            return self.t_start;
        }
        if i >= self.steps {
            return self.t_end;
        }
        let fraction = i as f32 / self.steps as f32;
        match self.schedule {
            Schedule::Uniform => {
                self.t_start + i as f32 * (self.t_end - self.t_start) / self.steps as f32
            }
            Schedule::LogSnr => {
                let (first, last) = (sde.log_snr(self.t_start), sde.log_snr(self.t_end));
                sde.time_at_log_snr(first + fraction * (last - first))
            }
            Schedule::Fitted(grid) => {
                let (first, last) = (sde.log_snr(self.t_start), sde.log_snr(self.t_end));
                let u = grid.interior().get(i as usize - 1).copied().unwrap_or(1.0);
                sde.time_at_log_snr(first + u * (last - first))
            }
            Schedule::Karras { rho } => {
                // σ̃^{1/ρ} = e^{−λ/ρ}
                let root = |t: f32| math::exp(-sde.log_snr(t) / rho);
                let (first, last) = (root(self.t_start), root(self.t_end));
                let sigma_root = first + fraction * (last - first);
                sde.time_at_log_snr(-rho * math::ln(sigma_root))
            }
        }
    }
}
