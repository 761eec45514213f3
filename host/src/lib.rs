//! The desktop side of tinyscore, the library behind the `tinyscore` command: data sets and
//! point lists, the model file, training, quantization, sampling, likelihoods, metrics, plots and the
//! firmware in QEMU. It knows nothing of argument parsing; the command layer (`src/cmd/`)
//! reads each input once and passes parsed values down.

pub mod bench;
pub mod data;
pub mod demo;
pub mod dims;
pub mod firmware;
pub mod io;
pub mod likelihood;
pub mod metrics;
pub mod model_file;
pub mod plot;
pub mod points;
pub mod progress;
pub mod quantize;
pub mod sampling;
pub mod schedule;
pub mod simd;
pub mod tflite;
pub mod train;
