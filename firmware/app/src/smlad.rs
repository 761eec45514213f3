//! The packed int8 kernels in Cortex-M4 assembly, behind safe functions that fall back to the
//! portable kernels where a slice does not fit (see `tinyscore::model::packed` for the
//! layout and the algebra):
//!
//! - [`wide_activation`] and [`wide`]: the wide parts (16-bit weights), two multiply–
//!   accumulates per `SMLAD`, in one assembly function for groups of four rows. One step takes
//!   two words of four interleaved rows (16 MACs): one `LDM` for the two input words, two for
//!   the weights, eight `SMLAD` — 11 instructions, 0.69 per MAC; eight steps make one iteration
//!   of the main loop, and the words left over go two, then one, at a time. Each group ends
//!   either with the requantization and SiLU table of its four channels, fused (11
//!   instructions a channel; 10 for a model with single rounding), writing the levels as the next layer's 16-bit pairs
//!   ([`wide_activation`], the hidden layers), or by storing its four sums ([`wide`], the
//!   output layer). [`wide`] takes a last group of one to three rows (the output layer of 2-D
//!   data) a row at a time, four words in six instructions.
//! - [`rows`]: the byte part (the first layer's time features, summed once for all points):
//!   three instructions per word of four weights; one inner iteration takes four words of
//!   four interleaved rows (64 MACs in 58 instructions), a second loop the words left over;
//!   a last group of one to three rows runs a row at a time.
//! - [`operands`]: the byte part's operand words, 10 instructions a word of four inputs.
//!
//! Each gives the bits of its portable kernel: the `count` build checks all four on random
//! inputs on the chip and whole evaluations against the portable kernels, and the
//! host-against-firmware tests compare whole samples bit for bit.

use tinyscore::model::packed::{
    operands as operands_portable, rows_portable, wide_activation_portable, wide_portable,
    Requantization, GROUP_ROWS,
};
#[cfg(feature = "int16x8")]
use tinyscore::model::packed::{wide_activation16_portable, Requantization16};
use tinyscore::model::Rounding;

/// One step: the operands `A, B` of word `k` into r8, r9, word `k` of the four rows into
/// r10, r11, r12, lr, and `acc_r += SMLAD(W_r, A) + SMLAD(UXTB16(W_r), B)` into r4..r7.
macro_rules! step {
    () => {
        "ldm r1!, {{r8, r9}}
         ldm r0!, {{r10, r11, r12, lr}}
         smlad r4, r10, r8, r4
         uxtb16 r10, r10
         smlad r4, r10, r9, r4
         smlad r5, r11, r8, r5
         uxtb16 r11, r11
         smlad r5, r11, r9, r5
         smlad r6, r12, r8, r6
         uxtb16 r12, r12
         smlad r6, r12, r9, r6
         smlad r7, lr, r8, r7
         uxtb16 lr, lr
         smlad r7, lr, r9, r7"
    };
}

// tinyscore_groups_smlad(weights: r0, operands: r1, shape: r2 = &[iterations of four
// words, groups, bytes from a group's last word to the next group, single words, init,
// address of the starts], acc: r3). Groups > 0, words (4·iterations + singles) > 0; weights
// and starts word-aligned. Each row's sum starts from init and ends as (sum >> 8) + start.
core::arch::global_asm!(
    ".section .text.tinyscore_groups_smlad,\"ax\",%progbits",
    ".global tinyscore_groups_smlad",
    ".p2align 2",
    ".thumb_func",
    ".type tinyscore_groups_smlad, %function",
    "tinyscore_groups_smlad:",
    "push {{r4-r11, lr}}",
    "ldm r2, {{r4, r5, r6, r7, r8, r9}}",
    // [sp] operands, [sp, #4] iterations, [sp, #8] the end of acc, [sp, #12] skip bytes,
    // [sp, #16] single words, [sp, #20] init, [sp, #24] starts.
    "add r5, r3, r5, lsl #4",
    "push {{r1, r4, r5, r6, r7, r8, r9}}",
    "2:",
    "ldr r4, [sp, #20]",
    "mov r5, r4",
    "mov r6, r4",
    "mov r7, r4",
    "ldr r1, [sp]",
    "ldr r2, [sp, #4]",
    // CBZ reaches 126 bytes forward; the loop is 228.
    "cmp r2, #0",
    "beq 3f",
    "1:",
    step!(),
    step!(),
    step!(),
    step!(),
    "subs r2, r2, #1",
    "bne 1b",
    "3:",
    "ldr r2, [sp, #16]",
    "cbz r2, 5f",
    "4:",
    step!(),
    "subs r2, r2, #1",
    "bne 4b",
    "5:",
    "ldr r2, [sp, #24]",
    "ldm r2!, {{r8, r9, r10, r11}}",
    "str r2, [sp, #24]",
    "add r4, r8, r4, asr #8",
    "add r5, r9, r5, asr #8",
    "add r6, r10, r6, asr #8",
    "add r7, r11, r7, asr #8",
    "stm r3!, {{r4-r7}}",
    "ldr r2, [sp, #12]",
    "add r0, r0, r2",
    "ldr r2, [sp, #8]",
    "cmp r3, r2",
    "bne 2b",
    "add sp, sp, #28",
    "pop {{r4-r11, pc}}",
    ".size tinyscore_groups_smlad, . - tinyscore_groups_smlad",
);

// tinyscore_rows_smlad(weights: r0, operands: r1, shape: r2 = &[words, rows, init, address
// of the starts], acc: r3): one group of `rows` rows, row r's word k at weights + 4·r +
// 4·rows·k, each ending as (sum >> 8) + start. Both counts > 0; weights word-aligned.
core::arch::global_asm!(
    ".section .text.tinyscore_rows_smlad,\"ax\",%progbits",
    ".global tinyscore_rows_smlad",
    ".p2align 2",
    ".thumb_func",
    ".type tinyscore_rows_smlad, %function",
    "tinyscore_rows_smlad:",
    "push {{r4-r11, lr}}",
    "ldm r2, {{r4, r5, r7, r8}}",
    // [sp] init, [sp, #4] starts.
    "push {{r7, r8}}",
    "lsls r6, r5, #2",
    "2:",
    "ldr r7, [sp]",
    "mov r8, r0",
    "mov r9, r1",
    "mov r10, r4",
    "1:",
    "ldr r11, [r8]",
    "add r8, r8, r6",
    "ldrd r12, lr, [r9], #8",
    "smlad r7, r11, r12, r7",
    "uxtb16 r11, r11",
    "smlad r7, r11, lr, r7",
    "subs r10, r10, #1",
    "bne 1b",
    "ldr r11, [sp, #4]",
    "ldr r12, [r11], #4",
    "str r11, [sp, #4]",
    "add r7, r12, r7, asr #8",
    "str r7, [r3], #4",
    "adds r0, r0, #4",
    "subs r5, r5, #1",
    "bne 2b",
    "add sp, sp, #8",
    "pop {{r4-r11, pc}}",
    ".size tinyscore_rows_smlad, . - tinyscore_rows_smlad",
);

/// Two words of a wide part: input words `k`, `k + 1` into r8, r9, word `k` of the four rows
/// into r10, r11, r12, lr, then word `k + 1`, and `acc_r += SMLAD(W_r, level)` into r4..r7.
macro_rules! wide_double {
    () => {
        "ldm r1!, {{r8, r9}}
         ldm r0!, {{r10, r11, r12, lr}}
         smlad r4, r10, r8, r4
         smlad r5, r11, r8, r5
         smlad r6, r12, r8, r6
         smlad r7, lr, r8, r7
         ldm r0!, {{r10, r11, r12, lr}}
         smlad r4, r10, r9, r4
         smlad r5, r11, r9, r5
         smlad r6, r12, r9, r6
         smlad r7, lr, r9, r7"
    };
}

/// One channel's requantization and table lookup (see the comment of
/// `tinyscore_wide_groups`) of the total in `$x`, with the multipliers at r2, the shifts at
/// r8, `1 + 2·pre` in r9 and the table's middle in r10; the level goes out as an i16 at r3.
/// The multiply and the step before the shift are the model's rounding's
/// (`high_multiply`, `toward_zero`).
#[rustfmt::skip] // One instruction a line.
macro_rules! wide_activate {
    ($x:literal) => {
        concat!(
            "ldr r12, [r2], #4\n",
            "lsls ", $x, ", ", $x, ", #1\n",
            high_multiply!(), " ", $x, ", ", $x, ", r12\n",
            "ldrsb r12, [r8], #1\n",
            "mvns r12, r12\n",
            toward_zero!($x),
            "asrs ", $x, ", ", $x, ", r12\n",
            "add ", $x, ", ", $x, ", r9\n",
            "ssat ", $x, ", #8, ", $x, ", asr #1\n",
            "ldrsb ", $x, ", [r10, ", $x, "]\n",
            "strh ", $x, ", [r3], #2\n",
        )
    };
}

/// [`wide_activate`] for int16 activations (zero point 0): the same requantization, saturated
/// to int16, then the interpolated SiLU table with its middle knot (level 0) at r10: knot
/// `256 + (q >> 7)` and the next, `base + ((next − base)·(q & 127) + 64) >> 7`, as
/// `tinyscore::model::quant::silu_int16` computes it. r11 and lr are free here (the wide
/// steps' registers), and r9 (1 + 2·pre for int8) is not used.
#[cfg(feature = "int16x8")]
#[rustfmt::skip] // One instruction a line.
macro_rules! wide_activate16 {
    ($x:literal) => {
        concat!(
            "ldr r12, [r2], #4\n",
            "lsls ", $x, ", ", $x, ", #1\n",
            high_multiply!(), " ", $x, ", ", $x, ", r12\n",
            "ldrsb r12, [r8], #1\n",
            "mvns r12, r12\n",
            toward_zero!($x),
            "asrs ", $x, ", ", $x, ", r12\n",
            "adds ", $x, ", ", $x, ", #1\n",
            "ssat ", $x, ", #16, ", $x, ", asr #1\n",
            "asrs r11, ", $x, ", #7\n",
            "add r11, r10, r11, lsl #1\n",
            "ldrsh r12, [r11]\n",
            "ldrsh lr, [r11, #2]\n",
            "subs lr, lr, r12\n",
            "and r11, ", $x, ", #127\n",
            "mul lr, lr, r11\n",
            "adds lr, lr, #64\n",
            "add ", $x, ", r12, lr, asr #7\n",
            "strh ", $x, ", [r3], #2\n",
        )
    };
}

/// Double rounding: the doubling high multiply rounds (`SMMULR`), and the shift rounds half
/// away from zero (`x − 1` for a negative `x` first).
#[cfg(not(tinyscore_single_rounding))]
macro_rules! high_multiply {
    () => {
        "smmulr"
    };
}
#[cfg(not(tinyscore_single_rounding))]
macro_rules! toward_zero {
    ($x:literal) => {
        concat!("add ", $x, ", ", $x, ", ", $x, ", asr #31\n")
    };
}

/// Single rounding: the multiply truncates (`SMMUL`), and the shift rounds ties up, one
/// instruction fewer (see `tinyscore_wide_groups`).
#[cfg(tinyscore_single_rounding)]
macro_rules! high_multiply {
    () => {
        "smmul"
    };
}
#[cfg(tinyscore_single_rounding)]
macro_rules! toward_zero {
    ($x:literal) => {
        ""
    };
}

/// The rounding the fused activation of this build computes (the baked model's).
const FUSED_ROUNDING: Rounding = if cfg!(tinyscore_single_rounding) {
    Rounding::Single
} else {
    Rounding::Double
};

// tinyscore_wide_groups(weights: r0, levels: r1, shape: r2 = &[iterations of sixteen words,
// steps of two, single word (0 or 1), the end of out, address of the starts, address of the
// multipliers (0: no activation), address of the shifts, 1 + 2·pre, address of lut[128]],
// out: r3). Groups of four rows, words > 0; weights, starts and multipliers word-aligned.
// Each row's total is start + Σ SMLAD; without an activation the four totals go out as i32.
// With one, per channel, with k the total, M the multiplier and e = −shift ≥ 1:
//   x = SMMULR(2k, M) = ⌊(k·M + 2³⁰) / 2³¹⌋        the doubling high multiply, as |k| < 2³⁰
//   y = (x + (x >> 31)) >> (e − 1)                   e − 1 = ¬shift
//   q = SSAT₈((y + 1 + 2·pre) >> 1)                  = ⌊(x' + 2^(e−1)) / 2^e⌋ + pre, clamped
// which rounds x / 2^e half away from zero (x' = x − 1 when x < 0), as gemmlowp does; then
// the table entry q + 128, sign-extended, goes out as the i16 level. With the model's single
// rounding (a build for such a model):
//   x = SMMUL(2k, M) = ⌊k·M / 2³¹⌋
//   q = SSAT₈((x >> (e − 1)) + 1 + 2·pre) >> 1)      = ⌊(x + 2^(e−1)) / 2^e⌋ + pre, clamped
// which is ⌊(k·M + 2^(30+e)) / 2^(31+e)⌋ + pre: the 64-bit product rounded once, ties up
// (adding 2^(e−1)·2³¹ after the floor of k·M / 2³¹ changes no bit of the quotient).
macro_rules! wide_groups_function {
    ($name:literal, $activate:ident) => {
        core::arch::global_asm!(
            concat!(".section .text.", $name, ",\"ax\",%progbits"),
            concat!(".global ", $name),
            ".p2align 2",
            ".thumb_func",
            concat!(".type ", $name, ", %function"),
            concat!($name, ":"),
            "push {{r4-r11, lr}}",
            "ldm r2, {{r4-r12}}",
            // [sp] levels, [sp, #4] iterations, [sp, #8] steps, [sp, #12] single, [sp, #16] the end
            // of out, [sp, #20] starts, [sp, #24] multipliers, [sp, #28] shifts, [sp, #32]
            // 1 + 2·pre, [sp, #36] lut + 128.
            "push {{r1, r4-r12}}",
            "2:",
            "ldr r2, [sp, #20]",
            "ldm r2!, {{r4-r7}}",
            "str r2, [sp, #20]",
            "ldr r1, [sp]",
            "ldr r2, [sp, #4]",
            // CBZ reaches 126 bytes forward; the loop is 322.
            "cmp r2, #0",
            "beq 3f",
            "1:",
            wide_double!(),
            wide_double!(),
            wide_double!(),
            wide_double!(),
            wide_double!(),
            wide_double!(),
            wide_double!(),
            wide_double!(),
            "subs r2, r2, #1",
            "bne 1b",
            "3:",
            "ldr r2, [sp, #8]",
            "cbz r2, 5f",
            "4:",
            wide_double!(),
            "subs r2, r2, #1",
            "bne 4b",
            "5:",
            "ldr r2, [sp, #12]",
            "cbz r2, 6f",
            "ldr r8, [r1], #4",
            "ldm r0!, {{r10, r11, r12, lr}}",
            "smlad r4, r10, r8, r4",
            "smlad r5, r11, r8, r5",
            "smlad r6, r12, r8, r6",
            "smlad r7, lr, r8, r7",
            "6:",
            "add r1, sp, #24",
            "ldm r1, {{r2, r8, r9, r10}}",
            "cbnz r2, 7f",
            "stm r3!, {{r4-r7}}",
            "b 8f",
            "7:",
            $activate!("r4"),
            $activate!("r5"),
            $activate!("r6"),
            $activate!("r7"),
            "stm r1, {{r2, r8}}",
            "8:",
            "ldr r2, [sp, #16]",
            "cmp r3, r2",
            "bne 2b",
            "add sp, sp, #40",
            "pop {{r4-r11, pc}}",
            concat!(".size ", $name, ", . - ", $name),
        );
    };
}

wide_groups_function!("tinyscore_wide_groups", wide_activate);
#[cfg(feature = "int16x8")]
wide_groups_function!("tinyscore_wide_groups16", wide_activate16);

// tinyscore_wide_rows(weights: r0, levels: r1, shape: r2 = &[runs of four words, single
// words, rows, address of the starts], totals: r3): rows of a wide part one after another,
// each start + Σ SMLAD. Rows > 0, words (4·runs + singles) > 0; starts word-aligned.
core::arch::global_asm!(
    ".section .text.tinyscore_wide_rows,\"ax\",%progbits",
    ".global tinyscore_wide_rows",
    ".p2align 2",
    ".thumb_func",
    ".type tinyscore_wide_rows, %function",
    "tinyscore_wide_rows:",
    "push {{r4-r11, lr}}",
    "ldm r2, {{r4, r5, r6, r7}}",
    // [sp] levels, [sp, #4] runs, [sp, #8] singles, [sp, #12] rows left, [sp, #16] starts.
    "push {{r1, r4, r5, r6, r7}}",
    "2:",
    "ldr r6, [sp, #16]",
    "ldr r2, [r6], #4",
    "str r6, [sp, #16]",
    "ldr r1, [sp]",
    "ldr lr, [sp, #4]",
    "cmp lr, #0",
    "beq 3f",
    "1:",
    "ldm r0!, {{r4, r5, r6, r7}}",
    "ldm r1!, {{r8, r9, r10, r11}}",
    "smlad r2, r4, r8, r2",
    "smlad r2, r5, r9, r2",
    "smlad r2, r6, r10, r2",
    "smlad r2, r7, r11, r2",
    "subs lr, lr, #1",
    "bne 1b",
    "3:",
    "ldr lr, [sp, #8]",
    "cmp lr, #0",
    "beq 5f",
    "4:",
    "ldr r4, [r0], #4",
    "ldr r8, [r1], #4",
    "smlad r2, r4, r8, r2",
    "subs lr, lr, #1",
    "bne 4b",
    "5:",
    "str r2, [r3], #4",
    "ldr lr, [sp, #12]",
    "subs lr, lr, #1",
    "str lr, [sp, #12]",
    "bne 2b",
    "add sp, sp, #20",
    "pop {{r4-r11, pc}}",
    ".size tinyscore_wide_rows, . - tinyscore_wide_rows",
);

// tinyscore_operands_smlad(q: r0, words: r1, operands: r2) -> Σ (q₀ + q₂): words > 0, q
// word-aligned. For the word X = [q₀, q₁, q₂, q₃]:
//   A = SSUB16(SXTB16(X ror 8), (127, 127))       = (q₁ − 127, q₃ − 127)
//   B = SSUB16((X << 8) & 0xFF00FF00, A)          = (256·q₀ + 127 − q₁, 256·q₂ + 127 − q₃)
// (256·(q mod 256) read as a signed half is 256·q), and SXTAB16 adds (q₀, q₂) to two
// halves that cannot overflow (64 words of |q| ≤ 128 at most).
core::arch::global_asm!(
    ".section .text.tinyscore_operands_smlad,\"ax\",%progbits",
    ".global tinyscore_operands_smlad",
    ".p2align 2",
    ".thumb_func",
    ".type tinyscore_operands_smlad, %function",
    "tinyscore_operands_smlad:",
    "push {{r4-r7, lr}}",
    "movs r3, #0",
    "mov r12, #0x007F007F",
    "1:",
    "ldr r4, [r0], #4",
    "sxtb16 r5, r4, ror #8",
    "ssub16 r5, r5, r12",
    "lsls r6, r4, #8",
    "and r6, r6, #0xFF00FF00",
    "ssub16 r6, r6, r5",
    "sxtab16 r3, r3, r4",
    "strd r5, r6, [r2], #8",
    "subs r1, r1, #1",
    "bne 1b",
    "sxth r0, r3",
    "add r0, r0, r3, asr #16",
    "pop {{r4-r7, pc}}",
    ".size tinyscore_operands_smlad, . - tinyscore_operands_smlad",
);

extern "C" {
    fn tinyscore_operands_smlad(q: *const i8, words: usize, operands: *mut u32) -> i32;
    fn tinyscore_rows_smlad(
        weights: *const u8,
        operands: *const u32,
        shape: *const [usize; 4],
        acc: *mut i32,
    );
    fn tinyscore_groups_smlad(
        weights: *const u8,
        operands: *const u32,
        shape: *const [usize; 6],
        acc: *mut i32,
    );
    fn tinyscore_wide_groups(
        weights: *const u8,
        levels: *const u32,
        shape: *const [usize; 9],
        out: *mut u8,
    );
    fn tinyscore_wide_rows(
        weights: *const u8,
        levels: *const u32,
        shape: *const [usize; 4],
        totals: *mut i32,
    );
    #[cfg(feature = "int16x8")]
    fn tinyscore_wide_groups16(
        weights: *const u8,
        levels: *const u32,
        shape: *const [usize; 9],
        out: *mut u8,
    );
}

/// Words (of each row) one iteration of the byte kernel's main loop takes.
const UNROLL: usize = 4;

/// Words (of each row) one iteration of the wide kernels' main loop takes.
const WIDE_UNROLL: usize = 16;

/// Whether `bytes` starts on a word boundary.
fn word_aligned(bytes: &[u8]) -> bool {
    (bytes.as_ptr() as usize).is_multiple_of(4)
}

/// The byte-part kernel (a `tinyscore::model::packed::RowsKernel`): the assembly loops where
/// the weights are word-aligned and hold the whole part, the portable kernel otherwise.
pub fn rows(
    weights: &[u8],
    inputs: usize,
    operands: &[u32],
    init: i32,
    starts: &[u8],
    acc: &mut [i32],
) {
    let count = inputs / 4;
    let groups = acc.len() / GROUP_ROWS;
    let rest = acc.len() % GROUP_ROWS;
    let group_bytes = GROUP_ROWS.saturating_mul(inputs);
    let rest_start = groups.saturating_mul(group_bytes);
    let fits = count > 0
        && weights.len() >= rest_start.saturating_add(4 * rest * count)
        && operands.len() >= 2 * count
        && starts.len() >= 4 * acc.len()
        && word_aligned(weights)
        && word_aligned(starts);
    if !fits {
        rows_portable(weights, inputs, operands, init, starts, acc);
        return;
    }
    let (grouped, last) = acc.split_at_mut(groups * GROUP_ROWS);
    if groups > 0 {
        let shape = [
            count / UNROLL,
            groups,
            group_bytes - 16 * count,
            count % UNROLL,
            init as usize,
            starts.as_ptr() as usize,
        ];
        // SAFETY: group g reads the 16·count bytes at g·group_bytes (a multiple of 4 from a
        // word-aligned start), operands[..2·count] and the starts of its rows, all within the
        // slices checked above; it writes acc[..4·groups] and restores the registers AAPCS
        // makes it keep.
        unsafe {
            tinyscore_groups_smlad(
                weights.as_ptr(),
                operands.as_ptr(),
                &shape,
                grouped.as_mut_ptr(),
            )
        };
    }
    if rest > 0 {
        let shape = [
            count,
            rest,
            init as usize,
            starts.as_ptr() as usize + 4 * 4 * groups,
        ];
        // SAFETY: the last group's rows read the 4·rest·count bytes from rest_start (a multiple
        // of 4), operands[..2·count] and their starts, within the slices checked above; they
        // write the rest rows of acc.
        unsafe {
            tinyscore_rows_smlad(
                weights.as_ptr().add(rest_start),
                operands.as_ptr(),
                &shape,
                last.as_mut_ptr(),
            )
        };
    }
}

/// Whether a wide part of `rows` rows of `pairs` words fits the assembly: some words, the
/// levels, the weights and the starts all there, weights and starts word-aligned.
fn wide_fits(weights: &[u8], pairs: usize, levels: &[u32], starts: &[u8], rows: usize) -> bool {
    pairs > 0
        && levels.len() >= pairs
        && weights.len() >= pairs.saturating_mul(4).saturating_mul(rows)
        && starts.len() >= rows.saturating_mul(4)
        && word_aligned(weights)
        && word_aligned(starts)
}

/// The wide kernel's loop counts for `pairs` words: iterations of [`WIDE_UNROLL`], steps of
/// two, and a last single word.
fn wide_counts(pairs: usize) -> [usize; 3] {
    [pairs / WIDE_UNROLL, pairs % WIDE_UNROLL / 2, pairs % 2]
}

/// The wide kernel (a `tinyscore::model::packed::WideKernel`): the assembly where the slices
/// fit, the portable kernel otherwise.
pub fn wide(weights: &[u8], pairs: usize, levels: &[u32], starts: &[u8], totals: &mut [i32]) {
    let rows = totals.len();
    if !wide_fits(weights, pairs, levels, starts, rows) {
        wide_portable(weights, pairs, levels, starts, totals);
        return;
    }
    let groups = rows / GROUP_ROWS;
    let rest = rows % GROUP_ROWS;
    let (grouped, last) = totals.split_at_mut(groups * GROUP_ROWS);
    if groups > 0 {
        let [iterations, steps, single] = wide_counts(pairs);
        let out = grouped.as_mut_ptr() as *mut u8;
        let end = out as usize + 16 * groups;
        // Multipliers at 0: no activation.
        let starts = starts.as_ptr() as usize;
        let shape = [iterations, steps, single, end, starts, 0, 0, 0, 0];
        // SAFETY: reads the 16·pairs·groups bytes of the groups' weights (word-aligned),
        // levels[..pairs] and starts[..16·groups], within the slices checked above; writes
        // totals[..4·groups]; restores the registers AAPCS makes it keep.
        unsafe { tinyscore_wide_groups(weights.as_ptr(), levels.as_ptr(), &shape, out) };
    }
    if rest > 0 {
        let shape = [
            pairs / 4,
            pairs % 4,
            rest,
            starts.as_ptr() as usize + 16 * groups,
        ];
        // SAFETY: the rows left over read their 4·pairs·rest bytes after the groups' (a
        // multiple of 4 in), levels[..pairs] and their starts, within the slices checked
        // above; they write the rest of totals.
        unsafe {
            tinyscore_wide_rows(
                weights.as_ptr().add(16 * pairs * groups),
                levels.as_ptr(),
                &shape,
                last.as_mut_ptr(),
            )
        };
    }
}

/// The signature of the fused wide-groups assembly (`tinyscore_wide_groups` and its int16
/// twin).
type WideGroups = unsafe extern "C" fn(*const u8, *const u32, *const [usize; 9], *mut u8);

/// Runs `assembly` on the groups of four channels of a hidden layer where the slices fit,
/// its activation reading its table through `table` (the shape's last two words), and
/// returns the channels it did; `None` where they do not fit (the caller then runs the
/// portable kernel on every channel).
///
/// # Safety
/// `table` must be what `assembly`'s activation expects, so that every read it makes
/// through them is within its table.
#[inline(always)]
unsafe fn fused_groups(
    assembly: WideGroups,
    (weights, pairs, levels, starts): (&[u8], usize, &[u32], &[u8]),
    (multipliers, shifts, rounding): (&[u8], &[u8], Rounding),
    table: [usize; 2],
    levels_out: &mut [u32],
) -> Option<usize> {
    let channels = shifts.len();
    let groups = channels / GROUP_ROWS;
    let fits = groups > 0
        && rounding == FUSED_ROUNDING
        && wide_fits(weights, pairs, levels, starts, channels)
        && multipliers.len() >= 4 * channels
        && word_aligned(multipliers)
        && levels_out.len() >= channels.div_ceil(2);
    if !fits {
        return None;
    }
    let [iterations, steps, single] = wide_counts(pairs);
    let out = levels_out.as_mut_ptr() as *mut u8;
    let end = out as usize + 8 * groups;
    let shape = [
        iterations,
        steps,
        single,
        end,
        starts.as_ptr() as usize,
        multipliers.as_ptr() as usize,
        shifts.as_ptr() as usize,
        table[0],
        table[1],
    ];
    // SAFETY: as in `wide` for the groups' weights, levels and starts; reads
    // multipliers[..16·groups] (word-aligned) and shifts[..4·groups], and the table as the
    // caller promises; writes levels_out[..2·groups]; restores the registers AAPCS makes it
    // keep.
    unsafe { assembly(weights.as_ptr(), levels.as_ptr(), &shape, out) };
    Some(groups * GROUP_ROWS)
}

/// The wide activation kernel (a `tinyscore::model::packed::WideActivationKernel`): the
/// assembly for the groups of four channels where the slices fit, the portable kernel for
/// the channels left over and otherwise.
pub fn wide_activation(
    weights: &[u8],
    pairs: usize,
    levels: &[u32],
    starts: &[u8],
    requantization: &Requantization<'_>,
    levels_out: &mut [u32],
) {
    let Requantization {
        multipliers,
        shifts,
        pre,
        lut,
        rounding,
    } = *requantization;
    let table = [(1 + 2 * pre) as usize, lut.as_ptr() as usize + 128];
    // SAFETY: the activation reads lut[q + 128] for a q the SSAT keeps in −128..=127.
    let done = unsafe {
        fused_groups(
            tinyscore_wide_groups,
            (weights, pairs, levels, starts),
            (multipliers, shifts, rounding),
            table,
            levels_out,
        )
    };
    let done = done.unwrap_or(0);
    if done < shifts.len() {
        // The channels left over, one after another after the groups (an even count done, so
        // their levels start a word), or all of them.
        let rest = Requantization {
            multipliers: &multipliers[4 * done..],
            shifts: &shifts[done..],
            ..*requantization
        };
        wide_activation_portable(
            &weights[4 * pairs * done..],
            pairs,
            levels,
            &starts[4 * done..],
            &rest,
            &mut levels_out[done / 2..],
        );
    }
}

/// The int16 activation kernel (a `tinyscore::model::packed::WideActivation16Kernel`): the
/// assembly for the groups of four channels where the slices fit, the portable kernel for
/// the channels left over and otherwise.
#[cfg(feature = "int16x8")]
pub fn wide_activation16(
    weights: &[u8],
    pairs: usize,
    levels: &[u32],
    starts: &[u8],
    requantization: &Requantization16<'_>,
    levels_out: &mut [u32],
) {
    let Requantization16 {
        multipliers,
        shifts,
        knots,
        rounding,
    } = *requantization;
    // The knot of level 0, the table's 257th.
    let table = [0, knots.as_ptr() as usize + 512];
    // SAFETY: the activation reads knots[2·(256 + (q >> 7))..][..4] for a q the SSAT keeps in
    // the int16 range: within the 1 026 bytes.
    let done = unsafe {
        fused_groups(
            tinyscore_wide_groups16,
            (weights, pairs, levels, starts),
            (multipliers, shifts, rounding),
            table,
            levels_out,
        )
    };
    let done = done.unwrap_or(0);
    if done < shifts.len() {
        let rest = Requantization16 {
            multipliers: &multipliers[4 * done..],
            shifts: &shifts[done..],
            ..*requantization
        };
        wide_activation16_portable(
            &weights[4 * pairs * done..],
            pairs,
            levels,
            &starts[4 * done..],
            &rest,
            &mut levels_out[done / 2..],
        );
    }
}

/// The operands kernel (a `tinyscore::model::packed::OperandsKernel`): 10 instructions a
/// word of four inputs in assembly; the portable kernel where `q` is not word-aligned or
/// `operands` is short.
pub fn operands(q: &[i8], operands: &mut [u32]) -> i32 {
    let words = q.len() / 4;
    let fits = words > 0
        && words <= 64
        && operands.len() >= 2 * words
        && (q.as_ptr() as usize).is_multiple_of(4);
    if !fits {
        return operands_portable(q, operands);
    }
    // SAFETY: reads q[..4·words] (word-aligned) and writes operands[..2·words]; restores the
    // registers AAPCS makes it keep. At most 64 words keeps the halves of the even sum
    // from overflowing.
    unsafe { tinyscore_operands_smlad(q.as_ptr(), words, operands.as_mut_ptr()) }
}
