//! tinyscore on the Raspberry Pi Pico (RP2040, Cortex-M0+, no FPU: the int8 path is
//! integer-only, f32 runs in soft float): the model baked in at build time
//! (`TINYSCORE_MODEL=… cargo run --release`), samples as defmt frames over RTT, the LED on
//! GPIO25 toggled per sample.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use defmt_rtt as _;
use panic_probe as _;
use rp2040_hal::{gpio::Pins, pac, Sio};
use tinyscore_app::baked::{CONFIG, MODEL};
use tinyscore_app::{run, DefmtSink};

/// The second-stage bootloader for the Pico's W25Q080 flash.
#[link_section = ".boot2"]
#[used]
pub static BOOT2_FIRMWARE: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

#[entry]
fn main() -> ! {
    if let Some(mut peripherals) = pac::Peripherals::take() {
        let sio = Sio::new(peripherals.SIO);
        let pins = Pins::new(
            peripherals.IO_BANK0,
            peripherals.PADS_BANK0,
            sio.gpio_bank0,
            &mut peripherals.RESETS,
        );
        let mut led = pins.gpio25.into_push_pull_output();
        match run(MODEL, &CONFIG, &mut led, &mut DefmtSink) {
            Ok(()) => defmt::println!("done: {=u32} samples", CONFIG.particles),
            Err(e) => defmt::println!("error: {}", e),
        }
    }
    loop {
        cortex_m::asm::wfi();
    }
}
