//! Why a model file was refused.

use crate::error::ParamError;
use core::fmt;

/// A `.tsm` model file that cannot be used, and why. No input makes the parser panic: every
/// malformed file maps to one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
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
            ModelError::DimensionMismatch { model, expected } => write!(
                f,
                "the model's data dimension is {model}, but {expected} was expected"
            ),
        }
    }
}

impl core::error::Error for ModelError {}
