//! What a sampler reports after each step: an [`Observer`] sees every state it passes through.

/// Called with the state after every step (and once with the starting state, step 0).
///
/// Any `FnMut(u32, f32, &[f32; N])` is an observer; [`NullObserver`] ignores everything;
/// [`Trajectory`] records into a fixed-capacity buffer, for a chip.
pub trait Observer<const N: usize> {
    /// `step` states have been taken so far; the state is `x` at time `t`.
    fn observe(&mut self, step: u32, t: f32, x: &[f32; N]);
}

/// The observer that keeps nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NullObserver;

impl<const N: usize> Observer<N> for NullObserver {
    #[inline]
    fn observe(&mut self, _step: u32, _t: f32, _x: &[f32; N]) {}
}

impl<F: FnMut(u32, f32, &[f32; N]), const N: usize> Observer<N> for F {
    #[inline]
    fn observe(&mut self, step: u32, t: f32, x: &[f32; N]) {
        self(step, t, x)
    }
}

/// Records `(t, x)` every `every` steps into a `heapless::Vec` of capacity `CAP`; once full,
/// further points are counted in [`dropped`](Trajectory::dropped) instead of stored.
#[derive(Clone, Debug)]
pub struct Trajectory<const N: usize, const CAP: usize> {
    every: u32,
    points: heapless::Vec<(f32, [f32; N]), CAP>,
    dropped: u32,
}

impl<const N: usize, const CAP: usize> Trajectory<N, CAP> {
    /// A recorder keeping every `every`-th step (`every = 0` is taken as 1).
    pub const fn new(every: u32) -> Self {
        Trajectory {
            every: if every == 0 { 1 } else { every },
            points: heapless::Vec::new(),
            dropped: 0,
        }
    }
    /// The recorded `(t, x)` points, in order.
    pub fn points(&self) -> &[(f32, [f32; N])] {
        &self.points
    }
    /// How many points did not fit.
    pub fn dropped(&self) -> u32 {
        self.dropped
    }
}

impl<const N: usize, const CAP: usize> Observer<N> for Trajectory<N, CAP> {
    fn observe(&mut self, step: u32, t: f32, x: &[f32; N]) {
        if step % self.every == 0 && self.points.push((t, *x)).is_err() {
            self.dropped = self.dropped.saturating_add(1);
        }
    }
}
