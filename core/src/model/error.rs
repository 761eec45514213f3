//! Why a model file was refused.

use crate::error::ParamError;
use core::fmt;

/// A `.tsm` model file that cannot be used, and why. No input makes the parser panic: every
/// malformed file maps to one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelError {
    /// The file does not start with `TSMF`.
    BadMagic,
    /// A format version this build cannot read.
    UnsupportedVersion {
        /// The version in the file.
        version: u16,
    },
    /// The file ends before the header, payload and checksum it declares.
    Truncated {
        /// Bytes the file needs.
        needed: usize,
        /// Bytes there are.
        available: usize,
    },
    /// The CRC-32 trailer does not match the contents.
    ChecksumMismatch {
        /// The trailer's value.
        stored: u32,
        /// The contents' CRC-32.
        computed: u32,
    },
    /// A dimension outside what the format allows.
    DimensionOutOfRange {
        /// Which dimension.
        field: &'static str,
        /// Its value in the file.
        value: u32,
        /// The largest value allowed.
        max: u32,
    },
    /// An enumerated field (precision, activation, SDE) has an unknown code.
    UnknownCode {
        /// Which field.
        field: &'static str,
        /// Its value in the file.
        value: u8,
    },
    /// The declared payload length does not match the dimensions, or the file is longer than
    /// it declares.
    InconsistentSize {
        /// Bytes the dimensions imply.
        expected: usize,
        /// Bytes found.
        found: usize,
    },
    /// A float that must be finite (weights, normalisation, scales) is NaN or ±∞.
    NonFinite {
        /// Its byte offset in the file.
        offset: usize,
    },
    /// A parameter outside its range (SDE parameters, normalisation std, end time).
    InvalidParameter(ParamError),
    /// A precision this build of the core leaves out (see its cargo features).
    LeftOut {
        /// The cargo feature that adds it.
        feature: &'static str,
    },
    /// The model's data dimension differs from the one the caller compiled for.
    DimensionMismatch {
        /// The model's dimension.
        model: u32,
        /// The caller's.
        expected: u32,
    },
}

impl From<ParamError> for ModelError {
    fn from(e: ParamError) -> Self {
        ModelError::InvalidParameter(e)
    }
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::BadMagic => f.write_str("not a tinyscore model (bad magic; expected `TSMF`)"),
            ModelError::UnsupportedVersion { version } => {
                write!(f, "unsupported model format version {version} (this build reads 1)")
            }
            ModelError::Truncated { needed, available } => {
                write!(f, "truncated model: needs {needed} bytes, has {available}")
            }
            ModelError::ChecksumMismatch { stored, computed } => write!(
                f,
                "checksum mismatch: the file says {stored:#010x}, its contents give {computed:#010x} (corrupted)"
            ),
            ModelError::DimensionOutOfRange { field, value, max } => {
                write!(f, "dimension `{field}` = {value} is out of range (1..={max})")
            }
            ModelError::UnknownCode { field, value } => write!(f, "unknown {field} code {value}"),
            ModelError::InconsistentSize { expected, found } => write!(
                f,
                "inconsistent section sizes: the dimensions imply {expected} bytes, the file has {found}"
            ),
            ModelError::NonFinite { offset } => write!(f, "non-finite value at byte {offset}"),
            ModelError::InvalidParameter(e) => write!(f, "{e}"),
            ModelError::LeftOut { feature } => write!(
                f,
                "this build leaves out {feature} models: build it with the `{feature}` feature"
            ),
            ModelError::DimensionMismatch { model, expected } => write!(
                f,
                "the model's data dimension is {model}, but {expected} was expected"
            ),
        }
    }
}

impl core::error::Error for ModelError {}

/// The same words as [`Display`](fmt::Display), for a chip's log: defmt keeps the text on the
/// host, so the words cost the chip no flash.
#[cfg(feature = "defmt")]
impl defmt::Format for ModelError {
    fn format(&self, f: defmt::Formatter) {
        match *self {
            ModelError::BadMagic => {
                defmt::write!(f, "not a tinyscore model (bad magic; expected `TSMF`)")
            }
            ModelError::UnsupportedVersion { version } => defmt::write!(
                f,
                "unsupported model format version {=u16} (this build reads 1)",
                version
            ),
            ModelError::Truncated { needed, available } => defmt::write!(
                f,
                "truncated model: needs {=usize} bytes, has {=usize}",
                needed,
                available
            ),
            ModelError::ChecksumMismatch { stored, computed } => defmt::write!(
                f,
                "checksum mismatch: the file says {=u32:#010x}, its contents give {=u32:#010x} (corrupted)",
                stored,
                computed
            ),
            ModelError::DimensionOutOfRange { field, value, max } => defmt::write!(
                f,
                "dimension `{=str}` = {=u32} is out of range (1..={=u32})",
                field,
                value,
                max
            ),
            ModelError::UnknownCode { field, value } => {
                defmt::write!(f, "unknown {=str} code {=u8}", field, value)
            }
            ModelError::InconsistentSize { expected, found } => defmt::write!(
                f,
                "inconsistent section sizes: the dimensions imply {=usize} bytes, the file has {=usize}",
                expected,
                found
            ),
            ModelError::NonFinite { offset } => {
                defmt::write!(f, "non-finite value at byte {=usize}", offset)
            }
            ModelError::InvalidParameter(e) => defmt::write!(f, "{}", e),
            ModelError::LeftOut { feature } => defmt::write!(
                f,
                "this build leaves out {=str} models: build it with the `{=str}` feature",
                feature,
                feature
            ),
            ModelError::DimensionMismatch { model, expected } => defmt::write!(
                f,
                "the model's data dimension is {=u32}, but {=u32} was expected",
                model,
                expected
            ),
        }
    }
}
