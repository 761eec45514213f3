//! Score-based generative models without an allocator.
//!
//! `tinyscore` integrates the reverse-time dynamics of a diffusion model — the reverse SDE
//! `dx = [f − g² ∇log p_t] dt + g dw̄`, its probability-flow ODE, annealed and plain Langevin
//! dynamics — for a state `[f32; N]`, with the same bits on an x86 host and on a Cortex-M0.
//!
//! The crate is cut the way diffrax cuts an SDE library:
//! - **what the equation is**: a forward process ([`LinearSde`]: [`VpSde`], [`SubVpSde`],
//!   [`VeSde`], [`OrnsteinUhlenbeck`]) and a [`Score`] (exact: [`GaussianMixture`] diffused by
//!   an SDE, [`DoubleWell`]; learned: the network of the `tinyscore` model format);
//! - **one step**: a [`Solver`] (reverse SDE, probability-flow ODE, exponential integrators,
//!   annealed Langevin), each with its documented order;
//! - **the noise**: [`GaussianStream`], a native-f32 Box–Muller sampler over any `rand_core`
//!   RNG, one independent stream per particle ([`particle_noise`]);
//! - **what is saved**: an [`Observer`] called after every step ([`Trajectory`] records into a
//!   fixed-capacity buffer).
//!
//! [`Sampler`] drives a solver over a [`TimeGrid`]; [`Ula`] and [`Underdamped`] sample a
//! time-independent target by Langevin MCMC.
//!
//! # Example
//! ```
//! use tinyscore::{
//!     particle_noise, Component, Diffused, EulerMaruyama, GaussianMixture, NullObserver,
//!     Sampler, TimeGrid, VpSde,
//! };
//!
//! let components = [
//!     Component::new(0.5, [-1.0, 0.0], [0.1, 0.1]).unwrap(),
//!     Component::new(0.5, [1.0, 0.0], [0.1, 0.1]).unwrap(),
//! ];
//! let data = GaussianMixture::new(&components).unwrap();
//! let sde = VpSde::default();
//! let score = Diffused::new(sde, data);
//! let sampler = Sampler::new(EulerMaruyama, TimeGrid::uniform(1.0, 1e-3, 500).unwrap());
//! let mut noise = particle_noise(42, 0);
//! let x: [f32; 2] = sampler.sample(&sde, &score, &mut noise, &mut NullObserver).unwrap();
//! assert!((x[0].abs() - 1.0).abs() < 0.5);
//! ```
//!
//! # Bit-exactness
//! Every float function goes through [`math`] (libm, or own f32 kernels), never through
//! `std`'s platform functions, and nothing is fused (`mul_add`): the same inputs give the same
//! bits on every target. The `std` feature, for hosts, changes one route: [`math::sqrt`]
//! becomes `f32::sqrt`, the same correctly rounded result, which the compiler can vectorise.
//!
//! # Features
//! `int16x8` (default): models with int16 activations (the int16x8 [`model::Precision`]); a
//! chip build without it leaves their parser and evaluator out of flash and refuses such a
//! file with [`ModelError::LeftOut`]. `defmt`: `defmt::Format`
//! on the public errors and parameters. `fast-math`: see [`math`]. `std`: above.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

mod error;
mod grid;
pub mod likelihood;
pub mod math;
mod mcmc;
pub mod model;
mod noise;
mod observe;
mod score;
mod sde;
mod solver;
mod vector;

pub use error::{ParamError, ParticleError, SampleError, StepError};
pub use grid::{FittedGrid, Schedule, TimeGrid, MAX_FITTED_STEPS};
pub use mcmc::{KineticState, Ula, Underdamped};
pub use model::{Int8Score, Model, ModelError, ModelSde, NeuralScore, PackedScore};
pub use noise::{
    box_muller, box_muller_lanes, particle_noise, particle_rng, BoxMullerLanes, DefaultRng,
    GaussianStream, LANES as NOISE_LANES,
};
pub use observe::{NullObserver, Observer, Trajectory};
pub use score::{
    Component, Diffused, DoubleWell, GaussianData, GaussianMixture, MixtureLanes, Score,
    LANES as MIXTURE_LANES,
};
pub use sde::{LinearSde, OrnsteinUhlenbeck, Sde, SubVpSde, VeSde, VpSde};
pub use solver::{
    Ancestral, AnnealedLangevin, Bespoke, BespokeHistory, Corrector, Ddim, Dopri5, DpmSolverPp2M,
    DpmSolverPp3M, EdmHeun, EulerMaruyama, LangevinCorrector, Method, MultistepHistory, OdeEuler,
    OdeHeun, OdeRk4, OdeStats, PredictorCorrector, Rates, ReverseDiffusion, Sampler, Settings,
    Solver, Span, StepCoefficients, TwoStepHistory, UniPc, UniPcHistory, WithSolver,
    MAX_BESPOKE_STEPS,
};
