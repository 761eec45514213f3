//! The few-step samplers' accuracy, pinned: the best RMS error at 10, 20 and 50 score
//! evaluations against a converged solution from the same starting points (exact 8-Gaussians
//! score), as `tinyscore bench --accuracy` measures it for BENCHMARKS.md. Deterministic (fixed
//! streams, f32 bits), so each bound sits 10 % above today's figure: a sampler or grid that
//! gets worse fails.

use tinyscore_host::bench::few_step_accuracy;
use tinyscore_host::sampling::{SamplerKind, ScheduleKind};

#[test]
fn the_best_few_step_errors_do_not_regress() {
    let table = few_step_accuracy(&[10, 20, 50], 1000).unwrap();
    let best = |nfe: u32| {
        table
            .iter()
            .filter(|r| r.nfe == nfe)
            .min_by(|a, b| a.rms_error.total_cmp(&b.rms_error))
            .copied()
            .unwrap()
    };
    for (nfe, today) in [(10, 0.0724), (20, 0.0158), (50, 0.00292)] {
        let row = best(nfe);
        assert!(
            row.rms_error <= 1.1 * today,
            "NFE {nfe}: best {row:?}, was {today}"
        );
    }
    // The third-order multistep method is the most accurate at 50 evaluations.
    let at_50 = best(50);
    assert_eq!(
        (at_50.sampler, at_50.schedule),
        (SamplerKind::Dpm3, ScheduleKind::Logsnr)
    );
}
