//! The state dimensions the command line handles: the core's states are `[f32; N]`, so each
//! dimension compiled is its own code.

/// The largest state dimension the command line handles (models, mixtures and data of 1 to
/// `MAX_DIM` coordinates).
pub const MAX_DIM: usize = tinyscore::model::MAX_DIM as usize;

/// Calls the function `$f::<N>(args…)` with `N` the run-time dimension `$dim`, which must be
/// 1 to [`MAX_DIM`]: the core's states are `[f32; N]`, so each dimension is its own code.
#[macro_export]
macro_rules! with_dim {
    ($dim:expr, $f:ident($($arg:expr),* $(,)?)) => {
        seq_macro::seq!(N in 1..=64 {
            match $dim {
                #( N => $f::<N>($($arg),*), )*
                d => Err(anyhow::anyhow!(
                    "{d}-dimensional states: tinyscore handles 1 to {} dimensions",
                    $crate::dims::MAX_DIM
                )),
            }
        })
    };
}
