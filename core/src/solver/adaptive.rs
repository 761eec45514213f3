//! Dormand–Prince 5(4) with an embedded error estimate and a PI step-size controller: the
//! adaptive solver of scipy's `solve_ivp(method="RK45")` and of Hairer's DOPRI5, for one state
//! `[f32; N]` and, optionally, a scalar carried along (the log-density change of the
//! likelihood).
//!
//! Each accepted step costs six evaluations (the last stage of a step is the first of the
//! next); the first step's size is chosen as Hairer's `hinit` does, at the cost of one more.
//! The error of a step is the RMS over the components of `e_i / (atol + rtol·max(|y_i|,
//! |y_new_i|))`; a step is accepted when it is at most 1. The controller is Hairer's:
//! `h ← h · min(10, max(0.2, 0.9 · err^(−0.17) · err_prev^(0.04)))`, no growth right after a
//! rejection. Everything is f32 through [`math`], so the steps and the result
//! are the same bits on a host and on a chip.

use crate::error::{ParamError, SampleError, StepError};
use crate::math;

/// The Dormand–Prince 5(4) pair with its step-size control.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dopri5 {
    rtol: f32,
    atol: f32,
    max_steps: u32,
}

/// What an integration cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OdeStats {
    /// Evaluations of the right-hand side.
    pub nfe: u32,
    /// Steps accepted.
    pub accepted: u32,
    /// Steps rejected (and retried smaller).
    pub rejected: u32,
}

/// The right-hand side of `d(x, ℓ)/dt`: the velocity of `x` and the rate of the scalar `ℓ`.
pub type Rates<const N: usize> = ([f32; N], f32);

// The Butcher tableau (Dormand & Prince 1980).
/// The stages' times as fractions of the step (the last two, at 1, are the step's end).
const C: [f32; 4] = [0.2, 0.3, 0.8, 8.0 / 9.0];
const A2: [f32; 1] = [0.2];
const A3: [f32; 2] = [3.0 / 40.0, 9.0 / 40.0];
const A4: [f32; 3] = [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0];
const A5: [f32; 4] = [
    19372.0 / 6561.0,
    -25360.0 / 2187.0,
    64448.0 / 6561.0,
    -212.0 / 729.0,
];
const A6: [f32; 5] = [
    9017.0 / 3168.0,
    -355.0 / 33.0,
    46732.0 / 5247.0,
    49.0 / 176.0,
    -5103.0 / 18656.0,
];
/// The fifth-order weights (the last stage's row: first same as last).
const B: [f32; 6] = [
    35.0 / 384.0,
    0.0,
    500.0 / 1113.0,
    125.0 / 192.0,
    -2187.0 / 6784.0,
    11.0 / 84.0,
];
/// The fifth-order weights less the embedded fourth-order ones, for stages 1..=7.
const E: [f32; 7] = [
    71.0 / 57600.0,
    0.0,
    -71.0 / 16695.0,
    71.0 / 1920.0,
    -17253.0 / 339200.0,
    22.0 / 525.0,
    -1.0 / 40.0,
];

const SAFETY: f32 = 0.9;
const MIN_FACTOR: f32 = 0.2;
const MAX_FACTOR: f32 = 10.0;
const BETA: f32 = 0.04;
const EXPONENT: f32 = 0.2 - 0.75 * BETA;

impl Dopri5 {
    /// Tolerances `rtol > 0`, `atol > 0` (finite), and at most `max_steps ≥ 1` steps,
    /// accepted and rejected.
    pub fn new(rtol: f32, atol: f32, max_steps: u32) -> Result<Self, ParamError> {
        ParamError::positive(rtol, "rtol")?;
        ParamError::positive(atol, "atol")?;
        ParamError::require(max_steps > 0, "max_steps", "at least 1")?;
        Ok(Dopri5 {
            rtol,
            atol,
            max_steps,
        })
    }

    /// The relative tolerance.
    pub fn rtol(&self) -> f32 {
        self.rtol
    }

    /// The absolute tolerance.
    pub fn atol(&self) -> f32 {
        self.atol
    }

    /// Carries `x` (and `scalar`, when given) from `t0` to `t1` (either direction) under
    /// `rates(t, x)`. With `scalar`, its rate is integrated too and its error counts in the
    /// step control; without, the rate's scalar is ignored. A rate that is not finite makes
    /// the step be retried smaller; the run fails when the step limit is reached or the step
    /// becomes too small for f32 to advance `t` (the index in the error is the step's). `x`
    /// holds the last accepted state on failure.
    pub fn integrate<const N: usize>(
        &self,
        t0: f32,
        t1: f32,
        x: &mut [f32; N],
        scalar: Option<&mut f32>,
        mut rates: impl FnMut(f32, &[f32; N]) -> Result<Rates<N>, StepError>,
    ) -> Result<OdeStats, SampleError> {
        let mut stats = OdeStats::default();
        let span = t1 - t0;
        if span == 0.0 {
            return Ok(stats);
        }
        let direction = if span > 0.0 { 1.0 } else { -1.0 };
        let tracked = scalar.is_some();
        let mut ell = scalar.as_deref().copied().unwrap_or(0.0);
        let mut t = t0;
        let mut k1 = self.evaluate(&mut rates, t, x, &mut stats, 0)?;
        let mut h = self.initial_step(&mut rates, t, t1, x, ell, &k1, tracked, &mut stats)?;
        let mut previous_error = 1e-4f32;
        let mut rejected_last = false;
        loop {
            let remaining = (t1 - t) * direction;
            if remaining <= 0.0 {
                break;
            }
            if stats.accepted + stats.rejected >= self.max_steps {
                return Err(SampleError::StepLimit {
                    steps: self.max_steps,
                });
            }
            let last = h >= remaining;
            if last {
                h = remaining;
            }
            let step = stats.accepted + stats.rejected;
            let dt = direction * h;
            let t_new = if last { t1 } else { t + dt };
            let trial = self.step(&mut rates, t, dt, t_new, x, ell, &k1, &mut stats);
            let (x_new, ell_new, k7, error) = match trial {
                Ok((x_new, ell_new, k7, error)) => {
                    let error = self.error_norm(x, &x_new, ell, ell_new, &error, tracked);
                    (x_new, ell_new, k7, error)
                }
                // A stage left the finite numbers: retried smaller, as a failed step.
                Err(_) => (*x, ell, k1, f32::INFINITY),
            };
            if error <= 1.0 {
                if t_new == t {
                    return Err(SampleError::StepSizeUnderflow { step });
                }
                t = t_new;
                *x = x_new;
                ell = ell_new;
                k1 = k7;
                stats.accepted += 1;
                let grow = SAFETY
                    * math::powf(error.max(1e-10), -EXPONENT)
                    * math::powf(previous_error, BETA);
                let factor = grow.clamp(MIN_FACTOR, MAX_FACTOR);
                h *= if rejected_last {
                    factor.min(1.0)
                } else {
                    factor
                };
                previous_error = error.max(1e-4);
                rejected_last = false;
            } else {
                stats.rejected += 1;
                let shrink = if error.is_finite() {
                    (SAFETY * math::powf(error, -EXPONENT)).max(MIN_FACTOR)
                } else {
                    MIN_FACTOR
                };
                h *= shrink;
                rejected_last = true;
                if t + direction * h == t {
                    return Err(SampleError::StepSizeUnderflow { step });
                }
            }
        }
        if let Some(s) = scalar {
            *s = ell;
        }
        Ok(stats)
    }

    /// The same fifth-order steps without control: `steps` equal steps from `t0` to `t1`
    /// (for a cost known in advance, on a chip; the tolerances are not used). Fails on a
    /// non-finite rate.
    pub fn integrate_fixed<const N: usize>(
        &self,
        t0: f32,
        t1: f32,
        steps: u32,
        x: &mut [f32; N],
        scalar: Option<&mut f32>,
        mut rates: impl FnMut(f32, &[f32; N]) -> Result<Rates<N>, StepError>,
    ) -> Result<OdeStats, SampleError> {
        let mut stats = OdeStats::default();
        let mut ell = scalar.as_deref().copied().unwrap_or(0.0);
        let mut k1 = self.evaluate(&mut rates, t0, x, &mut stats, 0)?;
        let h = (t1 - t0) / steps.max(1) as f32;
        for i in 0..steps {
            let t = t0 + i as f32 * h;
            let t_next = if i + 1 == steps { t1 } else { t + h };
            let (x_new, ell_new, k7, _) =
                self.step(&mut rates, t, h, t_next, x, ell, &k1, &mut stats)?;
            *x = x_new;
            ell = ell_new;
            k1 = k7;
            stats.accepted += 1;
        }
        if let Some(s) = scalar {
            *s = ell;
        }
        Ok(stats)
    }

    /// One evaluation of the rates, counted and checked finite.
    fn evaluate<const N: usize>(
        &self,
        rates: &mut impl FnMut(f32, &[f32; N]) -> Result<Rates<N>, StepError>,
        t: f32,
        x: &[f32; N],
        stats: &mut OdeStats,
        step: u32,
    ) -> Result<Rates<N>, SampleError> {
        stats.nfe += 1;
        let k = rates(t, x).map_err(|e| SampleError::at(step, e))?;
        if k.0.iter().all(|v| v.is_finite()) && k.1.is_finite() {
            Ok(k)
        } else {
            Err(SampleError::NonFiniteScore { step })
        }
    }

    /// Hairer's starting step: a step whose Euler change is 1 % of the state's scale, then
    /// bounded by the size at which the second derivative would make an error of 1 %, and by
    /// the span to integrate.
    #[allow(clippy::too_many_arguments)]
    fn initial_step<const N: usize>(
        &self,
        rates: &mut impl FnMut(f32, &[f32; N]) -> Result<Rates<N>, StepError>,
        t: f32,
        t1: f32,
        x: &[f32; N],
        ell: f32,
        k1: &Rates<N>,
        tracked: bool,
        stats: &mut OdeStats,
    ) -> Result<f32, SampleError> {
        // Never beyond the end: the rates may not be defined past it (σ(t) at t < 0).
        let span = t1 - t;
        let (direction, length) = (if span > 0.0 { 1.0 } else { -1.0 }, span.abs());
        let scale = |y: f32| self.atol + self.rtol * y.abs();
        let d0 = self.rms(x, ell, tracked, |i, v| {
            v / scale(if i < N { x[i] } else { ell })
        });
        let d1 = self.rms(&k1.0, k1.1, tracked, |i, v| {
            v / scale(if i < N { x[i] } else { ell })
        });
        let h0 = if d0 < 1e-5 || d1 < 1e-5 {
            1e-6
        } else {
            0.01 * d0 / d1
        }
        .min(length);
        let x1: [f32; N] = core::array::from_fn(|i| x[i] + direction * h0 * k1.0[i]);
        let t_probe = if h0 >= length { t1 } else { t + direction * h0 };
        let k2 = self.evaluate(rates, t_probe, &x1, stats, 0)?;
        let d2 = self.rms(&k2.0, k2.1, tracked, |i, v| {
            let k1 = if i < N { k1.0[i] } else { k1.1 };
            (v - k1) / scale(if i < N { x[i] } else { ell })
        }) / h0;
        let h1 = if d1.max(d2) <= 1e-15 {
            (h0 * 1e-3).max(1e-6)
        } else {
            math::powf(0.01 / d1.max(d2), 0.2)
        };
        Ok((100.0 * h0).min(h1).min(length))
    }

    /// `√(mean of f(i, v_i)²)` over the components of `(v, s)` (`s` only when `tracked`).
    fn rms<const N: usize>(
        &self,
        v: &[f32; N],
        s: f32,
        tracked: bool,
        f: impl Fn(usize, f32) -> f32,
    ) -> f32 {
        let mut sum = 0.0f32;
        for (i, &value) in v.iter().enumerate() {
            let e = f(i, value);
            sum += e * e;
        }
        let mut count = N as f32;
        if tracked {
            let e = f(N, s);
            sum += e * e;
            count += 1.0;
        }
        math::sqrt(sum / count.max(1.0))
    }

    /// One Dormand–Prince step of `dt` from `(x, ell)` at `t` to `t_next` (`t + dt`, given so
    /// that the last stages are evaluated exactly at the step's end, never past it), whose
    /// rates are `k1`: the new state, the rates there (the next step's first stage) and the
    /// error estimate.
    #[allow(clippy::too_many_arguments)]
    fn step<const N: usize>(
        &self,
        rates: &mut impl FnMut(f32, &[f32; N]) -> Result<Rates<N>, StepError>,
        t: f32,
        dt: f32,
        t_next: f32,
        x: &[f32; N],
        ell: f32,
        k1: &Rates<N>,
        stats: &mut OdeStats,
    ) -> Result<([f32; N], f32, Rates<N>, Rates<N>), SampleError> {
        let step = stats.accepted + stats.rejected;
        let combine = |ks: &[&Rates<N>], a: &[f32]| -> ([f32; N], f32) {
            let mut y = *x;
            let mut s = ell;
            for (k, &a) in ks.iter().zip(a) {
                for (y, v) in y.iter_mut().zip(&k.0) {
                    *y += dt * a * v;
                }
                s += dt * a * k.1;
            }
            (y, s)
        };
        let (y, _) = combine(&[k1], &A2);
        let k2 = self.evaluate(rates, t + C[0] * dt, &y, stats, step)?;
        let (y, _) = combine(&[k1, &k2], &A3);
        let k3 = self.evaluate(rates, t + C[1] * dt, &y, stats, step)?;
        let (y, _) = combine(&[k1, &k2, &k3], &A4);
        let k4 = self.evaluate(rates, t + C[2] * dt, &y, stats, step)?;
        let (y, _) = combine(&[k1, &k2, &k3, &k4], &A5);
        let k5 = self.evaluate(rates, t + C[3] * dt, &y, stats, step)?;
        let (y, _) = combine(&[k1, &k2, &k3, &k4, &k5], &A6);
        let k6 = self.evaluate(rates, t_next, &y, stats, step)?;
        let (x_new, ell_new) = combine(&[k1, &k2, &k3, &k4, &k5, &k6], &B);
        let k7 = self.evaluate(rates, t_next, &x_new, stats, step)?;
        // The difference of the fifth- and fourth-order solutions.
        let mut error = ([0.0f32; N], 0.0f32);
        for (k, &e) in [k1, &k2, &k3, &k4, &k5, &k6, &k7].iter().zip(&E) {
            for (y, v) in error.0.iter_mut().zip(&k.0) {
                *y += dt * e * v;
            }
            error.1 += dt * e * k.1;
        }
        Ok((x_new, ell_new, k7, error))
    }

    /// The step's error in units of the tolerance: the RMS of `error_i / (atol + rtol ·
    /// max(|y_i|, |y_new_i|))`.
    #[allow(clippy::too_many_arguments)]
    fn error_norm<const N: usize>(
        &self,
        x: &[f32; N],
        x_new: &[f32; N],
        ell: f32,
        ell_new: f32,
        error: &Rates<N>,
        tracked: bool,
    ) -> f32 {
        let scale = |a: f32, b: f32| self.atol + self.rtol * a.abs().max(b.abs());
        self.rms(&error.0, error.1, tracked, |i, v| {
            if i < N {
                v / scale(x[i], x_new[i])
            } else {
                v / scale(ell, ell_new)
            }
        })
    }
}
