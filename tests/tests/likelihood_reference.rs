//! The likelihood of the PyTorch reference model (`moons_ref.safetensors`, imported) against
//! an independent float64 computation written here: the network's forward pass and its
//! Jacobian by forward-mode differentiation in f64, the probability-flow ODE with its
//! divergence integrated by classical Runge–Kutta on a fine geometric time grid, the N(0, I)
//! prior at T and the data's standardisation. The two must agree within 0.01 nats per point.

use tinyscore::Model;
use tinyscore_host::likelihood::{model_likelihood, LikelihoodOptions};
use tinyscore_host::model_file::Network;
use tinyscore_host::progress::Progress;
use tinyscore_tests::{raw_moons, reference_model_bytes, reference_network};

/// VP-SDE (β from 0.1 to 20), in f64.
fn beta(t: f64) -> f64 {
    0.1 + 19.9 * t
}

fn sigma(t: f64) -> f64 {
    let b = 0.1 * t + 9.95 * t * t;
    (1.0 - (-b).exp()).sqrt()
}

/// ε̂(z, t) and ∂ε̂/∂z (rows: outputs) of the network in f64.
fn noise_and_jacobian(network: &Network, z: [f64; 2], t: f64) -> ([f64; 2], [[f64; 2]; 2]) {
    let mut h: Vec<f64> = z.to_vec();
    let angles: Vec<f64> = network
        .fourier
        .iter()
        .map(|&w| 2.0 * std::f64::consts::PI * t * w as f64)
        .collect();
    h.extend(angles.iter().map(|a| a.sin()));
    h.extend(angles.iter().map(|a| a.cos()));
    // dh[i][j] = ∂h_i/∂z_j; the time features do not depend on z.
    let mut dh: Vec<[f64; 2]> = (0..h.len())
        .map(|i| match i {
            0 => [1.0, 0.0],
            1 => [0.0, 1.0],
            _ => [0.0, 0.0],
        })
        .collect();
    let last = network.layers.len() - 1;
    for (l, (weights, bias)) in network.layers.iter().enumerate() {
        let inputs = h.len();
        let mut next = Vec::with_capacity(bias.len());
        let mut dnext = Vec::with_capacity(bias.len());
        for (r, b) in bias.iter().enumerate() {
            let row = &weights[r * inputs..(r + 1) * inputs];
            let pre: f64 = row.iter().zip(&h).map(|(w, x)| *w as f64 * x).sum::<f64>() + *b as f64;
            let dpre: [f64; 2] =
                core::array::from_fn(|j| row.iter().zip(&dh).map(|(w, d)| *w as f64 * d[j]).sum());
            if l < last {
                let s = 1.0 / (1.0 + (-pre).exp());
                let slope = s * (1.0 + pre * (1.0 - s));
                next.push(pre * s);
                dnext.push(dpre.map(|d| slope * d));
            } else {
                next.push(pre);
                dnext.push(dpre);
            }
        }
        h = next;
        dh = dnext;
    }
    ([h[0], h[1]], [dh[0], dh[1]])
}

/// `(dz/dt, d ℓ/dt)` of the probability-flow ODE with `ℓ` the log-density change.
fn rates(network: &Network, z: [f64; 2], t: f64) -> ([f64; 2], f64) {
    let (eps, jacobian) = noise_and_jacobian(network, z, t);
    let (b, s) = (beta(t), sigma(t));
    let score = eps.map(|e| -e / s);
    let divergence_score = -(jacobian[0][0] + jacobian[1][1]) / s;
    let velocity = [
        -0.5 * b * z[0] - 0.5 * b * score[0],
        -0.5 * b * z[1] - 0.5 * b * score[1],
    ];
    (velocity, -0.5 * b * 2.0 - 0.5 * b * divergence_score)
}

/// `log p(x)` in data units, in f64: RK4 on a geometric grid from 1e-3 to 1.
fn log_likelihood_f64(network: &Network, x: [f64; 2]) -> f64 {
    let z0: [f64; 2] =
        core::array::from_fn(|d| (x[d] - network.mean[d] as f64) / network.std[d] as f64);
    let (t0, t1, steps) = (1e-3f64, 1.0f64, 4000);
    let time = |i: usize| t0 * (t1 / t0).powf(i as f64 / steps as f64);
    let (mut z, mut ell) = (z0, 0.0f64);
    for i in 0..steps {
        let (t, h) = (time(i), time(i + 1) - time(i));
        let shift = |z: [f64; 2], k: [f64; 2], a: f64| [z[0] + a * k[0], z[1] + a * k[1]];
        let (k1, l1) = rates(network, z, t);
        let (k2, l2) = rates(network, shift(z, k1, h / 2.0), t + h / 2.0);
        let (k3, l3) = rates(network, shift(z, k2, h / 2.0), t + h / 2.0);
        let (k4, l4) = rates(network, shift(z, k3, h), t + h);
        for d in 0..2 {
            z[d] += h / 6.0 * (k1[d] + 2.0 * k2[d] + 2.0 * k3[d] + k4[d]);
        }
        ell += h / 6.0 * (l1 + 2.0 * l2 + 2.0 * l3 + l4);
    }
    let prior = -0.5 * (z[0] * z[0] + z[1] * z[1]) - (2.0 * std::f64::consts::PI).ln();
    let log_jacobian: f64 = network.std.iter().map(|&s| (s as f64).ln()).sum();
    prior + ell - log_jacobian
}

#[test]
fn the_reference_models_likelihood_matches_a_float64_computation() {
    let network = reference_network();
    let bytes = reference_model_bytes();
    let model = Model::parse(&bytes).unwrap();
    let points = raw_moons(12, 4);
    let options = LikelihoodOptions {
        rtol: 1e-5,
        atol: 1e-5,
        max_steps: 10_000,
        hutchinson: None,
        seed: 0,
        threads: 1,
    };
    let got = model_likelihood(model, &points, &options, &Progress::silent()).unwrap();
    for (k, row) in points.rows().enumerate() {
        let want = log_likelihood_f64(&network, [row[0], row[1]]);
        assert!(
            (got[k].log_p - want).abs() < 0.01,
            "point {k}: tinyscore {} nats, float64 {want}",
            got[k].log_p
        );
    }
}
