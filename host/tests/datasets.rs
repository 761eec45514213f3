//! The toy datasets: reproducible from a seed, and shaped as their definitions say.

use tinyscore_host::data::{Dataset, DATASETS};

#[test]
fn every_dataset_is_reproducible_finite_and_named() {
    for dataset in DATASETS {
        assert!(dataset.sample(0, 0).is_empty());
        let (x, y) = (dataset.sample(1000, 4), dataset.sample(1000, 4));
        assert_eq!(x, y, "{}", dataset.name());
        assert_ne!(x, dataset.sample(1000, 5), "{}", dataset.name());
        assert_eq!(x.len(), 1000, "{}", dataset.name());
        assert!(x.values.iter().all(|v| v.is_finite()));
        assert_eq!(Dataset::from_name(dataset.name()).unwrap(), dataset);
    }
    let err = Dataset::from_name("nope").unwrap_err().to_string();
    assert!(
        err.contains("2spirals") && err.contains("checkerboard"),
        "{err}"
    );
}

#[test]
fn checkerboard_fills_the_eight_dark_squares_evenly() {
    let n = 80_000;
    let points = Dataset::Checkerboard.sample(n, 1);
    let mut counts = std::collections::HashMap::new();
    for p in points.rows() {
        assert!(p.iter().all(|v| (-2.0..2.0).contains(v)), "{p:?}");
        let (i, j) = (p[0].floor() as i32, p[1].floor() as i32);
        assert_eq!((i + j).rem_euclid(2), 0, "{p:?} is on a light square");
        *counts.entry((i, j)).or_insert(0usize) += 1;
    }
    assert_eq!(counts.len(), 8);
    // Each square holds n/8 points, binomial: within 5 standard errors.
    let (mean, sd) = (
        n as f64 / 8.0,
        (n as f64 * (1.0 / 8.0) * (7.0 / 8.0)).sqrt(),
    );
    for (cell, count) in counts {
        assert!((count as f64 - mean).abs() < 5.0 * sd, "{cell:?}: {count}");
    }
}

#[test]
fn rings_lie_on_their_four_radii() {
    let points = Dataset::Rings.sample(40_000, 2);
    let mut per_ring = [0usize; 4];
    for p in points.rows() {
        let r = (p[0] * p[0] + p[1] * p[1]).sqrt();
        let ring = ((r / 0.75).round() as usize).clamp(1, 4);
        // Noise 0.08 per coordinate: the radius is off by more than 5·0.08 with probability
        // below 10⁻⁵.
        assert!((r - 0.75 * ring as f64).abs() < 0.4, "radius {r}");
        per_ring[ring - 1] += 1;
    }
    assert!(per_ring.iter().all(|&c| c == 10_000), "{per_ring:?}");
}
