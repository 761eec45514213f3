//! Langevin MCMC for a time-independent target `p ∝ e^{−U}` given its score `s = −∇U`.
//!
//! - [`Ula`], the unadjusted Langevin algorithm: Euler–Maruyama on the overdamped Langevin
//!   equation `dx = s(x) dt + √2 dW`, i.e. `x ← x + εs(x) + √(2ε)·η`. (The variant with
//!   `ε/2·s` and `√(2ε)` noise, found in some tutorials, samples a law twice as hot: it is
//!   not this one.) Its stationary law has an O(ε) bias: for a Gaussian target of variance
//!   `v` the chain's variance is `v/(1 − ε/2v)`.
//! - [`Underdamped`], kinetic Langevin `dx = v dt`, `m dv = kT·s(x) dt − γv dt + √(2γkT) dW`
//!   (fluctuation–dissipation: the noise strength `2γkT` makes `e^{−U}·e^{−mv²/2kT}`
//!   stationary), integrated by the BAOAB splitting of Leimkuhler & Matthews (2013), whose
//!   O-step is the exact Ornstein–Uhlenbeck flow of the velocity: exact for a free particle.

use crate::error::{ParamError, ParticleError, SampleError, StepError};
use crate::noise::GaussianStream;
use crate::observe::Observer;
use crate::score::checked_scores;
use crate::score::Score;
use crate::{math, vector};
use rand_core::Rng;

/// One Langevin step `x + ε·s + √(2ε)·z`, shared by ULA, the corrector and annealed Langevin.
#[inline]
pub(crate) fn langevin_update<const N: usize>(
    x: &[f32; N],
    s: &[f32; N],
    eps: f32,
    z: &[f32; N],
) -> [f32; N] {
    let scale = math::sqrt(2.0 * eps);
    core::array::from_fn(|d| x[d] + eps * s[d] + scale * z[d])
}

/// The score at `x` (time-independent), or an error when it is not finite.
#[inline]
fn checked_score<S: Score<N>, const N: usize>(
    score: &S,
    x: &[f32; N],
) -> Result<[f32; N], StepError> {
    let mut buffer = [[0.0f32; N]; 1];
    checked_scores(score, core::slice::from_ref(x), 0.0, &mut buffer).map(|s| s[0])
}

/// Fails with the step index when `x` is not finite.
fn check_state<const N: usize>(x: &[f32; N], step: u32) -> Result<(), SampleError> {
    if vector::all_finite(x) {
        Ok(())
    } else {
        Err(SampleError::NonFiniteState { step })
    }
}

/// The unadjusted Langevin algorithm with step `ε`: `x ← x + εs(x) + √(2ε)·η`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ula {
    step_size: f32,
}

impl Ula {
    /// ULA with step size `step_size > 0`.
    pub fn new(step_size: f32) -> Result<Self, ParamError> {
        ParamError::positive(step_size, "step_size")?;
        Ok(Ula { step_size })
    }

    /// One step.
    #[inline]
    pub fn step<S: Score<N>, R: Rng, const N: usize>(
        &self,
        score: &S,
        x: &mut [f32; N],
        noise: &mut GaussianStream<R>,
    ) -> Result<(), StepError> {
        let s = checked_score(score, x)?;
        *x = langevin_update(x, &s, self.step_size, &noise.normal());
        Ok(())
    }

    /// One step of every chain `xs[i]` with its stream `noises[i]` (the slices have one
    /// length), `B` chains at a time in lockstep: the score is evaluated for the `B` at once
    /// ([`Score::score_batch`], which lets it vectorise), and each chain gets the bits of
    /// [`step`](Self::step). A chain whose score or next state is not finite stops the step
    /// with its index and `step` (the index the caller gives this step); that chain's chunk
    /// of `B` is left as it was.
    pub fn step_batch<S: Score<N>, R: Rng, const N: usize, const B: usize>(
        &self,
        score: &S,
        xs: &mut [[f32; N]],
        noises: &mut [GaussianStream<R>],
        step: u32,
    ) -> Result<(), ParticleError> {
        let chunk = B.max(1);
        for (c, (xs, noises)) in xs
            .chunks_mut(chunk)
            .zip(noises.chunks_mut(chunk))
            .enumerate()
        {
            let first = c * chunk;
            let len = xs.len().min(noises.len()).min(B);
            let mut scores = [[0.0f32; N]; B];
            let scores = checked_scores(score, &xs[..len], 0.0, &mut scores).map_err(|e| {
                let error = ParticleError::at(step, e);
                ParticleError {
                    particle: first + error.particle,
                    ..error
                }
            })?;
            let mut next = [[0.0f32; N]; B];
            let next = &mut next[..len];
            for (((n, x), s), noise) in next.iter_mut().zip(&*xs).zip(scores).zip(&mut *noises) {
                *n = langevin_update(x, s, self.step_size, &noise.normal());
            }
            if let Some(k) = vector::first_non_finite(next) {
                return Err(ParticleError {
                    particle: first + k,
                    error: SampleError::NonFiniteState { step },
                });
            }
            xs[..len].copy_from_slice(next);
        }
        Ok(())
    }

    /// `steps` steps; the observer sees the start (step 0, t = 0) and each step `i + 1` at
    /// `t = (i + 1)ε`.
    pub fn run<S: Score<N>, R: Rng, O: Observer<N>, const N: usize>(
        &self,
        score: &S,
        x: &mut [f32; N],
        steps: u32,
        noise: &mut GaussianStream<R>,
        observer: &mut O,
    ) -> Result<(), SampleError> {
        observer.observe(0, 0.0, x);
        for i in 0..steps {
            let mut next = *x;
            self.step(score, &mut next, noise)
                .map_err(|e| SampleError::at(i, e))?;
            check_state(&next, i)?;
            *x = next;
            observer.observe(i + 1, (i + 1) as f32 * self.step_size, x);
        }
        Ok(())
    }
}

/// Position, velocity and the force at the position, carried between BAOAB steps so that each
/// step costs one score evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KineticState<const N: usize> {
    /// Position.
    pub x: [f32; N],
    /// Velocity.
    pub v: [f32; N],
    force: [f32; N],
}

/// Underdamped (kinetic) Langevin dynamics with mass `m`, friction `γ`, temperature `kT` and
/// time step `dt`, by BAOAB. The force is `kT·s(x)`, so the position marginal is the target.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Underdamped {
    mass: f32,
    kt: f32,
    dt: f32,
    /// `e^{−γ dt/m}`, the velocity kept by the O-step.
    velocity_decay: f32,
    /// `√(kT/m·(1 − e^{−2γ dt/m}))`, the O-step's noise.
    velocity_noise: f32,
}

impl Underdamped {
    /// Kinetic Langevin with `mass`, `friction`, `kt` and `dt`, all > 0.
    pub fn new(mass: f32, friction: f32, kt: f32, dt: f32) -> Result<Self, ParamError> {
        ParamError::positive(mass, "mass")?;
        ParamError::positive(friction, "friction")?;
        ParamError::positive(kt, "kt")?;
        ParamError::positive(dt, "dt")?;
        let rate = friction * dt / mass;
        Ok(Underdamped {
            mass,
            kt,
            dt,
            velocity_decay: math::exp(-rate),
            velocity_noise: math::sqrt(-kt / mass * math::expm1(-2.0 * rate)),
        })
    }

    /// The time step.
    pub fn dt(&self) -> f32 {
        self.dt
    }

    fn force<S: Score<N>, const N: usize>(
        &self,
        score: &S,
        x: &[f32; N],
    ) -> Result<[f32; N], StepError> {
        Ok(vector::scale(self.kt, &checked_score(score, x)?))
    }

    /// The state at `x` with velocity `v` (evaluates the force once).
    pub fn start<S: Score<N>, const N: usize>(
        &self,
        score: &S,
        x: [f32; N],
        v: [f32; N],
    ) -> Result<KineticState<N>, StepError> {
        Ok(KineticState {
            x,
            v,
            force: self.force(score, &x)?,
        })
    }

    /// One BAOAB step: half kick, half drift, exact friction and noise, half drift, half kick.
    pub fn step<S: Score<N>, R: Rng, const N: usize>(
        &self,
        score: &S,
        state: &mut KineticState<N>,
        noise: &mut GaussianStream<R>,
    ) -> Result<(), StepError> {
        let half_dt = 0.5 * self.dt;
        let kick = half_dt / self.mass;
        let v = vector::axpy(kick, &state.force, &state.v); // B
        let x = vector::axpy(half_dt, &v, &state.x); // A
        let z: [f32; N] = noise.normal();
        let v: [f32; N] =
            core::array::from_fn(|d| self.velocity_decay * v[d] + self.velocity_noise * z[d]); // O
        let x = vector::axpy(half_dt, &v, &x); // A
        let force = self.force(score, &x)?;
        let v = vector::axpy(kick, &force, &v); // B
        *state = KineticState { x, v, force };
        Ok(())
    }

    /// `steps` steps; the observer sees the positions (step 0 is the start, t = i·dt).
    pub fn run<S: Score<N>, R: Rng, O: Observer<N>, const N: usize>(
        &self,
        score: &S,
        state: &mut KineticState<N>,
        steps: u32,
        noise: &mut GaussianStream<R>,
        observer: &mut O,
    ) -> Result<(), SampleError> {
        observer.observe(0, 0.0, &state.x);
        for i in 0..steps {
            let mut next = *state;
            self.step(score, &mut next, noise)
                .map_err(|e| SampleError::at(i, e))?;
            check_state(&next.x, i)?;
            check_state(&next.v, i)?;
            *state = next;
            observer.observe(i + 1, (i + 1) as f32 * self.dt, &state.x);
        }
        Ok(())
    }
}
