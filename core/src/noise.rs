//! Gaussian noise and Brownian increments from any `rand_core` RNG, in native f32.
//!
//! Box–Muller turns two 24-bit uniforms into two independent standard normals; both are
//! used. The radius uses `u₁ ∈ [2⁻²⁴, 1]`, so the logarithm never sees 0 (the largest
//! possible |z| is √(48 ln 2) ≈ 5.77, a tail of probability 8·10⁻⁹). The angle uses
//! [`math::sin_cos_turns`], whose range reduction is exact integer arithmetic.
//!
//! Reproducibility across threads and boards comes from one RNG stream per particle:
//! [`particle_rng`]`(seed, i)` depends only on the seed and the particle's index, so a sample
//! is the same whichever thread or chip computes it.

use crate::math;
use rand_core::Rng;

/// The RNG used by default: PCG-XSH-RR 64/32, small and fast on 32-bit cores.
pub type DefaultRng = rand_pcg::Pcg32;

/// Two independent standard normals from two uniform 32-bit words (their top 24 bits).
#[inline]
pub fn box_muller(word1: u32, word2: u32) -> (f32, f32) {
    let (z1, z2) = box_muller_lanes(&[word1], &[word2]);
    (z1[0], z2[0])
}

/// [`box_muller`] on `L` pairs of words at once, with the same bits per pair. Each step is a
/// loop over the lanes with no branch, so it vectorises (the square root gets a loop of its
/// own: it vectorises only where [`math::sqrt`] is `f32::sqrt`, the `std` feature). Always
/// inlined off the chips, so a caller compiled for wider vectors gets its own copy
/// ([`GaussianStream::with_lanes`]).
#[cfg_attr(not(target_os = "none"), inline(always))]
#[cfg_attr(target_os = "none", inline)]
pub fn box_muller_lanes<const L: usize>(
    word1: &[u32; L],
    word2: &[u32; L],
) -> ([f32; L], [f32; L]) {
    const TWO_POW_M24: f32 = 1.0 / (1u32 << 24) as f32;
    let mut radius = [0.0f32; L];
    let mut sin = [0.0f32; L];
    let mut cos = [0.0f32; L];
    for p in 0..L {
        // (0, 1]: ln never sees 0. Below 2²⁴ + 1, so the signed conversion is exact.
        let u1 = ((word1[p] >> 8) + 1) as i32 as f32 * TWO_POW_M24;
        radius[p] = -2.0 * math::ln_unit(u1);
        (sin[p], cos[p]) = math::sin_cos_turns(word2[p] >> 8);
    }
    for r in radius.iter_mut() {
        *r = math::sqrt(*r);
    }
    let mut z1 = [0.0f32; L];
    let mut z2 = [0.0f32; L];
    for p in 0..L {
        z1[p] = radius[p] * cos[p];
        z2[p] = radius[p] * sin[p];
    }
    (z1, z2)
}

/// Streams drawn together by [`GaussianStream::normals`]: the Box–Muller lanes. Fewer
/// streams are drawn one by one, which is the same work per stream as a single lane. On a
/// host 32, two AVX-512 registers, so that two independent chains of the polynomials overlap
/// (1.1× the throughput of 16); on a chip 16, its lockstep batch.
pub const LANES: usize = if cfg!(target_os = "none") { 16 } else { 32 };

/// [`box_muller_lanes`] on [`LANES`] pairs, as a function a host compiles for its widest
/// vectors (a `#[target_feature]` copy): the same f32 operations, so the same bits.
pub type BoxMullerLanes = fn(&[u32; LANES], &[u32; LANES]) -> ([f32; LANES], [f32; LANES]);

/// An endless stream of standard normal `f32` drawn from `R` by Box–Muller.
///
/// Each pair of uniforms gives two normals; the second is kept for the next call, so no
/// random number is wasted and the sequence does not depend on how calls are grouped.
#[derive(Clone, Debug)]
pub struct GaussianStream<R> {
    rng: R,
    spare: Option<f32>,
    /// A host's wider copy of Box–Muller; chips have none, and no room to spare for it.
    #[cfg(not(target_os = "none"))]
    lanes: Option<BoxMullerLanes>,
    /// How many coordinates of a vector are drawn, the rest being a padded state's zeros
    /// (hosts only; see [`GaussianStream::with_coordinates`]).
    #[cfg(not(target_os = "none"))]
    coordinates: usize,
}

impl<R: Rng> GaussianStream<R> {
    /// A stream drawing from `rng`.
    pub const fn new(rng: R) -> Self {
        GaussianStream {
            rng,
            spare: None,
            #[cfg(not(target_os = "none"))]
            lanes: None,
            #[cfg(not(target_os = "none"))]
            coordinates: usize::MAX,
        }
    }

    /// The stream with [`GaussianStream::normals`] running its groups' Box–Muller through
    /// `lanes` (a group uses its first stream's), a copy of [`box_muller_lanes`] compiled for
    /// wider vectors; the bits are the same. Hosts only (chips have no wider vectors).
    #[cfg(not(target_os = "none"))]
    pub fn with_lanes(self, lanes: BoxMullerLanes) -> Self {
        GaussianStream {
            lanes: Some(lanes),
            ..self
        }
    }

    /// The stream for a state padded to more coordinates than it has: a vector of `N`
    /// normals ([`normal`](Self::normal), [`normals`](Self::normals),
    /// [`brownian_increment`](Self::brownian_increment)) takes its first `coordinates` values
    /// from the stream, exactly as an unpadded state of `coordinates` dimensions does, and is
    /// 0 beyond them, so the padding stays 0 through every sampler. A host compiles a few state
    /// sizes and runs the other dimensions padded, with the same bits.
    #[cfg(not(target_os = "none"))]
    pub fn with_coordinates(self, coordinates: usize) -> Self {
        GaussianStream {
            coordinates,
            ..self
        }
    }

    /// How many coordinates of an `N`-vector are drawn.
    #[inline(always)]
    fn drawn<const N: usize>(&self) -> usize {
        #[cfg(target_os = "none")]
        return N;
        #[cfg(not(target_os = "none"))]
        return N.min(self.coordinates);
    }

    /// Box–Muller on a group of [`LANES`] pairs, through this stream's lanes if it has them.
    #[inline]
    fn box_muller_group(
        &self,
        word1: &[u32; LANES],
        word2: &[u32; LANES],
    ) -> ([f32; LANES], [f32; LANES]) {
        #[cfg(not(target_os = "none"))]
        if let Some(lanes) = self.lanes {
            return lanes(word1, word2);
        }
        box_muller_lanes(word1, word2)
    }

    /// The next standard normal.
    #[inline]
    pub fn sample(&mut self) -> f32 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let (z, spare) = box_muller(self.rng.next_u32(), self.rng.next_u32());
        self.spare = Some(spare);
        z
    }

    /// Fills `out` with standard normals.
    #[inline]
    pub fn fill(&mut self, out: &mut [f32]) {
        for z in out {
            *z = self.sample();
        }
    }

    /// A standard normal vector (0 in a padded state's padding).
    #[inline]
    pub fn normal<const N: usize>(&mut self) -> [f32; N] {
        let drawn = self.drawn::<N>();
        if drawn >= N {
            return core::array::from_fn(|_| self.sample());
        }
        core::array::from_fn(|d| if d < drawn { self.sample() } else { 0.0 })
    }

    /// A standard normal vector from each stream: `out[i]` is what `streams[i].normal()`
    /// returns, bit for bit, and each stream ends in the same state; only the order of the
    /// work changes. For each group of [`LANES`] streams the words are drawn first, then
    /// Box–Muller runs on them together ([`box_muller_lanes`]), which vectorises; the
    /// streams left over draw one by one.
    pub fn normals<const N: usize>(streams: &mut [Self], out: &mut [[f32; N]]) {
        let len = streams.len().min(out.len());
        // The streams of a batch pad alike: the first one says how.
        let drawn = streams.first().map_or(N, |s| s.drawn::<N>());
        if drawn < N {
            for o in out[..len].iter_mut() {
                o[drawn..].fill(0.0);
            }
        }
        let mut groups = streams[..len].chunks_exact_mut(LANES);
        let mut group_out = out[..len].chunks_exact_mut(LANES);
        for (streams, out) in (&mut groups).zip(&mut group_out) {
            if streams.iter().all(|s| s.spare.is_none()) {
                // The unpadded case with its constant trip count, which unrolls.
                if drawn >= N {
                    Self::fresh_normals(streams, out, N);
                } else {
                    Self::fresh_normals(streams, out, drawn);
                }
                continue;
            }
            // How many coordinates of each vector are filled: a stream's spare comes first.
            let mut filled = [0usize; LANES];
            if drawn > 0 {
                for ((stream, o), filled) in streams.iter_mut().zip(out.iter_mut()).zip(&mut filled)
                {
                    if let Some(z) = stream.spare.take() {
                        o[0] = z;
                        *filled = 1;
                    }
                }
            }
            loop {
                let (mut word1, mut word2) = ([0u32; LANES], [0u32; LANES]);
                let mut any_drawn = false;
                for (p, stream) in streams.iter_mut().enumerate() {
                    if filled[p] < drawn {
                        word1[p] = stream.rng.next_u32();
                        word2[p] = stream.rng.next_u32();
                        any_drawn = true;
                    }
                }
                if !any_drawn {
                    break;
                }
                let (z1, z2) = streams[0].box_muller_group(&word1, &word2);
                for (p, (stream, o)) in streams.iter_mut().zip(out.iter_mut()).enumerate() {
                    let k = filled[p];
                    if k < drawn {
                        o[k] = z1[p];
                        if k + 1 < drawn {
                            o[k + 1] = z2[p];
                        } else {
                            stream.spare = Some(z2[p]);
                        }
                        filled[p] = k + 2;
                    }
                }
            }
        }
        for (stream, o) in groups
            .into_remainder()
            .iter_mut()
            .zip(group_out.into_remainder())
        {
            *o = stream.normal();
        }
    }

    /// [`GaussianStream::normals`] for [`LANES`] streams none of which holds a spare (the
    /// common case: every particle of a batch draws the same number of normals), with no
    /// decision per stream: pair `j` fills coordinates `2j` and `2j + 1` of every vector, and
    /// an odd dimension leaves every stream the second normal of its last pair as its spare.
    #[inline(always)]
    fn fresh_normals<const N: usize>(streams: &mut [Self], out: &mut [[f32; N]], drawn: usize) {
        for first in (0..drawn.min(N)).step_by(2) {
            let (mut word1, mut word2) = ([0u32; LANES], [0u32; LANES]);
            for ((w1, w2), stream) in word1.iter_mut().zip(&mut word2).zip(streams.iter_mut()) {
                *w1 = stream.rng.next_u32();
                *w2 = stream.rng.next_u32();
            }
            let (z1, z2) = streams[0].box_muller_group(&word1, &word2);
            for (((o, stream), z1), z2) in out.iter_mut().zip(streams.iter_mut()).zip(z1).zip(z2) {
                o[first] = z1;
                match o.get_mut(first + 1).filter(|_| first + 1 < drawn) {
                    Some(second) => *second = z2,
                    None => stream.spare = Some(z2),
                }
            }
        }
    }

    /// A Brownian increment `W(t + dt) − W(t) = √|dt|·ε` (the sign of `dt` is ignored, so
    /// reverse-time steps can pass their negative step).
    #[inline]
    pub fn brownian_increment<const N: usize>(&mut self, dt: f32) -> [f32; N] {
        let scale = math::sqrt(dt.abs());
        let drawn = self.drawn::<N>();
        core::array::from_fn(|d| {
            if d < drawn {
                scale * self.sample()
            } else {
                0.0
            }
        })
    }

    /// The underlying RNG.
    pub fn rng_mut(&mut self) -> &mut R {
        &mut self.rng
    }
}

/// SplitMix64's finaliser: decorrelates nearby integers (seed, particle index).
const fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The RNG of particle `particle` for a run seeded with `seed`.
///
/// Each particle gets its own PCG stream (increment) and a hashed starting state, so streams
/// of neighbouring particles are neither shifted copies of one another nor correlated.
pub fn particle_rng(seed: u64, particle: u64) -> DefaultRng {
    let state = splitmix64(seed ^ splitmix64(particle));
    DefaultRng::new(state, particle)
}

/// The Gaussian stream of particle `particle` for a run seeded with `seed`.
pub fn particle_noise(seed: u64, particle: u64) -> GaussianStream<DefaultRng> {
    GaussianStream::new(particle_rng(seed, particle))
}
