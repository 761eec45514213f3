//! tinyscore on a Cortex-M: samples the model baked in at build time and reports each sample's
//! bits over semihosting, then exits QEMU with the run's status.
//!
//! Each sample is one line `sample <i> <x₀ bits> <x₁ bits>` (f32 bits in hex, in the model's
//! normalised coordinates), so the host can compare them bit for bit with
//! `tinyscore sample --normalized`. A model file that does not parse is reported with its
//! error and the firmware exits with a failure status.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use panic_semihosting as _;
use tinyscore::{
    particle_noise, AnnealedLangevin, EulerMaruyama, LangevinCorrector, LinearSde, Model,
    NeuralScore, NullObserver, OdeHeun, PredictorCorrector, ReverseDiffusion, SampleError, Sampler,
    Schedule, Score, Solver, TimeGrid,
};

/// The samplers this build can run.
#[allow(dead_code)]
enum Kind {
    Em,
    Pc,
    OdeHeun,
    Ald,
}

mod config {
    use super::Kind;
    include!(concat!(env!("OUT_DIR"), "/config.rs"));
}

/// The model file's bytes, in flash.
static MODEL: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/model.tsm"));

#[entry]
fn main() -> ! {
    let status = match run() {
        Ok(()) => debug::EXIT_SUCCESS,
        Err(()) => debug::EXIT_FAILURE,
    };
    debug::exit(status);
    // Only reached on a board without a debugger attached: halt there.
    loop {
        cortex_m::asm::wfi();
    }
}

fn run() -> Result<(), ()> {
    let model = Model::parse(MODEL).map_err(|e| hprintln!("error: model file: {}", e))?;
    let score = NeuralScore::<2>::new(model).map_err(|e| hprintln!("error: model: {}", e))?;
    let sde = score.sde();
    let t_end = model.header().t_end;
    let grid = TimeGrid::new(Schedule::Uniform, sde.t_max(), t_end, config::STEPS)
        .map_err(|e| hprintln!("error: time grid: {}", e))?;
    hprintln!(
        "tinyscore: {} particles, {} steps",
        config::PARTICLES,
        config::STEPS
    );
    match config::SAMPLER {
        Kind::Em => sample_all(&Sampler::new(EulerMaruyama, grid), &sde, &score),
        Kind::Pc => sample_all(
            &Sampler::new(
                PredictorCorrector {
                    predictor: ReverseDiffusion,
                    corrector: LangevinCorrector::default(),
                },
                grid,
            ),
            &sde,
            &score,
        ),
        Kind::OdeHeun => sample_all(&Sampler::new(OdeHeun, grid), &sde, &score),
        Kind::Ald => {
            let sigma_last = sde.sigma(t_end);
            let solver = AnnealedLangevin::new(sigma_last * sigma_last, 2, sigma_last)
                .map_err(|e| hprintln!("error: sampler: {}", e))?;
            sample_all(&Sampler::new(solver, grid), &sde, &score)
        }
    }
}

fn sample_all<P, D, S>(sampler: &Sampler<P>, sde: &D, score: &S) -> Result<(), ()>
where
    P: Solver<D, 2>,
    D: LinearSde,
    S: Score<2>,
{
    for i in 0..config::PARTICLES {
        let mut noise = particle_noise(config::SEED, i as u64);
        let x: Result<[f32; 2], SampleError> =
            sampler.sample(sde, score, &mut noise, &mut NullObserver);
        let x = x.map_err(|e| hprintln!("error: particle {}: {}", i, e))?;
        hprintln!("sample {} {:08x} {:08x}", i, x[0].to_bits(), x[1].to_bits());
    }
    Ok(())
}
