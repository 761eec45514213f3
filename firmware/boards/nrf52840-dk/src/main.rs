//! tinyscore on the nRF52840-DK (Cortex-M4F, 64 MHz): the model baked in at build time
//! (`TINYSCORE_MODEL=… cargo run --release`), samples as defmt frames over RTT, LED1 (P0.13,
//! active low) toggled per sample. With `TINYSCORE_SEED=hardware` the seed comes from the
//! chip's RNG and is printed first, so the host can reproduce the run.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use defmt_rtt as _;
use nrf52840_hal::{gpio, pac, Rng};
use panic_probe as _;
use tinyscore_app::baked::{CONFIG, HARDWARE_SEED, MODEL};
use tinyscore_app::{run, Config, DefmtSink};

#[entry]
fn main() -> ! {
    if let Some(peripherals) = pac::Peripherals::take() {
        let port0 = gpio::p0::Parts::new(peripherals.P0);
        let mut led = port0.p0_13.into_push_pull_output(gpio::Level::High);
        let seed = if HARDWARE_SEED {
            Rng::new(peripherals.RNG).random_u64()
        } else {
            CONFIG.seed
        };
        defmt::println!("seed {=u64}", seed);
        let config = Config { seed, ..CONFIG };
        match run(MODEL, &config, &mut led, &mut DefmtSink) {
            Ok(()) => defmt::println!("done: {=u32} samples", config.particles),
            Err(e) => defmt::println!("error: {}", e),
        }
    }
    loop {
        cortex_m::asm::wfi();
    }
}
