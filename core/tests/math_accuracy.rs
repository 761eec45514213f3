//! The accuracy bounds stated in `tinyscore::math`, measured against f64 references.

use tinyscore::math;

/// Distance in units in the last place of `reference` (rounded to f32).
fn ulps(got: f32, reference: f64) -> f64 {
    let r = reference as f32;
    let ulp = (f32::from_bits(r.abs().to_bits() + 1) - r.abs()) as f64;
    (got as f64 - reference).abs() / ulp
}

/// Worst error of `sin_cos_turns` over all 2²⁴ inputs, in ULPs of max(|sin|, |cos|) (which
/// is ≥ 1/√2, so this is a relative bound of the vector (cos, sin)).
#[test]
fn sin_cos_turns_is_within_one_and_a_half_ulp_over_every_input() {
    let mut worst = 0.0f64;
    for m in 0..(1u32 << 24) {
        let angle = std::f64::consts::TAU * m as f64 / (1u64 << 24) as f64;
        let (s, c) = math::sin_cos_turns(m);
        let scale = angle.sin().abs().max(angle.cos().abs());
        let err = (s as f64 - angle.sin())
            .abs()
            .max((c as f64 - angle.cos()).abs());
        worst = worst.max(err / (scale * f32::EPSILON as f64 / 2.0));
    }
    println!("sin_cos_turns: worst {worst:.3} half-ULP units");
    assert!(worst <= 3.0, "worst error {worst} half-ULPs");
}

#[test]
fn sin_cos_is_within_1_5e7_absolute_up_to_8192() {
    let mut worst = 0.0f64;
    for i in 0..2_000_000 {
        let x = -8192.0 + 16384.0 * (i as f64 / 2_000_000.0) + 1e-4 * (i % 7) as f64;
        let x = x as f32;
        let (s, c) = math::sin_cos(x);
        let err = (s as f64 - (x as f64).sin())
            .abs()
            .max((c as f64 - (x as f64).cos()).abs());
        worst = worst.max(err);
    }
    use std::f32::consts::{FRAC_PI_2, PI};
    for x in [0.0f32, 1e-30, -1e-30, 0.785, FRAC_PI_2, PI, 100.0] {
        let (s, c) = math::sin_cos(x);
        worst = worst
            .max((s as f64 - (x as f64).sin()).abs())
            .max((c as f64 - (x as f64).cos()).abs());
    }
    println!("sin_cos: worst absolute error {worst:.2e}");
    assert!(worst <= 1.5e-7, "sin_cos error {worst}");
    let (s, c) = math::sin_cos(f32::NAN);
    assert!(s.is_nan() && c.is_nan());
    assert_eq!(math::sin_cos(1e6), (libm::sinf(1e6), libm::cosf(1e6)));
}

/// A log-spaced sweep of `count` points over [lo, hi].
fn sweep(lo: f64, hi: f64, count: usize) -> impl Iterator<Item = f32> {
    (0..count).map(move |i| (lo * (hi / lo).powf(i as f64 / (count - 1) as f64)) as f32)
}

#[test]
fn exp_kernel_is_within_one_ulp_and_handles_the_edges() {
    let mut worst = 0.0f64;
    for x in sweep(1e-7, 88.7, 400_000).flat_map(|x| [x, -x.min(86.6)]) {
        worst = worst.max(ulps(math::exp_kernel(x), (x as f64).exp()));
    }
    println!("exp_kernel: worst {worst:.3} ULP");
    assert!(worst <= 1.0, "exp_kernel error {worst} ULP");
    assert_eq!(math::exp_kernel(0.0), 1.0);
    assert_eq!(math::exp_kernel(-100.0), 0.0);
    assert_eq!(math::exp_kernel(f32::NEG_INFINITY), 0.0);
    assert_eq!(math::exp_kernel(89.0), f32::INFINITY);
    assert!(math::exp_kernel(f32::NAN).is_nan());
}

#[test]
fn expm1_is_within_one_ulp_and_handles_the_edges() {
    let mut worst = 0.0f64;
    for x in sweep(1e-30, 88.7, 1_000_000).flat_map(|x| [x, -x]) {
        worst = worst.max(ulps(math::expm1(x), (x as f64).exp_m1()));
    }
    println!("expm1: worst {worst:.3} ULP");
    assert!(worst <= 1.0, "expm1 error {worst} ULP");
    assert_eq!(math::expm1(0.0).to_bits(), 0.0f32.to_bits());
    assert_eq!(math::expm1(-100.0), -1.0);
    assert_eq!(math::expm1(f32::NEG_INFINITY), -1.0);
    assert_eq!(math::expm1(89.0), f32::INFINITY);
    assert!(math::expm1(f32::NAN).is_nan());
}

#[test]
fn ln_unit_is_libm_logf_bit_for_bit_on_every_box_muller_input() {
    for m in 1..=(1u32 << 24) {
        let u = m as f32 / (1u32 << 24) as f32;
        assert_eq!(
            math::ln_unit(u).to_bits(),
            libm::logf(u).to_bits(),
            "u = {u}"
        );
    }
}

/// `math::sqrt` is `f32::sqrt` with the `std` feature (on in the workspace's test run, where
/// the host crate asks for it) and `libm::sqrtf` without (on the chips): both must be the
/// correctly rounded square root, so the chips and the host agree. Every Box–Muller radius²
/// `−2 ln u` and every 61st non-negative f32 bit pattern (both ends, subnormals, +∞); negative
/// inputs give NaN on both routes.
#[test]
fn sqrt_is_libm_sqrtf_bit_for_bit() {
    let radii = (1..=(1u32 << 24)).map(|m| -2.0 * math::ln_unit(m as f32 / (1u32 << 24) as f32));
    let patterns = (0..=0x7f80_0000u32).step_by(61).map(f32::from_bits);
    let ends = [0.0, f32::MIN_POSITIVE, f32::MAX, f32::INFINITY].into_iter();
    for x in radii.chain(patterns).chain(ends) {
        assert_eq!(
            math::sqrt(x).to_bits(),
            libm::sqrtf(x).to_bits(),
            "x = {x:e}"
        );
    }
    for x in [-1.0, -f32::MIN_POSITIVE, f32::NEG_INFINITY, f32::NAN] {
        assert!(math::sqrt(x).is_nan() && libm::sqrtf(x).is_nan(), "x = {x}");
    }
}

#[test]
fn libm_routes_are_within_one_ulp() {
    let mut worst_ln = 0.0f64;
    for x in sweep(1e-30, 1e30, 200_000) {
        worst_ln = worst_ln.max(ulps(libm::logf(x), (x as f64).ln()));
    }
    println!("libm: ln {worst_ln:.3} ULP");
    assert!(worst_ln <= 1.0);
}

/// micromath's accuracy over the ranges the core routes to it with `fast-math`: exp on
/// [−40, 10] (softmax offsets, schedules), sin/cos on [−8π, 8π] (Fourier features). Its `ln`
/// is not routed: it is shown here to be off by more than 0.1 below 1.
#[test]
fn micromath_routes_meet_the_stated_bounds() {
    use micromath::F32Ext;
    let mut worst_exp = 0.0f64;
    for x in (0..200_000).map(|i| -40.0 + 50.0 * i as f32 / 200_000.0) {
        let r = (x as f64).exp();
        worst_exp = worst_exp.max((F32Ext::exp(x) as f64 - r).abs() / r);
    }
    let mut worst_ln = 0.0f64;
    for x in sweep(1e-6, 1.0, 200_000) {
        worst_ln = worst_ln.max((F32Ext::ln(x) as f64 - (x as f64).ln()).abs());
    }
    let mut worst_trig = 0.0f64;
    for x in (0..200_000).map(|i| -8.0 * std::f32::consts::PI * (1.0 - i as f32 / 100_000.0)) {
        let (s, c) = ((x as f64).sin(), (x as f64).cos());
        worst_trig = worst_trig
            .max((F32Ext::sin(x) as f64 - s).abs())
            .max((F32Ext::cos(x) as f64 - c).abs());
    }
    println!(
        "micromath: exp rel {worst_exp:.2e}, ln abs {worst_ln:.2e}, sin/cos abs {worst_trig:.2e}"
    );
    assert!(worst_exp <= 2.5e-3, "exp relative error {worst_exp}");
    assert!(worst_trig <= 1.2e-3, "sin/cos absolute error {worst_trig}");
    assert!(
        worst_ln > 0.1,
        "micromath ln improved ({worst_ln}): reconsider routing ln"
    );
}

#[test]
fn bounded_sin_cos_is_sin_cos_inside_its_domain_and_finite_outside() {
    for i in 0..=1_000_000 {
        let x = -8192.0 + 16384.0 * (i as f32 / 1_000_000.0);
        let (a, b) = (
            tinyscore::math::sin_cos_bounded(x),
            tinyscore::math::sin_cos(x),
        );
        assert_eq!(
            (a.0.to_bits(), a.1.to_bits()),
            (b.0.to_bits(), b.1.to_bits()),
            "{x}"
        );
    }
    for x in [8192.5f32, -1e9, f32::INFINITY, f32::NEG_INFINITY] {
        let (s, c) = tinyscore::math::sin_cos_bounded(x);
        assert!(
            s.is_finite() && c.is_finite() && (s * s + c * c - 1.0).abs() < 1e-5,
            "{x}"
        );
    }
    let (s, c) = tinyscore::math::sin_cos_bounded(f32::NAN);
    assert!(s.is_nan() && c.is_nan());
}
