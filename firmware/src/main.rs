//! tinyscore on a Cortex-M: samples the model baked in at build time and reports each sample's
//! bits as defmt frames over semihosting, then exits QEMU with the run's status.
//!
//! Each sample is one message `sample <i> [<x₀ bits>, <x₁ bits>, …]` (f32 bits in hex, in the model's
//! normalised coordinates), so the host can compare them bit for bit with
//! `tinyscore sample --normalized`; the host decodes the frames with the ELF's defmt table. A
//! model file that does not parse is reported with its error and the firmware exits with a
//! failure status; so does a panic.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m_rt::entry;
use cortex_m_semihosting::debug;
use defmt_semihosting as _;
use tinyscore::model::packed::Kernels;
use tinyscore::model::Rounding;
use tinyscore::{particle_noise, NeuralScore, Score};
use tinyscore_app::baked::{BINARY_SINK, CONFIG, COUNT, DIM, LIKELIHOOD, MODEL};
use tinyscore_app::{likelihood, parse, run, BinarySink, DefmtSink, KERNELS, LOCKSTEP};

/// QEMU's boards have no LED to blink.
struct NoLed;

impl embedded_hal::digital::ErrorType for NoLed {
    type Error = core::convert::Infallible;
}

impl embedded_hal::digital::OutputPin for NoLed {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[entry]
fn main() -> ! {
    start_ticks();
    let status = match run_qemu() {
        Ok(()) => debug::EXIT_SUCCESS,
        Err(()) => debug::EXIT_FAILURE,
    };
    defmt::println!("stack {=usize}", stack_high_water());
    debug::exit(status);
    // Only reached on a board without a debugger attached: halt there.
    loop {
        cortex_m::asm::wfi();
    }
}

fn run_qemu() -> Result<(), ()> {
    if LIKELIHOOD {
        return run_likelihood();
    }
    let config = CONFIG;
    defmt::println!(
        "tinyscore: {=u32} particles, {=u32} steps",
        config.particles,
        config.steps
    );
    if COUNT {
        // The start-up check of the model (its CRC and every field), which `run` makes once
        // before it samples: the host leaves it out of the instructions per sample.
        let start = ticks();
        let model = parse(MODEL);
        defmt::println!("count parse_ticks {=u64}", ticks() - start);
        let model = model.map_err(|e| defmt::println!("error: model file: {}", e))?;
        let score =
            NeuralScore::<DIM>::new(model).map_err(|e| defmt::println!("error: model: {}", e))?;
        let portable = NeuralScore::<DIM>::new(model.with_kernels(Kernels::PORTABLE))
            .map_err(|e| defmt::println!("error: model: {}", e))?;
        count_score_and_noise(&score, &portable)?;
    }
    let start = ticks();
    let result = if BINARY_SINK {
        let mut file = SemihostingFile::create(SAMPLES_FILE)
            .map_err(|()| defmt::println!("error: cannot create the samples file"))?;
        let result = run(MODEL, &config, &mut NoLed, &mut BinarySink(&mut file));
        file.close();
        result
    } else {
        run(MODEL, &config, &mut NoLed, &mut DefmtSink)
    };
    if COUNT {
        defmt::println!("count sample_ticks {=u64}", ticks() - start);
    }
    result.map_err(|e| defmt::println!("error: {}", e))
}

/// The host file (in QEMU's working directory) a likelihood build reads its points from:
/// `DIM` little-endian f32s per point, in data units.
const POINTS_FILE: &str = "tinyscore-points.bin\0";

/// Computes the log-likelihood terms of every point in [`POINTS_FILE`] and reports each as
/// `likelihood <i> <nfe> <Δ log p bits> [<latent bits>…]`; with `COUNT`, the instructions.
fn run_likelihood() -> Result<(), ()> {
    let mut file = SemihostingFile::open(POINTS_FILE)
        .map_err(|()| defmt::println!("error: cannot open the points file"))?;
    let mut index = 0u32;
    let mut ticks_total = 0u64;
    let result = loop {
        let mut record = [0u8; 4 * DIM];
        match file.read_exact(&mut record) {
            Ok(false) => break Ok(()),
            Ok(true) => {}
            Err(()) => {
                defmt::println!("error: the points file ends inside a point");
                break Err(());
            }
        }
        let x: [f32; DIM] = core::array::from_fn(|d| {
            f32::from_le_bytes([
                record[4 * d],
                record[4 * d + 1],
                record[4 * d + 2],
                record[4 * d + 3],
            ])
        });
        let start = ticks();
        let encoded = match likelihood(MODEL, &x, index, CONFIG.seed) {
            Ok(encoded) => encoded,
            Err(e) => {
                defmt::println!("error: {}", e);
                break Err(());
            }
        };
        ticks_total += ticks() - start;
        defmt::println!(
            "likelihood {=u32} {=u32} {=u32:08x} {=[?]:08x}",
            index,
            encoded.stats.nfe,
            encoded.delta_log_p.to_bits(),
            encoded.latent.map(f32::to_bits)
        );
        index += 1;
    };
    file.close();
    if COUNT {
        defmt::println!("count likelihood_ticks {=u64}", ticks_total);
        defmt::println!("count likelihood_points {=u32}", index);
    }
    result
}

/// The host file (in QEMU's working directory) that a `TINYSCORE_SINK=binary` build writes
/// its sample records to, through semihosting (NUL-terminated for the call).
const SAMPLES_FILE: &str = "tinyscore-samples.bin\0";

/// A file on the host, written through semihosting: the byte stream the binary sink's
/// records go to under QEMU (a UART on a board).
struct SemihostingFile {
    handle: usize,
}

impl SemihostingFile {
    /// Creates (truncates) the host file `name`, which ends in a NUL.
    fn create(name: &str) -> Result<Self, ()> {
        Self::open_mode(name, cortex_m_semihosting::nr::open::W_TRUNC_BINARY)
    }

    /// Opens the host file `name` (ending in a NUL) for reading.
    fn open(name: &str) -> Result<Self, ()> {
        Self::open_mode(name, cortex_m_semihosting::nr::open::R_BINARY)
    }

    /// SYS_OPEN of `name` (ending in a NUL) in `mode`.
    fn open_mode(name: &str, mode: usize) -> Result<Self, ()> {
        // SAFETY: SYS_OPEN reads `name.len() - 1` bytes of a NUL-terminated string that
        // outlives the call.
        let handle =
            unsafe { cortex_m_semihosting::syscall!(OPEN, name.as_ptr(), mode, name.len() - 1) };
        if handle as isize == -1 {
            Err(())
        } else {
            Ok(SemihostingFile { handle })
        }
    }

    /// Fills `buf`: `Ok(true)`, or `Ok(false)` at the end of the file before any byte;
    /// `Err` when it ends part way.
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<bool, ()> {
        let mut filled = 0;
        while filled < buf.len() {
            let rest = &mut buf[filled..];
            // SAFETY: SYS_READ writes at most `rest.len()` bytes into `rest`; it returns how
            // many it did not read.
            let left = unsafe {
                cortex_m_semihosting::syscall!(READ, self.handle, rest.as_mut_ptr(), rest.len())
            };
            let read = rest.len().checked_sub(left).ok_or(())?;
            if read == 0 {
                return if filled == 0 { Ok(false) } else { Err(()) };
            }
            filled += read;
        }
        Ok(true)
    }

    fn close(self) {
        // SAFETY: SYS_CLOSE takes a handle SYS_OPEN returned; nothing uses it afterwards.
        unsafe { cortex_m_semihosting::syscall!(CLOSE, self.handle) };
    }
}

impl embedded_io::ErrorType for SemihostingFile {
    type Error = embedded_io::ErrorKind;
}

impl embedded_io::Write for SemihostingFile {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        // SAFETY: SYS_WRITE reads `buf.len()` bytes of `buf`; it returns how many it did not
        // write.
        let left =
            unsafe { cortex_m_semihosting::syscall!(WRITE, self.handle, buf.as_ptr(), buf.len()) };
        match buf.len().checked_sub(left) {
            Some(written) => Ok(written),
            None => Err(embedded_io::ErrorKind::Other),
        }
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// SysTick wraps since start-up (the counter is 24 bits).
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[cortex_m_rt::exception]
fn SysTick() {
    WRAPS.store(WRAPS.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// Starts SysTick on the core clock, free-running, counting wraps.
fn start_ticks() {
    if let Some(mut peripherals) = cortex_m::Peripherals::take() {
        let systick = &mut peripherals.SYST;
        systick.set_clock_source(cortex_m::peripheral::syst::SystClkSource::Core);
        systick.set_reload(0x00FF_FFFF);
        systick.clear_current();
        systick.enable_interrupt();
        systick.enable_counter();
    }
}

/// SysTick ticks since [`start_ticks`]. Under QEMU's `-icount shift=0` a tick is a fixed
/// number of instructions (40 on mps2-an386), so differences count instructions.
fn ticks() -> u64 {
    loop {
        let wraps = WRAPS.load(Ordering::Relaxed);
        let current = cortex_m::peripheral::SYST::get_current();
        if WRAPS.load(Ordering::Relaxed) == wraps {
            return ((wraps as u64) << 24) | (0x00FF_FFFF - current) as u64;
        }
    }
}

/// Ticks of 64 score evaluations with the installed kernel and with the portable one (which
/// must give the same bits), of the kernel alone ([`count_kernel`]), and of 4096 standard
/// normals.
fn count_score_and_noise<S: Score<N>, const N: usize>(score: &S, portable: &S) -> Result<(), ()> {
    let point =
        |k: usize| -> [f32; N] { core::array::from_fn(|d| 0.05 * k as f32 - 1.6 + 0.7 * d as f32) };
    let mut sink = 0.0f32;
    for (name, score) in [
        ("score_ticks_x64", score),
        ("score_portable_ticks_x64", portable),
    ] {
        let start = ticks();
        for k in 0..64 {
            let s = core::hint::black_box(score).score(&core::hint::black_box(point(k)), 0.5);
            sink += s.iter().sum::<f32>();
        }
        defmt::println!("count {=str} {=u64}", name, ticks() - start);
    }
    for k in 0..64 {
        let (fast, reference) = (score.score(&point(k), 0.5), portable.score(&point(k), 0.5));
        if fast.map(f32::to_bits) != reference.map(f32::to_bits) {
            defmt::println!("error: the kernels disagree at point {=usize}", k);
            return Err(());
        }
    }
    count_lockstep(score, portable)?;
    check_kernels()?;
    count_kernel();
    let mut noise = particle_noise(CONFIG.seed, u64::MAX);
    let start = ticks();
    for _ in 0..4096 {
        sink += noise.sample();
    }
    defmt::println!("count gaussian_ticks_x4096 {=u64}", ticks() - start);
    core::hint::black_box(sink);
    Ok(())
}

/// Ticks of 4 batched score evaluations of [`LOCKSTEP`] points at one time, as the samplers
/// make them, which must give the bits of the portable kernel's evaluations one by one.
fn count_lockstep<S: Score<N>, const N: usize>(score: &S, portable: &S) -> Result<(), ()> {
    let xs: [[f32; N]; LOCKSTEP] =
        core::array::from_fn(|k| core::array::from_fn(|d| 0.11 * k as f32 - 0.9 + 0.3 * d as f32));
    let mut out = [[0.0f32; N]; LOCKSTEP];
    let start = ticks();
    for _ in 0..4 {
        core::hint::black_box(score).score_batch(core::hint::black_box(&xs), 0.5, &mut out);
    }
    defmt::println!("count lockstep {=usize}", LOCKSTEP);
    defmt::println!("count score_lockstep_ticks_x4 {=u64}", ticks() - start);
    for (x, s) in xs.iter().zip(&out) {
        if s.map(f32::to_bits) != portable.score(x, 0.5).map(f32::to_bits) {
            defmt::println!("error: the batched evaluation disagrees with the portable one");
            return Err(());
        }
    }
    Ok(())
}

/// The installed kernels against the portable ones on random inputs, 64 rounds of 18 rows
/// (four groups of four and two left over): the wide activation with every multiplier,
/// shifts −31..=−1 (small ones half the time: a rounding tie every 2^e values, so both tie
/// directions are met many times), every zero point and totals of every size below 2³⁰ (the
/// range the kernel type allows); the wide sums on the same rows; over 32, 21, 6 and 1 words
/// (every loop of the assembly). The byte part's operands on 64 random levels, and its rows
/// on random words of 64, 35 and 7 inputs.
#[inline(never)] // Its buffers must not add to the frame that evaluates the score.
fn check_kernels() -> Result<(), ()> {
    use tinyscore::model::packed::{
        operands, rows_portable, wide_activation_portable, wide_portable, Requantization,
    };
    // The baked model's rounding, which the fused kernel is assembled for.
    let rounding = parse(MODEL).map_or(Rounding::Double, |m| m.header().rounding);
    // xorshift32: any spread of words will do here.
    let mut state = 0x9E37_79B9u32;
    let mut next_u32 = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let lut: [u8; 256] = core::array::from_fn(|i| (i as u8).wrapping_mul(167) ^ 0x5a);
    #[repr(align(4))]
    struct Bytes<const B: usize>([u8; B]);
    const ROWS: usize = 18;
    for round in 0..64 {
        // Wide weights and levels: int8 values as the i16 halves of the packed layout.
        let pairs = [32, 21, 6, 1][round % 4];
        let mut weights = Bytes([0u8; 4 * 32 * ROWS]);
        for half in weights.0.chunks_exact_mut(2) {
            half.copy_from_slice(&(next_u32() as i8 as i16).to_le_bytes());
        }
        let half = |byte: u32| byte as i8 as i16 as u16 as u32;
        let levels: [u32; 32] = core::array::from_fn(|_| {
            let word = next_u32();
            half(word) | (half(word >> 8) << 16)
        });
        let mut multipliers = Bytes([0u8; 4 * ROWS]);
        let mut shifts = [0u8; ROWS];
        let mut starts = Bytes([0u8; 4 * ROWS]);
        let channels = multipliers
            .0
            .chunks_exact_mut(4)
            .zip(starts.0.chunks_exact_mut(4));
        for ((multiplier_bytes, start_bytes), shift) in channels.zip(&mut shifts) {
            let word = next_u32();
            let multiplier = if word % 16 == 0 {
                0
            } else {
                (1 << 30) | (word >> 2) as i32
            };
            multiplier_bytes.copy_from_slice(&multiplier.to_le_bytes());
            let r = next_u32();
            let e = if r % 2 == 0 {
                1 + (r >> 1) % 6
            } else {
                1 + (r >> 1) % 31
            };
            *shift = (-(e as i32)) as i8 as u8;
            // Starts of every size up to 2²⁹, most of them small as in a real layer; the
            // sums add less than 2²⁰.
            let bits = 1 + next_u32() % 29;
            let start = (next_u32() as i32) >> (32 - bits);
            start_bytes.copy_from_slice(&start.to_le_bytes());
        }
        let requantization = Requantization {
            multipliers: &multipliers.0,
            shifts: &shifts,
            pre: (next_u32() % 256) as i32 - 128,
            lut: &lut,
            rounding,
        };
        let (mut fast, mut reference) = ([0u32; ROWS / 2], [0u32; ROWS / 2]);
        let (w, s) = (&weights.0, &starts.0);
        (KERNELS.wide_activation)(w, pairs, &levels, s, &requantization, &mut fast);
        wide_activation_portable(w, pairs, &levels, s, &requantization, &mut reference);
        if fast != reference {
            defmt::println!(
                "error: the wide activation kernels disagree in round {=usize}",
                round
            );
            return Err(());
        }
        #[cfg(feature = "int16x8")]
        {
            use tinyscore::model::packed::{wide_activation16_portable, Requantization16};
            // Levels over the whole int16 range: the sums stay below 2³⁰ (64 inputs).
            let levels16: [u32; 32] = core::array::from_fn(|_| next_u32());
            let mut knots = [0u8; tinyscore::model::format::SiluTable::INT16_BYTES];
            knots.iter_mut().for_each(|b| *b = next_u32() as u8);
            let requantization = Requantization16 {
                multipliers: &multipliers.0,
                shifts: &shifts,
                knots: &knots,
                rounding,
            };
            let (mut fast, mut reference) = ([0u32; ROWS / 2], [0u32; ROWS / 2]);
            (KERNELS.wide_activation16)(w, pairs, &levels16, s, &requantization, &mut fast);
            wide_activation16_portable(w, pairs, &levels16, s, &requantization, &mut reference);
            if fast != reference {
                defmt::println!(
                    "error: the int16 activation kernels disagree in round {=usize}",
                    round
                );
                return Err(());
            }
        }
        let (mut fast, mut reference) = ([0i32; ROWS], [0i32; ROWS]);
        (KERNELS.wide)(w, pairs, &levels, s, &mut fast);
        wide_portable(w, pairs, &levels, s, &mut reference);
        if fast != reference {
            defmt::println!("error: the wide kernels disagree in round {=usize}", round);
            return Err(());
        }
        #[repr(align(4))]
        struct Levels([i8; 64]);
        let mut q = Levels([0; 64]);
        for chunk in q.0.chunks_exact_mut(4) {
            chunk.copy_from_slice(&next_u32().to_le_bytes().map(|b| b as i8));
        }
        let (mut fast, mut reference) = ([0u32; 32], [0u32; 32]);
        let sums = (
            (KERNELS.operands)(&q.0, &mut fast),
            operands(&q.0, &mut reference),
        );
        if sums.0 != sums.1 || fast != reference {
            defmt::println!(
                "error: the operand kernels disagree in round {=usize}",
                round
            );
            return Err(());
        }
        // Byte rows: random bytes, operands, init and starts.
        let inputs = [64, 35, 7][round % 3];
        let mut weights = Bytes([0u8; 64 * ROWS]);
        weights.0.iter_mut().for_each(|b| *b = next_u32() as u8);
        starts.0.iter_mut().for_each(|b| *b = next_u32() as u8);
        let pairs: [u32; 32] = core::array::from_fn(|_| next_u32());
        let pairs = &pairs[..2 * (inputs / 4)];
        let init = next_u32() as i32;
        let (mut fast, mut reference) = ([0i32; ROWS], [0i32; ROWS]);
        let (w, s) = (&weights.0[..inputs * ROWS], &starts.0);
        (KERNELS.rows)(w, inputs, pairs, init, s, &mut fast);
        rows_portable(w, inputs, pairs, init, s, &mut reference);
        if fast != reference {
            defmt::println!("error: the row kernels disagree in round {=usize}", round);
            return Err(());
        }
    }
    Ok(())
}

/// Ticks of 64 calls of the installed wide kernel on a layer of 64 × 64 (4096 MACs), call
/// included: the cost of the multiply–accumulates alone.
#[inline(never)]
fn count_kernel() {
    #[repr(align(4))]
    struct Weights([u8; 4 * 32 * 64]);
    // In flash, as a model's weights are.
    static WEIGHTS: Weights = Weights([0x35; 4 * 32 * 64]);
    let levels: [u32; 32] = core::array::from_fn(|i| (i as u32).wrapping_mul(0x9E37_79B9));
    #[repr(align(4))]
    struct Starts([u8; 4 * 64]);
    let starts = Starts([0; 4 * 64]);
    let mut totals = [0i32; 64];
    let start = ticks();
    for _ in 0..64 {
        (KERNELS.wide)(
            core::hint::black_box(&WEIGHTS.0),
            32,
            core::hint::black_box(&levels),
            &starts.0,
            &mut totals,
        );
    }
    defmt::println!("count kernel_ticks_x64_4096mac {=u64}", ticks() - start);
    core::hint::black_box(totals);
}

/// A panic is reported as a defmt frame and ends the run with a failure status.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    match info.location() {
        Some(l) => defmt::println!("error: panic at {=str}:{=u32}", l.file(), l.line()),
        None => defmt::println!("error: panic"),
    }
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

/// A fault (bad memory access, undefined instruction) is reported and ends the run.
#[cortex_m_rt::exception]
unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
    defmt::println!("error: hard fault at pc {=u32:08x}", frame.pc());
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

/// Bytes of stack ever used: cortex-m-rt's `paint-stack` fills the stack with
/// `STACK_PAINT_VALUE` before `main`; the lowest word no longer holding it marks the deepest
/// the stack has reached.
fn stack_high_water() -> usize {
    extern "C" {
        static _stack_start: u32;
        static _stack_end: u32;
    }
    // The linker script defines both symbols as the stack's bounds; only their addresses
    // are taken.
    let (top, bottom) = (
        core::ptr::addr_of!(_stack_start) as usize,
        core::ptr::addr_of!(_stack_end) as usize,
    );
    let mut address = bottom;
    while address < top {
        // SAFETY: `address` is word-aligned and inside the stack region.
        let word = unsafe { core::ptr::read_volatile(address as *const u32) };
        if word != cortex_m_rt::STACK_PAINT_VALUE {
            break;
        }
        address += 4;
    }
    top - address
}
