//! The tinyscore application for any Cortex-M board: parse the model from flash, sample it,
//! blink a status LED per sample, and send each sample to a sink.
//!
//! It is generic over embedded-hal 1.0's [`OutputPin`] (the LED) and over a [`SampleSink`]:
//! [`DefmtSink`] sends defmt frames (RTT on a board, semihosting in QEMU), [`BinarySink`]
//! writes little-endian records to any `embedded_io::Write`, such as a UART. The model and the
//! configuration are baked in at build time ([`baked`]); board binaries (`firmware/src/main.rs`
//! for QEMU, `firmware/boards/*`) only provide the pins and the sink.
#![no_std]

use embedded_hal::digital::OutputPin;

/// A fault (bad memory access, undefined instruction) on a board is reported over defmt and
/// halts the core, so a debugger or probe-rs shows where it happened.
#[cfg(feature = "halt-on-fault")]
#[cortex_m_rt::exception]
unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
    defmt::println!("error: hard fault at pc {=u32:08x}", frame.pc());
    loop {
        cortex_m::asm::bkpt();
    }
}

/// What this build samples, from the `TINYSCORE_*` variables at build time (see `build.rs`).
pub mod baked {
    use super::Config;
    use tinyscore::Method;

    mod generated {
        use super::super::Spacing;
        use tinyscore::Method;
        include!(concat!(env!("OUT_DIR"), "/config.rs"));
    }

    /// Bytes aligned to a word, so that the SMLAD kernel can load packed weights with LDM.
    #[repr(C, align(4))]
    struct WordAligned<T: ?Sized>(T);

    static ALIGNED: &WordAligned<[u8]> =
        &WordAligned(*include_bytes!(concat!(env!("OUT_DIR"), "/model.tsm")));

    /// The model file's bytes, in flash; checked by [`crate::run`] before use. On cores with
    /// the DSP extension an int8 model is baked in packed (precision 2, same outputs).
    pub static MODEL: &[u8] = &ALIGNED.0;

    /// The sampler (each build runs one: its solver alone is in flash).
    pub const SAMPLER: Method = generated::SAMPLER;

    /// The rest of the sampling configuration.
    pub const CONFIG: Config = Config {
        steps: generated::STEPS,
        spacing: generated::SPACING,
        lower_order_final: generated::LOWER_ORDER_FINAL,
        particles: generated::PARTICLES,
        seed: generated::SEED,
    };

    /// Whether the build counts instructions (QEMU `-icount`) besides sampling.
    pub const COUNT: bool = generated::COUNT;

    /// Whether the seed should come from the board's hardware RNG (`TINYSCORE_SEED=hardware`).
    pub const HARDWARE_SEED: bool = generated::HARDWARE_SEED;

    /// The model's data dimension, read from its header at build time (each dimension is
    /// its own code: the samplers' states are `[f32; DIM]`).
    pub const DIM: usize = generated::DIM;

    /// Whether samples go out as [`crate::BinarySink`] records (`TINYSCORE_SINK=binary`)
    /// rather than defmt frames, where the board has a byte stream for them.
    pub const BINARY_SINK: bool = generated::BINARY_SINK;

    /// Whether the build computes log-likelihoods of points instead of sampling
    /// (`TINYSCORE_TASK=likelihood`).
    pub const LIKELIHOOD: bool = generated::LIKELIHOOD;

    /// A fitted grid's interior log-SNR fractions (`TINYSCORE_GRID`; used when the spacing is
    /// [`crate::Spacing::Fitted`]).
    pub const FITTED: &[f32] = generated::FITTED;

    /// The bespoke solver's coefficients, one row a step (`TINYSCORE_BESPOKE`; used when the
    /// sampler is [`Method::Bespoke`]).
    pub const BESPOKE: &[[f32; 4]] = generated::BESPOKE;

    /// The likelihood's adaptive solver (`TINYSCORE_RTOL`, `TINYSCORE_ATOL`,
    /// `TINYSCORE_MAX_STEPS`), checked by [`crate::likelihood`].
    pub const LIKELIHOOD_SOLVER: (f32, f32, u32) =
        (generated::RTOL, generated::ATOL, generated::MAX_STEPS);
}
#[cfg(tinyscore_dsp)]
pub mod smlad;

use tinyscore::likelihood::{Divergence, Encoded, Likelihood, NetworkJacobian};
use tinyscore::model::packed::Kernels;
use tinyscore::{
    particle_noise, Bespoke, Dopri5, FittedGrid, LinearSde, Method, Model, ModelError, ParamError,
    SampleError, Sampler, Schedule, Score, Settings, Solver, TimeGrid, WithSolver,
};

/// What to sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub struct Config {
    /// Steps of the time grid.
    pub steps: u32,
    /// The grid's spacing.
    pub spacing: Spacing,
    /// Whether the multistep samplers lower their order at the last steps.
    pub lower_order_final: bool,
    /// Particles.
    pub particles: u32,
    /// Seed: particle i uses stream i (as on the host).
    pub seed: u64,
}

/// The spacing of the time grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum Spacing {
    /// Equal steps in t.
    Uniform,
    /// EDM (Karras) spacing, ρ = 7.
    Karras,
    /// Equal steps in log-SNR.
    LogSnr,
    /// The fitted grid baked in (`TINYSCORE_GRID`).
    Fitted,
}

impl Spacing {
    /// The core's schedule.
    pub fn schedule(self) -> Result<Schedule, ParamError> {
        Ok(match self {
            Spacing::Uniform => Schedule::Uniform,
            Spacing::Karras => Schedule::Karras { rho: 7.0 },
            Spacing::LogSnr => Schedule::LogSnr,
            Spacing::Fitted => Schedule::Fitted(FittedGrid::new(baked::FITTED)?),
        })
    }
}

/// Why a run stopped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AppError {
    /// The model file was refused.
    Model(ModelError),
    /// A sampler or grid parameter was refused.
    Parameter(ParamError),
    /// A particle diverged (or a point's likelihood could not be integrated).
    Particle {
        /// Which.
        index: u32,
        /// At which step and why.
        error: SampleError,
    },
    /// The sink could not take a sample.
    Sink,
}

/// In words, as the host would say them (the text stays on the host, in the ELF's defmt table).
impl defmt::Format for AppError {
    fn format(&self, f: defmt::Formatter) {
        match *self {
            AppError::Model(e) => defmt::write!(f, "model file: {}", e),
            AppError::Parameter(e) => defmt::write!(f, "{}", e),
            AppError::Particle { index, error } => {
                defmt::write!(f, "particle {=u32}: {}", index, error)
            }
            AppError::Sink => defmt::write!(f, "the sample sink refused a sample"),
        }
    }
}

/// Where samples go.
pub trait SampleSink {
    /// Takes sample `index` (in the model's normalised coordinates).
    fn sample(&mut self, index: u32, x: &[f32]) -> Result<(), AppError>;
}

/// The largest dimension a model file may have.
const MAX_DIM: usize = tinyscore::model::MAX_DIM as usize;

/// Samples as defmt messages `sample <i> [<x₀ bits>, <x₁ bits>, …]` (bits in hex).
pub struct DefmtSink;

impl SampleSink for DefmtSink {
    fn sample(&mut self, index: u32, x: &[f32]) -> Result<(), AppError> {
        let mut bits = [0u32; MAX_DIM];
        for (b, v) in bits.iter_mut().zip(x) {
            *b = v.to_bits();
        }
        let bits = &bits[..x.len().min(MAX_DIM)];
        defmt::println!("sample {=u32} {=[?]:08x}", index, bits);
        Ok(())
    }
}

/// Samples as records on a byte stream: the index, then each coordinate's f32 bits, all
/// little-endian u32s (`4 + 4·DIM` bytes a record).
pub struct BinarySink<W: embedded_io::Write>(pub W);

impl<W: embedded_io::Write> SampleSink for BinarySink<W> {
    fn sample(&mut self, index: u32, x: &[f32]) -> Result<(), AppError> {
        let mut write = |bytes: [u8; 4]| self.0.write_all(&bytes).map_err(|_| AppError::Sink);
        write(index.to_le_bytes())?;
        for v in x {
            write(v.to_bits().to_le_bytes())?;
        }
        Ok(())
    }
}

/// This core's kernels for packed int8 models: the SMLAD ones where the core has the DSP
/// extension, else the portable ones.
#[cfg(tinyscore_dsp)]
pub const KERNELS: Kernels = Kernels {
    rows: smlad::rows,
    operands: smlad::operands,
    wide: smlad::wide,
    wide_activation: smlad::wide_activation,
    #[cfg(feature = "int16x8")]
    wide_activation16: smlad::wide_activation16,
};
/// This core's kernels for packed int8 models: the SMLAD ones where the core has the DSP
/// extension, else the portable ones.
#[cfg(not(tinyscore_dsp))]
pub const KERNELS: Kernels = Kernels::PORTABLE;

/// Parses a model file, with [`KERNELS`] installed for packed int8 models.
pub fn parse(model: &[u8]) -> Result<Model<'_>, ModelError> {
    Ok(Model::parse(model)?.with_kernels(KERNELS))
}

/// Parses `model`, samples `config.particles` particles ([`LOCKSTEP`] at a time) and sends
/// each to `sink`, toggling `led` after each.
///
/// The model must have the dimension the build read from the baked model ([`baked::DIM`]).
pub fn run<L: OutputPin, K: SampleSink>(
    model: &[u8],
    config: &Config,
    led: &mut L,
    sink: &mut K,
) -> Result<(), AppError> {
    run_in::<L, K, { baked::DIM }>(model, config, led, sink)
}

fn run_in<L: OutputPin, K: SampleSink, const N: usize>(
    model: &[u8],
    config: &Config,
    led: &mut L,
    sink: &mut K,
) -> Result<(), AppError> {
    let model = parse(model).map_err(AppError::Model)?;
    // A packed model (the build packs an int8 one for a core with the DSP extension) runs
    // through `PackedScore`, an int8 one elsewhere through `Int8Score`: each keeps the other
    // evaluators out of flash.
    #[cfg(tinyscore_packed)]
    let score = tinyscore::PackedScore::<N>::new(model).map_err(AppError::Model)?;
    #[cfg(tinyscore_int8)]
    let score = tinyscore::Int8Score::<N>::new(model).map_err(AppError::Model)?;
    #[cfg(not(any(tinyscore_packed, tinyscore_int8)))]
    let score = tinyscore::NeuralScore::<N>::new(model).map_err(AppError::Model)?;
    let sde = score.sde();
    let t_end = model.header().t_end;
    let schedule = config.spacing.schedule().map_err(AppError::Parameter)?;
    let grid =
        TimeGrid::new(schedule, sde.t_max(), t_end, config.steps).map_err(AppError::Parameter)?;
    let mut out = Output {
        led,
        sink,
        lit: false,
    };
    let run = Run {
        out: &mut out,
        config,
        grid,
        score: &score,
    };
    let settings = Settings {
        lower_order_final: config.lower_order_final,
        bespoke: match baked::SAMPLER {
            Method::Bespoke => Some(Bespoke::new(baked::BESPOKE).map_err(AppError::Parameter)?),
            _ => None,
        },
    };
    // The baked constant, so that the build compiles this one solver only.
    baked::SAMPLER
        .with_solver(sde, &grid, &settings, run)
        .map_err(AppError::Parameter)?
}

/// A run of every particle with the solver [`tinyscore::Method::with_solver`] hands over.
struct Run<'a, 'b, L, K, S> {
    out: &'a mut Output<'b, L, K>,
    config: &'a Config,
    grid: TimeGrid,
    score: &'a S,
}

impl<L: OutputPin, K: SampleSink, S: Score<N>, const N: usize> WithSolver<N>
    for Run<'_, '_, L, K, S>
{
    type Output = Result<(), AppError>;
    fn run<D, P>(self, solver: P, sde: D) -> Self::Output
    where
        D: LinearSde + Copy + Send + Sync + 'static,
        P: Solver<D, N> + Copy + Send + Sync + 'static,
        P::State: Send + Sync + 'static,
    {
        let Run {
            out,
            config,
            grid,
            score,
        } = self;
        out.all(config, &Sampler::new(solver, grid), &sde, score)
    }
}

/// The probability-flow ODE's encoding of the point `x` (data units) under the f32 `model`:
/// its latent, log-density change and evaluations, as `tinyscore likelihood` computes them
/// on the host (exact divergence; point `index` draws from stream `index` of `seed`, unused
/// by the exact divergence). The log-likelihood is the N(0, I) prior's log-density at the
/// latent plus the change, less the standardisation's `Σ ln std`.
pub fn likelihood<const N: usize>(
    model: &[u8],
    x: &[f32; N],
    index: u32,
    seed: u64,
) -> Result<Encoded<N>, AppError> {
    let model = parse(model).map_err(AppError::Model)?;
    let score = NetworkJacobian::<N>::new(model).map_err(AppError::Model)?;
    let (rtol, atol, max_steps) = baked::LIKELIHOOD_SOLVER;
    let solver = Dopri5::new(rtol, atol, max_steps).map_err(AppError::Parameter)?;
    let likelihood = Likelihood::new(solver, Divergence::Exact).map_err(AppError::Parameter)?;
    let header = model.header();
    let z = model.normalize(x);
    let mut noise = particle_noise(seed, index as u64);
    likelihood
        .encode(&header.sde, &score, &z, header.t_end, N, &mut noise)
        .map_err(|error| AppError::Particle { index, error })
}

/// Particles sampled together, step by step: each score evaluation of a packed int8 model
/// at one time shares the time features and their first-layer sums between them (the
/// particles get the same bits as one at a time). Wider data gets fewer, so that the
/// states stay a small part of the stack.
pub const LOCKSTEP: usize = if baked::DIM <= 4 {
    16
} else if baked::DIM <= 16 {
    4
} else {
    1
};

/// The LED and the sink of a run.
struct Output<'a, L, K> {
    led: &'a mut L,
    sink: &'a mut K,
    lit: bool,
}

impl<L: OutputPin, K: SampleSink> Output<'_, L, K> {
    fn all<P, D, S, const N: usize>(
        &mut self,
        config: &Config,
        sampler: &Sampler<P>,
        sde: &D,
        score: &S,
    ) -> Result<(), AppError>
    where
        P: Solver<D, N>,
        D: LinearSde,
        S: Score<N>,
    {
        let mut first = 0;
        while first < config.particles {
            let len = (config.particles - first).min(LOCKSTEP as u32) as usize;
            let mut noises: [_; LOCKSTEP] =
                core::array::from_fn(|i| particle_noise(config.seed, first as u64 + i as u64));
            let mut xs = [[0.0f32; N]; LOCKSTEP];
            sampler
                .sample_batch::<D, S, _, N, LOCKSTEP>(
                    sde,
                    score,
                    &mut noises[..len],
                    &mut xs[..len],
                )
                .map_err(|e| AppError::Particle {
                    index: first + e.particle as u32,
                    error: e.error,
                })?;
            for (index, x) in (first..).zip(&xs[..len]) {
                self.sink.sample(index, x)?;
                self.lit = !self.lit;
                // A status LED that cannot switch is no reason to stop sampling.
                let _ = if self.lit {
                    self.led.set_high()
                } else {
                    self.led.set_low()
                };
            }
            first += len as u32;
        }
        Ok(())
    }
}
