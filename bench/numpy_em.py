"""The numpy float32 baseline of BENCHMARKS.md's Euler–Maruyama figure.

Euler–Maruyama on the reverse VP-SDE (β from 0.1 to 20, 1000 steps from t = 1 to 10⁻³) with
the exact score of the 8-Gaussians mixture (means 2·(cos kπ/4, sin kπ/4), std 0.1) diffused
by the SDE, all in float32 over one large batch (numpy's best case), one thread. Prints
particle-steps per second. Usage: `python3 bench/numpy_em.py [particles] [seconds]`.
"""

import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

BETA_MIN, BETA_MAX = np.float32(0.1), np.float32(20.0)
angles = np.arange(8, dtype=np.float32) * np.float32(np.pi / 4)
MEANS = (2 * np.stack([np.cos(angles), np.sin(angles)], axis=1)).astype(np.float32)
STD = np.float32(0.1)


def alpha_sigma2(t):
    log_alpha = -0.25 * t * t * (BETA_MAX - BETA_MIN) - 0.5 * t * BETA_MIN
    alpha = np.float32(np.exp(log_alpha))
    return alpha, np.float32(1.0) - alpha * alpha


def score(x, t):
    # −|x − αμ_k|²/(2v) up to a term the softmax drops, and Σ_k w_k (αμ_k − x)/v with Σ w = 1:
    # two small products instead of an (n, 8, 2) tensor.
    alpha, sigma2 = alpha_sigma2(t)
    var = alpha * alpha * STD * STD + sigma2
    centres = alpha * MEANS  # (8, 2)
    logits = (x @ centres.T - 0.5 * (centres * centres).sum(axis=1)) / var
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    weights /= weights.sum(axis=1, keepdims=True)
    return (weights @ centres - x) / var


def sample(n, steps, rng):
    x = rng.standard_normal((n, 2), dtype=np.float32)
    ts = np.linspace(1.0, 1e-3, steps + 1, dtype=np.float32)
    for i in range(steps):
        t, dt = ts[i], ts[i] - ts[i + 1]
        beta = BETA_MIN + t * (BETA_MAX - BETA_MIN)
        drift = -0.5 * beta * x - beta * score(x, t)  # f − g²·s, run backwards
        x = x - drift * dt + np.sqrt(beta * dt) * rng.standard_normal((n, 2), dtype=np.float32)
    return x


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    rng = np.random.default_rng(1)
    steps, done = 100, 0
    sample(n, 10, rng)  # warm-up
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        x = sample(n, steps, rng)
        done += n * steps
    rate = done / (time.perf_counter() - start)
    assert np.isfinite(x).all()
    print(f"numpy {np.__version__}, {n} particles: {rate:.3g} particle-steps/s")


if __name__ == "__main__":
    main()
