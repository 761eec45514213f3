//! The packed int8 kernels in Cortex-M4 assembly, behind safe functions that fall back to the
//! portable kernels where a slice does not fit (see `tinyscore::model::packed` for the
//! layout and the algebra):
//!
//! - [`rows`]: two multiply–accumulates per `SMLAD`, three instructions per weight word. One
//!   inner iteration takes sixteen words of four interleaved rows (256 MACs, a whole row of a
//!   64-input layer): sixteen `LDM` for the input operands, sixteen for the weights, 192
//!   multiply instructions and the loop's `SUBS`/`BNE` — 226 instructions, 0.883 per MAC; a
//!   second loop takes the words left over one at a time (16 MACs in 16 instructions). Each
//!   group of four rows adds 23: start the sums, rewind the operands, enter the loops, shift
//!   the sums and add their starts (the biases, or the first layer's shared time part), store
//!   them, step to the next group. A last group of one to three rows (the output layer of 2-D
//!   data) runs a row at a time: 8 instructions a word.
//! - [`activate`]: a hidden layer's requantization and SiLU table, 14 instructions a channel.
//! - [`operands`]: a layer input's operand words, 10 instructions a word of four inputs.
//!
//! Each gives the bits of its portable kernel: the `count` build checks all three on random
//! inputs on the chip and whole evaluations against the portable kernels, and the
//! host-against-firmware tests compare whole samples bit for bit.

use core::ops::Range;

use tinyscore::model::packed::{
    activate_portable, operands as operands_portable, rows_portable, GROUP_ROWS,
};

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
    // CBZ reaches 126 bytes forward; the loop is 900.
    "cmp r2, #0",
    "beq 3f",
    "1:",
    step!(),
    step!(),
    step!(),
    step!(),
    step!(),
    step!(),
    step!(),
    step!(),
    step!(),
    step!(),
    step!(),
    step!(),
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

// tinyscore_activate_smlad(totals: r0, multipliers: r1, shifts: r2, shape: r3 = &[channels,
// 1 + 2·pre, address of lut[128], address of levels]): channels > 0, multipliers
// word-aligned. Per channel, with k the total, M the multiplier and e = −shift ≥ 1:
//   x = SMMULR(2k, M) = ⌊(k·M + 2³⁰) / 2³¹⌋        the doubling high multiply, as |k| < 2³⁰
//   y = (x + (x >> 31)) >> (e − 1)                   e − 1 = ¬shift
//   q = SSAT₈((y + 1 + 2·pre) >> 1)                  = ⌊(x' + 2^(e−1)) / 2^e⌋ + pre, clamped
// which rounds x / 2^e half away from zero (x' = x − 1 when x < 0), as gemmlowp does; then
// the table entry q + 128.
core::arch::global_asm!(
    ".section .text.tinyscore_activate_smlad,\"ax\",%progbits",
    ".global tinyscore_activate_smlad",
    ".p2align 2",
    ".thumb_func",
    ".type tinyscore_activate_smlad, %function",
    "tinyscore_activate_smlad:",
    "push {{r4-r9, lr}}",
    "ldm r3, {{r4, r5, r6, r7}}",
    "1:",
    "ldr r8, [r0], #4",
    "ldr r9, [r1], #4",
    "lsls r8, r8, #1",
    "smmulr r8, r8, r9",
    "ldrsb r9, [r2], #1",
    "mvns r9, r9",
    "add r8, r8, r8, asr #31",
    "asrs r8, r8, r9",
    "add r8, r8, r5",
    "ssat r8, #8, r8, asr #1",
    "ldrb r8, [r6, r8]",
    "strb r8, [r7], #1",
    "subs r4, r4, #1",
    "bne 1b",
    "pop {{r4-r9, pc}}",
    ".size tinyscore_activate_smlad, . - tinyscore_activate_smlad",
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
    fn tinyscore_activate_smlad(
        totals: *const i32,
        multipliers: *const u8,
        shifts: *const u8,
        shape: *const [usize; 4],
        levels: *mut i8,
    );
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
}

/// Words (of each row) one iteration of the assembly's main loop takes.
const UNROLL: usize = 16;

/// The packed kernel (a `tinyscore::model::packed::RowsKernel`): the assembly loops where
/// the weights are word-aligned and hold the whole layer, the portable kernel otherwise.
pub fn rows(
    weights: &[u8],
    inputs: usize,
    words: Range<usize>,
    operands: &[u32],
    init: i32,
    starts: &[u8],
    acc: &mut [i32],
) {
    let count = words.end.saturating_sub(words.start);
    let groups = acc.len() / GROUP_ROWS;
    let rest = acc.len() % GROUP_ROWS;
    let group_bytes = GROUP_ROWS * inputs;
    let rest_start = groups * group_bytes + 4 * rest * words.start;
    let fits = count > 0
        && words.end <= inputs / 4
        && weights.len() >= groups * group_bytes + 4 * rest * words.end
        && operands.len() >= 2 * count
        && starts.len() >= 4 * acc.len()
        && (weights.as_ptr() as usize).is_multiple_of(4)
        && (starts.as_ptr() as usize).is_multiple_of(4);
    if !fits {
        rows_portable(weights, inputs, words, operands, init, starts, acc);
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
        // SAFETY: group g reads the 16·count bytes at 16·words.start + g·group_bytes (a
        // multiple of 4 from a word-aligned start), operands[..2·count] and the starts of its
        // rows, all within the slices checked above; it writes acc[..4·groups] and restores
        // the registers AAPCS makes it keep.
        unsafe {
            tinyscore_groups_smlad(
                weights.as_ptr().add(16 * words.start),
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

/// The activation kernel (a `tinyscore::model::packed::ActivationKernel`): 14 instructions
/// a channel in assembly (the portable one takes about 30 on this core), for the range the
/// kernel type states; the portable kernel where the slices are short or the multipliers
/// not word-aligned.
pub fn activate(
    totals: &[i32],
    multipliers: &[u8],
    shifts: &[u8],
    pre: i32,
    lut: &[u8; 256],
    levels: &mut [i8],
) {
    let channels = levels.len();
    let fits = channels > 0
        && totals.len() >= channels
        && multipliers.len() >= 4 * channels
        && shifts.len() >= channels
        && (multipliers.as_ptr() as usize).is_multiple_of(4);
    if !fits {
        activate_portable(totals, multipliers, shifts, pre, lut, levels);
        return;
    }
    let shape = [
        channels,
        (1 + 2 * pre) as usize,
        lut.as_ptr() as usize + 128,
        levels.as_mut_ptr() as usize,
    ];
    // SAFETY: reads totals[..channels], multipliers[..4·channels] (word-aligned),
    // shifts[..channels] and lut[q + 128] for a q the SSAT keeps in −128..=127; writes
    // levels[..channels]; restores the registers AAPCS makes it keep.
    unsafe {
        tinyscore_activate_smlad(
            totals.as_ptr(),
            multipliers.as_ptr(),
            shifts.as_ptr(),
            &shape,
            levels.as_mut_ptr(),
        )
    };
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
