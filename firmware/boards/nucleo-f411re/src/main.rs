//! tinyscore on the Nucleo-F411RE (Cortex-M4F, 100 MHz): the model baked in at build time
//! (`TINYSCORE_MODEL=… cargo run --release`), samples as defmt frames over RTT, the green LED
//! LD2 (PA5) toggled per sample.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use defmt_rtt as _;
use panic_probe as _;
use stm32f4xx_hal::{pac, prelude::*};
use tinyscore_app::baked::{CONFIG, MODEL};
use tinyscore_app::{run, DefmtSink};

#[entry]
fn main() -> ! {
    if let Some(peripherals) = pac::Peripherals::take() {
        let mut rcc = peripherals.RCC.constrain();
        let gpioa = peripherals.GPIOA.split(&mut rcc);
        let mut led = gpioa.pa5.into_push_pull_output();
        match run(MODEL, &CONFIG, &mut led, &mut DefmtSink) {
            Ok(()) => defmt::println!("done: {=u32} samples", CONFIG.particles),
            Err(e) => defmt::println!("error: {}", e),
        }
    }
    loop {
        cortex_m::asm::wfi();
    }
}
