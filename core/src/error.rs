//! The crate's errors: a parameter that cannot work, and a sampler that left the finite numbers.

use core::fmt;

/// A parameter outside the range where the model or sampler is defined.
///
/// Returned by every constructor that validates its input, so that impossible settings are
/// caught before a sampler runs rather than showing up as NaN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamError {
    /// The parameter's name, as in the constructor's signature.
    pub parameter: &'static str,
    /// What the parameter must satisfy, e.g. `"finite and > 0"`.
    pub requirement: &'static str,
}

impl ParamError {
    /// `Ok(())` when `holds`, else the error for `parameter`.
    pub(crate) fn require(
        holds: bool,
        parameter: &'static str,
        requirement: &'static str,
    ) -> Result<(), ParamError> {
        if holds {
            Ok(())
        } else {
            Err(ParamError {
                parameter,
                requirement,
            })
        }
    }

    /// `Ok(())` when `value` is finite and strictly positive.
    pub(crate) fn positive(value: f32, parameter: &'static str) -> Result<(), ParamError> {
        Self::require(
            value.is_finite() && value > 0.0,
            parameter,
            "finite and > 0",
        )
    }
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid `{}`: must be {}",
            self.parameter, self.requirement
        )
    }
}

impl core::error::Error for ParamError {}

/// Why one solver step failed (the driver adds the step number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepError {
    /// The score of this particle of the batch (0 when there is one) was NaN or ±∞.
    NonFiniteScore {
        /// Index within the batch the step was given.
        particle: usize,
    },
}

/// A sampler stopped because it left the finite numbers; `step` is the 0-based index of the
/// step that failed (for a [`Sampler`](crate::Sampler) with `K` steps, index `K` is the final
/// denoising step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SampleError {
    /// The score was NaN or ±∞ at this step.
    NonFiniteScore {
        /// 0-based step index.
        step: u32,
    },
    /// The state became NaN or ±∞ during this step.
    NonFiniteState {
        /// 0-based step index.
        step: u32,
    },
    /// An adaptive solver took its limit of steps (accepted and rejected) before the end.
    StepLimit {
        /// The limit.
        steps: u32,
    },
    /// An adaptive solver's step became too small for f32 to advance the time.
    StepSizeUnderflow {
        /// 0-based step index.
        step: u32,
    },
}

impl SampleError {
    /// Attaches the step index to a step's error.
    pub(crate) fn at(step: u32, error: StepError) -> Self {
        match error {
            StepError::NonFiniteScore { .. } => SampleError::NonFiniteScore { step },
        }
    }
}

/// A [`SampleError`] of one particle of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParticleError {
    /// The particle's index in the batch.
    pub particle: usize,
    /// What went wrong, and at which step.
    pub error: SampleError,
}

impl ParticleError {
    /// Attaches the step index to a step's error.
    pub(crate) fn at(step: u32, error: StepError) -> Self {
        let StepError::NonFiniteScore { particle } = error;
        ParticleError {
            particle,
            error: SampleError::at(step, error),
        }
    }
}

impl fmt::Display for ParticleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "particle {}: {}", self.particle, self.error)
    }
}

impl core::error::Error for ParticleError {}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::NonFiniteScore { particle } => {
                write!(f, "the score of particle {particle} is not finite")
            }
        }
    }
}

impl fmt::Display for SampleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SampleError::NonFiniteScore { step } => {
                write!(f, "step {step}: the score is not finite")
            }
            SampleError::NonFiniteState { step } => write!(
                f,
                "step {step}: the state is not finite (it diverged: its steps are too large)"
            ),
            SampleError::StepLimit { steps } => write!(
                f,
                "the adaptive solver reached its limit of {steps} steps before the end \
                 (loosen the tolerances or raise the limit)"
            ),
            SampleError::StepSizeUnderflow { step } => write!(
                f,
                "step {step}: the adaptive step became too small to advance the time \
                 (the field is not finite or too stiff there)"
            ),
        }
    }
}

impl core::error::Error for StepError {}
impl core::error::Error for SampleError {}

/// Human words on a chip's log, as [`Display`](fmt::Display) gives them on the host; defmt keeps
/// the text on the host, so the words cost the chip no flash.
#[cfg(feature = "defmt")]
mod defmt_words {
    use super::{ParamError, ParticleError, SampleError, StepError};

    impl defmt::Format for ParamError {
        fn format(&self, f: defmt::Formatter) {
            defmt::write!(
                f,
                "invalid `{=str}`: must be {=str}",
                self.parameter,
                self.requirement
            )
        }
    }

    impl defmt::Format for StepError {
        fn format(&self, f: defmt::Formatter) {
            match *self {
                StepError::NonFiniteScore { particle } => {
                    defmt::write!(f, "the score of particle {=usize} is not finite", particle)
                }
            }
        }
    }

    impl defmt::Format for SampleError {
        fn format(&self, f: defmt::Formatter) {
            match *self {
                SampleError::NonFiniteScore { step } => {
                    defmt::write!(f, "step {=u32}: the score is not finite", step)
                }
                SampleError::NonFiniteState { step } => defmt::write!(
                    f,
                    "step {=u32}: the state is not finite (it diverged: its steps are too large)",
                    step
                ),
                SampleError::StepLimit { steps } => defmt::write!(
                    f,
                    "the adaptive solver reached its limit of {=u32} steps before the end (loosen the tolerances or raise the limit)",
                    steps
                ),
                SampleError::StepSizeUnderflow { step } => defmt::write!(
                    f,
                    "step {=u32}: the adaptive step became too small to advance the time (the field is not finite or too stiff there)",
                    step
                ),
            }
        }
    }

    impl defmt::Format for ParticleError {
        fn format(&self, f: defmt::Formatter) {
            defmt::write!(f, "particle {=usize}: {}", self.particle, self.error)
        }
    }
}
