//! A sampler chosen by name at run time ([`Method`]), handed to generic code as its concrete
//! solver type ([`WithSolver`]): the host's command line, the web page and any other front
//! end build the same solver, with the same settings, for a name.

use super::{
    Ancestral, AnnealedLangevin, Bespoke, Ddim, DpmSolverPp2M, DpmSolverPp3M, EdmHeun,
    EulerMaruyama, LangevinCorrector, OdeEuler, OdeHeun, OdeRk4, PredictorCorrector,
    ReverseDiffusion, Solver, UniPc,
};
use crate::error::ParamError;
use crate::grid::TimeGrid;
use crate::model::ModelSde;
use crate::sde::LinearSde;

/// The samplers over a time grid, by the names the command line gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Method {
    /// `em`: Euler–Maruyama on the reverse SDE.
    Em,
    /// `rd`: the reverse-diffusion predictor.
    Rd,
    /// `ancestral`: ancestral sampling (VP: DDPM, VE: SMLD).
    Ancestral,
    /// `pc`: reverse-diffusion predictor + one Langevin corrector step at snr 0.16.
    Pc,
    /// `ode-euler`: probability-flow ODE, Euler.
    OdeEuler,
    /// `ode-heun`: probability-flow ODE, Heun.
    OdeHeun,
    /// `ode-rk4`: probability-flow ODE, RK4.
    OdeRk4,
    /// `ddim`: DDIM (deterministic).
    Ddim,
    /// `dpm2`: DPM-Solver++(2M).
    Dpm2,
    /// `dpm3`: DPM-Solver++(3M).
    Dpm3,
    /// `unipc`: UniPC (bh2) with its corrector.
    Unipc,
    /// `edm-heun`: Heun in the EDM variables.
    EdmHeun,
    /// `bespoke`: the linear multistep solver fitted to a score and grid ([`Bespoke`]), with
    /// its coefficients in [`Settings::bespoke`].
    Bespoke,
    /// `ald`: annealed Langevin dynamics, two steps per level, ε = σ(t_end)².
    Ald,
}

/// What a [`Method`]'s solver takes besides its name and grid.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Settings {
    /// The multistep methods (`dpm2`, `dpm3`, `unipc`) lower their order at the last steps.
    pub lower_order_final: bool,
    /// The coefficients of [`Method::Bespoke`], fitted to the grid (`tinyscore schedule`).
    pub bespoke: Option<Bespoke>,
}

/// Generic code that runs a [`Method`]'s solver: [`Method::with_solver`] calls
/// [`run`](Self::run) with the concrete solver and SDE types.
pub trait WithSolver<const N: usize> {
    /// What the run gives.
    type Output;
    /// Runs `solver` on `sde`.
    fn run<D, P>(self, solver: P, sde: D) -> Self::Output
    where
        D: LinearSde + Copy + Send + Sync + 'static,
        P: Solver<D, N> + Copy + Send + Sync + 'static,
        P::State: Send + Sync + 'static;
}

impl Method {
    /// Every method, in the order of the command line's list.
    pub const ALL: [Method; 14] = [
        Method::Em,
        Method::Rd,
        Method::Ancestral,
        Method::Pc,
        Method::OdeEuler,
        Method::OdeHeun,
        Method::OdeRk4,
        Method::Ddim,
        Method::Dpm2,
        Method::Dpm3,
        Method::Unipc,
        Method::EdmHeun,
        Method::Bespoke,
        Method::Ald,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Method::Em => "em",
            Method::Rd => "rd",
            Method::Ancestral => "ancestral",
            Method::Pc => "pc",
            Method::OdeEuler => "ode-euler",
            Method::OdeHeun => "ode-heun",
            Method::OdeRk4 => "ode-rk4",
            Method::Ddim => "ddim",
            Method::Dpm2 => "dpm2",
            Method::Dpm3 => "dpm3",
            Method::Unipc => "unipc",
            Method::EdmHeun => "edm-heun",
            Method::Bespoke => "bespoke",
            Method::Ald => "ald",
        }
    }

    /// The method named `name` ([`name`](Self::name)).
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether it is a multistep method, whose last steps can lower the order.
    pub fn is_multistep(self) -> bool {
        matches!(self, Method::Dpm2 | Method::Dpm3 | Method::Unipc)
    }

    /// Whether its steps draw noise (the others integrate the probability-flow ODE).
    pub fn is_stochastic(self) -> bool {
        matches!(
            self,
            Method::Em | Method::Rd | Method::Ancestral | Method::Pc | Method::Ald
        )
    }

    /// Calls `with.run` with this method's solver on `sde`, for `grid` (annealed Langevin
    /// sets its step size from `σ` at its end) and `settings`. Ancestral sampling is defined
    /// for the VP and VE processes only; the bespoke solver needs coefficients for as many
    /// steps as the grid has.
    ///
    /// Always inlined, so that a firmware whose method is a constant compiles that one
    /// solver only.
    #[inline(always)]
    pub fn with_solver<W: WithSolver<N>, const N: usize>(
        self,
        sde: ModelSde,
        grid: &TimeGrid,
        settings: &Settings,
        with: W,
    ) -> Result<W::Output, ParamError> {
        let Settings {
            lower_order_final,
            bespoke,
        } = *settings;
        Ok(match self {
            Method::Em => with.run(EulerMaruyama, sde),
            Method::Rd => with.run(ReverseDiffusion, sde),
            Method::Ancestral => match sde {
                ModelSde::Vp(vp) => with.run(Ancestral, vp),
                ModelSde::Ve(ve) => with.run(Ancestral, ve),
                ModelSde::SubVp(_) => {
                    return Err(ParamError {
                        parameter: "sde",
                        requirement: "VP or VE for ancestral sampling",
                    })
                }
            },
            Method::Pc => with.run(
                PredictorCorrector {
                    predictor: ReverseDiffusion,
                    corrector: LangevinCorrector::default(),
                },
                sde,
            ),
            Method::OdeEuler => with.run(OdeEuler, sde),
            Method::OdeHeun => with.run(OdeHeun, sde),
            Method::OdeRk4 => with.run(OdeRk4, sde),
            Method::Ddim => with.run(Ddim, sde),
            Method::Dpm2 => with.run(DpmSolverPp2M { lower_order_final }, sde),
            Method::Dpm3 => with.run(DpmSolverPp3M { lower_order_final }, sde),
            Method::Unipc => with.run(UniPc { lower_order_final }, sde),
            Method::EdmHeun => with.run(EdmHeun, sde),
            Method::Bespoke => {
                let solver = bespoke.ok_or(ParamError {
                    parameter: "bespoke",
                    requirement: "coefficients fitted by `tinyscore schedule --sampler bespoke`",
                })?;
                ParamError::require(
                    solver.steps() == grid.steps(),
                    "bespoke coefficients",
                    "one row for every step of the grid",
                )?;
                with.run(solver, sde)
            }
            Method::Ald => {
                let sigma_last = sde.sigma(grid.t_end());
                with.run(
                    AnnealedLangevin::new(sigma_last * sigma_last, 2, sigma_last)?,
                    sde,
                )
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in Method::ALL {
            assert_eq!(Method::from_name(m.name()), Some(m));
        }
        assert_eq!(Method::from_name("ode-rk45"), None);
    }
}
