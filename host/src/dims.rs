//! The state dimensions the command line handles, and which of them are compiled.
//!
//! The core's states are `[f32; N]`, so each state size compiled is its own copy of every
//! sampler, score and plot. The host compiles the sizes 1 to 4 (the common data) and 8, 16,
//! 32 and 64, and runs a dimension between them in the next size up, padded: the noise
//! streams draw only the data's coordinates
//! ([`GaussianStream::with_coordinates`](tinyscore::GaussianStream::with_coordinates)), the
//! scores are 0 in the padding
//! ([`NeuralScore::padded`](tinyscore::NeuralScore::padded),
//! [`GaussianMixture::with_coordinates`](tinyscore::GaussianMixture::with_coordinates)),
//! which therefore stays 0, and every sampler works coordinate by coordinate, so the data's
//! coordinates get the bits of an unpadded state (`tests/tests/padded_states.rs` checks every
//! dimension against its own compiled size). Eight copies instead of 64 cut the host's
//! release build to a fraction; a padded run costs at most twice the arithmetic of its own
//! size.

/// The largest state dimension the command line handles (models, mixtures and data of 1 to
/// `MAX_DIM` coordinates).
pub const MAX_DIM: usize = tinyscore::model::MAX_DIM as usize;

/// The state sizes compiled, smallest first.
pub const STATE_SIZES: [usize; 8] = [1, 2, 3, 4, 8, 16, 32, 64];

/// The compiled state size that runs data of `dim` coordinates: the smallest of
/// [`STATE_SIZES`] that holds them (`None` for 0 or more than [`MAX_DIM`]).
pub fn state_size(dim: usize) -> Option<usize> {
    STATE_SIZES.into_iter().find(|&size| size >= dim && dim > 0)
}

/// Calls the function `$f::<N>(args…)` with `N` the compiled state size for the run-time
/// dimension `$dim` ([`state_size`]), which must be 1 to [`MAX_DIM`]; `$f` runs data of
/// `$dim` coordinates in states of `N`, padded beyond them.
#[macro_export]
macro_rules! with_dim {
    ($dim:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $crate::dims::state_size($dim) {
            Some(1) => $f::<1>($($arg),*),
            Some(2) => $f::<2>($($arg),*),
            Some(3) => $f::<3>($($arg),*),
            Some(4) => $f::<4>($($arg),*),
            Some(8) => $f::<8>($($arg),*),
            Some(16) => $f::<16>($($arg),*),
            Some(32) => $f::<32>($($arg),*),
            Some(64) => $f::<64>($($arg),*),
            _ => Err(anyhow::anyhow!(
                "{}-dimensional states: tinyscore handles 1 to {} dimensions",
                $dim,
                $crate::dims::MAX_DIM
            )),
        }
    };
}

/// The first `dim` coordinates of each of `rows`: padded states back to the data's.
pub fn unpad<const N: usize>(rows: &[[f32; N]], dim: usize) -> Vec<f32> {
    let dim = dim.min(N);
    rows.iter().flat_map(|row| &row[..dim]).copied().collect()
}
