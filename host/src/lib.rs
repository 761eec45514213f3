//! The desktop side of tinyscore: datasets, metrics, parallel sampling and file I/O behind the
//! `tinyscore` command.

pub mod bench;
pub mod datasets;
pub mod demo;
pub mod firmware;
pub mod io;
pub mod langevin;
pub mod metrics;
pub mod model_file;
pub mod options;
pub mod plot;
pub mod quantize;
pub mod sampling;
pub mod simd;
pub mod train;
