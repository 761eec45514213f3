"""The scipy baseline of BENCHMARKS.md's likelihood figure, computed as score_sde does it.

The log-likelihood of points (a CSV with a header row, in data units) under the PyTorch
reference model `moons_ref.safetensors`: the probability-flow ODE of the VP-SDE (β from 0.1
to 20) from t = 10⁻³ to 1 with the log-density change, integrated by scipy's
`solve_ivp(method="RK45", rtol=1e-5, atol=1e-5)` over the whole batch as one system (score_sde's
`likelihood.py`), the divergence exact (the network's Jacobian by forward mode, batched, in
float32 numpy), the N(0, I) prior at T and the data's standardisation. One thread. Prints the
mean NLL, the evaluations and points per second.

Usage: `python3 bench/scipy_likelihood.py MODEL.safetensors POINTS.csv`
"""

import json
import os
import re
import struct
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    body = data[8 + length :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        tensors[name] = np.frombuffer(body[start:end], dtype=np.float32).reshape(info["shape"])
    return tensors, header.get("__metadata__", {})


def main():
    tensors, metadata = read_safetensors(sys.argv[1])
    # "… standardized: mean=[…] std=[…]" in the file's metadata.
    data = metadata["data"]
    mean = np.array(json.loads(re.search(r"mean=(\[[^\]]*\])", data).group(1)))
    std = np.array(json.loads(re.search(r"std=(\[[^\]]*\])", data).group(1)))
    points = np.loadtxt(sys.argv[2], delimiter=",", skiprows=1, dtype=np.float64)
    z0 = (points - mean) / std
    n, dim = z0.shape
    w_embed = tensors["embed.W"]
    layers = [(tensors[f"l{i}.weight"], tensors[f"l{i}.bias"]) for i in (1, 2, 3)]

    def eps_and_trace(z, t):
        angles = (2 * np.pi * t * w_embed).astype(np.float32)
        h = np.concatenate(
            [z.astype(np.float32), np.tile(np.sin(angles), (len(z), 1)), np.tile(np.cos(angles), (len(z), 1))],
            axis=1,
        )
        # Tangents dh/dz_j for j < dim, batched: (points, dim, width).
        dh = np.zeros((len(z), dim, h.shape[1]), dtype=np.float32)
        for j in range(dim):
            dh[:, j, j] = 1.0
        for i, (w, b) in enumerate(layers):
            pre = h @ w.T + b
            dpre = dh @ w.T
            if i < len(layers) - 1:
                s = 1.0 / (1.0 + np.exp(-pre))
                h = pre * s
                dh = dpre * (s * (1.0 + pre * (1.0 - s)))[:, None, :]
            else:
                h, dh = pre, dpre
        trace = sum(dh[:, j, j] for j in range(dim))
        return h.astype(np.float64), trace.astype(np.float64)

    def beta(t):
        return 0.1 + 19.9 * t

    def sigma(t):
        return np.sqrt(1.0 - np.exp(-(0.1 * t + 9.95 * t * t)))

    evaluations = [0]

    def rhs(t, state):
        evaluations[0] += 1
        z = state[: n * dim].reshape(n, dim)
        eps, trace = eps_and_trace(z, t)
        b, s = beta(t), sigma(t)
        score = -eps / s
        velocity = -0.5 * b * z - 0.5 * b * score
        divergence = -0.5 * b * dim - 0.5 * b * (-trace / s)
        return np.concatenate([velocity.ravel(), divergence])

    start = time.perf_counter()
    state0 = np.concatenate([z0.ravel(), np.zeros(n)])
    solution = solve_ivp(rhs, (1e-3, 1.0), state0, method="RK45", rtol=1e-5, atol=1e-5)
    seconds = time.perf_counter() - start
    end = solution.y[:, -1]
    latent = end[: n * dim].reshape(n, dim)
    delta = end[n * dim :]
    prior = -0.5 * (latent**2).sum(axis=1) - 0.5 * dim * np.log(2 * np.pi)
    log_p = prior + delta - np.log(std).sum()
    print(f"numpy {np.__version__}, scipy {__import__('scipy').__version__}")
    print(f"nll {-log_p.mean():.5f} nats, {evaluations[0]} evaluations of the batch")
    print(f"{n / seconds:.0f} points/s ({n} points in {seconds:.2f} s)")


if __name__ == "__main__":
    main()
