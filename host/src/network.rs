//! The score network on the host's widest vectors: [`neural_score`] is
//! `tinyscore::NeuralScore` with full batches run by a copy of the network compiled for
//! AVX2 when the CPU has it (checked at run time, so the binary still runs on any x86-64).
//! The network's arithmetic is scalar f32 and integer operations, which wider vectors do not
//! change (Rust never fuses a multiply and an add on its own), so the bits are the baseline
//! build's and the firmware's; `tests/tests/network_lanes.rs` checks it.

use tinyscore::model::{LanesForward, LANES, MAX_WIDTH};
use tinyscore::{Model, ModelError, NeuralScore};

/// The score of `model` (of dimension `N`), with the fastest batch evaluation this CPU runs.
pub fn neural_score<const N: usize>(model: Model<'_>) -> Result<NeuralScore<'_, N>, ModelError> {
    Ok(NeuralScore::new(model)?.with_lanes(fastest_lanes()))
}

/// The batch evaluation for this CPU.
pub fn fastest_lanes() -> LanesForward {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        return forward_lanes_avx2;
    }
    |model, a, t| model.forward_lanes(a, t)
}

/// [`Model::forward_lanes`] compiled for AVX2, falling back to the baseline copy on a CPU
/// without it.
#[cfg(target_arch = "x86_64")]
fn forward_lanes_avx2(model: &Model<'_>, a: &mut [[f32; LANES]; MAX_WIDTH], t: f32) {
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, the only feature `avx2_copy` is compiled for.
        unsafe { avx2_copy(model, a, t) }
    } else {
        model.forward_lanes(a, t)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2_copy(model: &Model<'_>, a: &mut [[f32; LANES]; MAX_WIDTH], t: f32) {
    model.forward_lanes(a, t)
}
