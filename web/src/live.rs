//! Particles advanced one step at a time, so the page can draw every step: a grid sampler
//! (the core's [`Method`], over its [`TimeGrid`]) or Langevin MCMC on the data's score.
//!
//! A step runs the core's solver on chunks of [`BATCH`] particles with each particle's own
//! noise stream and solver state, as the core's `Sampler` does, so the particles at the end
//! are the bits `tinyscore sample` (or `tinyscore langevin`) writes for the same settings.

use crate::target::Target;
use tinyscore::{
    particle_noise, DefaultRng, GaussianStream, LinearSde, Method, ModelSde, Schedule, Score,
    Solver, Span, TimeGrid, Ula, WithSolver,
};

/// Particles a solver step takes together (the host's batch).
pub const BATCH: usize = 64;

/// The most particles a simulation holds.
pub const MAX_PARTICLES: u32 = 200_000;

/// The pairing of drift and noise in a Langevin step `x ← x + a·ε·s + b·η`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pairing {
    /// `ε·s` with `√(2ε)·η`: Euler–Maruyama on `dx = s dt + √2 dW`, which targets p.
    Full,
    /// `(ε/2)·s` with `√ε·η`: the same dynamics at time step ε/2, which targets p.
    Half,
    /// `(ε/2)·s` with `√(2ε)·η`: the mismatch some texts print; it samples `p^{1/2}`
    /// (for a Gaussian, twice the variance).
    Mismatched,
}

impl Pairing {
    /// The pairing of its name: `full`, `half` or `mismatched`.
    pub fn from_name(name: &str) -> Result<Pairing, String> {
        match name {
            "full" => Ok(Pairing::Full),
            "half" => Ok(Pairing::Half),
            "mismatched" => Ok(Pairing::Mismatched),
            other => Err(format!(
                "pairing `{other}`: expected full, half or mismatched"
            )),
        }
    }
}

/// What a simulation runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// A grid sampler's name (`em`, `pc`, `ode-heun`, `dpm2`, `ald`, …, as `tinyscore sample
    /// --sampler` takes them) or `ula`.
    pub sampler: String,
    /// `vp` or `ve` (an exact mixture's process; a model has its own).
    pub sde: String,
    /// `uniform`, `karras` or `logsnr`.
    pub schedule: String,
    /// Steps of the grid, or of each Langevin chain.
    pub steps: u32,
    /// Particles.
    pub n: u32,
    /// Seed: particle i draws noise stream i.
    pub seed: u64,
    /// Langevin's step size ε.
    pub step_size: f32,
    /// Langevin's pairing of drift and noise.
    pub pairing: Pairing,
}

/// One step of every particle, whatever the method.
trait Stepper {
    /// Advances the particles by the step `index` (0-based).
    fn step(
        &mut self,
        target: &Target,
        index: u32,
        xs: &mut [[f32; 2]],
        noises: &mut [GaussianStream<DefaultRng>],
    ) -> Result<(), String>;
    /// The time the particles are at after `index` steps.
    fn time(&self, index: u32) -> f32;
}

/// A grid sampler: the core's solver over the grid, with each particle's state.
struct GridSteps<P: Solver<D, 2>, D: LinearSde> {
    solver: P,
    sde: D,
    grid: TimeGrid,
    states: Vec<P::State>,
    /// The process the score is diffused by (`sde` as the target sees it).
    score_sde: ModelSde,
}

impl<P: Solver<D, 2>, D: LinearSde> Stepper for GridSteps<P, D> {
    fn step(
        &mut self,
        target: &Target,
        index: u32,
        xs: &mut [[f32; 2]],
        noises: &mut [GaussianStream<DefaultRng>],
    ) -> Result<(), String> {
        let steps = self.grid.steps();
        let span = Span {
            t: self.grid.time(&self.sde, index),
            t_next: self.grid.time(&self.sde, index + 1),
            remaining: steps - 1 - index,
        };
        let (solver, sde) = (&self.solver, &self.sde);
        target.with_score(self.score_sde, |score| {
            let chunks = xs
                .chunks_mut(BATCH)
                .zip(noises.chunks_mut(BATCH))
                .zip(self.states.chunks_mut(BATCH));
            for (chunk, ((xs, noises), states)) in chunks.enumerate() {
                solver
                    .step::<&dyn Score<2>, DefaultRng, BATCH>(sde, &score, span, xs, states, noises)
                    .map_err(|e| match e {
                        tinyscore::StepError::NonFiniteScore { particle } => {
                            diverged(chunk * BATCH + particle, index, "score")
                        }
                        other => format!("step {index}: {other}"),
                    })?;
                if let Some(k) = xs.iter().position(|x| !x.iter().all(|v| v.is_finite())) {
                    return Err(diverged(chunk * BATCH + k, index, "state"));
                }
            }
            Ok(())
        })
    }

    fn time(&self, index: u32) -> f32 {
        self.grid.time(&self.sde, index)
    }
}

/// Langevin MCMC on the data's score with step ε and a pairing of drift and noise.
struct LangevinSteps {
    step_size: f32,
    pairing: Pairing,
}

impl Stepper for LangevinSteps {
    fn step(
        &mut self,
        target: &Target,
        index: u32,
        xs: &mut [[f32; 2]],
        noises: &mut [GaussianStream<DefaultRng>],
    ) -> Result<(), String> {
        let eps = self.step_size;
        target.with_data_score(|score| match self.pairing {
            Pairing::Full | Pairing::Half => {
                let h = if self.pairing == Pairing::Full {
                    eps
                } else {
                    0.5 * eps
                };
                Ula::new(h)
                    .map_err(|e| e.to_string())?
                    .step_batch::<_, _, 2, BATCH>(&score, xs, noises, index)
                    .map_err(|e| {
                        let what = match e.error {
                            tinyscore::SampleError::NonFiniteScore { .. } => "score",
                            _ => "state",
                        };
                        diverged(e.particle, index, what)
                    })
            }
            // Not the core's ULA: the wrong pairing, shown for what it does.
            Pairing::Mismatched => {
                let scale = tinyscore::math::sqrt(2.0 * eps);
                let chunks = xs.chunks_mut(BATCH).zip(noises.chunks_mut(BATCH));
                for (chunk, (xs, noises)) in chunks.enumerate() {
                    let mut scores = [[0.0f32; 2]; BATCH];
                    let scores = &mut scores[..xs.len()];
                    score.score_batch(xs, 0.0, scores);
                    for (k, ((x, s), noise)) in xs.iter_mut().zip(&*scores).zip(noises).enumerate()
                    {
                        let z: [f32; 2] = noise.normal();
                        let next: [f32; 2] =
                            core::array::from_fn(|d| x[d] + 0.5 * eps * s[d] + scale * z[d]);
                        if !next.iter().all(|v| v.is_finite()) {
                            return Err(diverged(chunk * BATCH + k, index, "state"));
                        }
                        *x = next;
                    }
                }
                Ok(())
            }
        })
    }

    fn time(&self, index: u32) -> f32 {
        index as f32 * self.step_size
    }
}

fn diverged(particle: usize, step: u32, what: &str) -> String {
    format!(
        "particle {particle}: the {what} left the finite numbers at step {step}; \
         try a smaller step size or more steps"
    )
}

/// Builds the stepper of a [`Method`] for the [`WithSolver`] dispatch.
struct BuildGrid {
    grid: TimeGrid,
    n: usize,
    score_sde: ModelSde,
}

impl WithSolver<2> for BuildGrid {
    type Output = Box<dyn Stepper>;
    fn run<D, P>(self, solver: P, sde: D) -> Box<dyn Stepper>
    where
        D: LinearSde + Copy + Send + Sync + 'static,
        P: Solver<D, 2> + Copy + Send + Sync + 'static,
        P::State: Send + Sync + 'static,
    {
        Box::new(GridSteps {
            solver,
            sde,
            grid: self.grid,
            states: vec![P::State::default(); self.n],
            score_sde: self.score_sde,
        })
    }
}

/// Particles under a sampler, one step at a time.
pub struct Live {
    target: Target,
    stepper: Box<dyn Stepper>,
    xs: Vec<[f32; 2]>,
    noises: Vec<GaussianStream<DefaultRng>>,
    steps: u32,
    done: u32,
}

impl Live {
    /// `settings.n` particles of `target` at their start: drawn from the prior (a grid
    /// sampler) or from N(0, I) (Langevin), particle i with stream i of the seed.
    pub fn new(target: Target, settings: &Settings) -> Result<Live, String> {
        if settings.n == 0 || settings.n > MAX_PARTICLES {
            return Err(format!(
                "n {}: from 1 to {MAX_PARTICLES} particles",
                settings.n
            ));
        }
        if settings.steps == 0 {
            return Err("steps: at least 1".into());
        }
        let n = settings.n as usize;
        let mut noises: Vec<_> = (0..n as u64)
            .map(|i| particle_noise(settings.seed, i).with_coordinates(2))
            .collect();
        let sde = target.sde(crate::target::exact_sde(&settings.sde)?);
        let (stepper, xs): (Box<dyn Stepper>, Vec<[f32; 2]>) = if settings.sampler == "ula" {
            Ula::new(settings.step_size).map_err(|e| format!("step_size: {e}"))?;
            let xs = noises.iter_mut().map(|noise| noise.normal()).collect();
            let langevin = LangevinSteps {
                step_size: settings.step_size,
                pairing: settings.pairing,
            };
            (Box::new(langevin), xs)
        } else {
            let method = Method::from_name(&settings.sampler).ok_or_else(|| {
                format!(
                    "sampler `{}`: expected ula or one of {}",
                    settings.sampler,
                    Method::ALL.map(Method::name).join(", ")
                )
            })?;
            let schedule = match settings.schedule.as_str() {
                "uniform" => Schedule::Uniform,
                "karras" => Schedule::Karras { rho: 7.0 },
                "logsnr" => Schedule::LogSnr,
                other => {
                    return Err(format!(
                        "schedule `{other}`: expected uniform, karras or logsnr"
                    ))
                }
            };
            let t_end = target.t_end();
            let grid = TimeGrid::new(schedule, sde.t_max(), t_end, settings.steps)
                .map_err(|e| e.to_string())?;
            let stepper = method
                .with_solver(
                    sde,
                    &grid,
                    &tinyscore::Settings::default(),
                    BuildGrid {
                        grid,
                        n,
                        score_sde: sde,
                    },
                )
                .map_err(|e| format!("sampler {}: {e}", method.name()))?;
            let xs = noises
                .iter_mut()
                .map(|noise| sde.sample_prior(noise))
                .collect();
            (stepper, xs)
        };
        Ok(Live {
            target,
            stepper,
            xs,
            noises,
            steps: settings.steps,
            done: 0,
        })
    }

    /// Takes up to `k` more steps (none beyond the last); the number taken. A particle that
    /// leaves the finite numbers stops the run with a message; the particles stay as they
    /// were before that step's chunk.
    pub fn advance(&mut self, k: u32) -> Result<u32, String> {
        let k = k.min(self.steps - self.done);
        for _ in 0..k {
            self.stepper
                .step(&self.target, self.done, &mut self.xs, &mut self.noises)?;
            self.done += 1;
        }
        Ok(k)
    }

    /// Steps taken.
    pub fn done(&self) -> u32 {
        self.done
    }

    /// Steps in all.
    pub fn steps(&self) -> u32 {
        self.steps
    }

    /// The time of the particles (a grid's t, or Langevin's elapsed kε).
    pub fn time(&self) -> f32 {
        self.stepper.time(self.done)
    }

    /// The particles in the sampler's coordinates (a model's normalised ones), x then y.
    pub fn raw(&self) -> &[[f32; 2]] {
        &self.xs
    }

    /// The particles in data units, x then y.
    pub fn positions(&self) -> Vec<f32> {
        let [(mx, sx), (my, sy)] = self.target.normalization();
        self.xs
            .iter()
            .flat_map(|x| [mx + sx * x[0], my + sy * x[1]])
            .collect()
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }
}
