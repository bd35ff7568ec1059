#!/usr/bin/env python3
"""Projected data-parallel scaling of cgcn-train over P hosts (issue 14), from measured constants.

An alpha-beta model of the per-step gradient allreduce (ring: 2(P-1) messages of n/P bytes):
    T_ar(P) = 2 (P - 1) alpha + 2 (P - 1) / P * n / B
and one epoch of S batches over P hosts, one batch per host per step, the allreduce after the
backward pass (not overlapped: cgcn-train reduces once per step):
    T_epoch(P) = ceil(S / P) * (t_step + T_ar(P))
t_step (one batch's training step on one host) and n (the gradient's bytes) are measured by
bench/mpi_scaling.sh; alpha and beta of this machine's shared-memory transport by
cgcn-allreduce-bench (fitted here, printed for reference). The networks' bandwidths are their
line rates and their alphas are assumptions (stated in the table), since one machine has no network.

  bench/mpi_projection.py --allreduce ar.jsonl --graph NAME:STEP_S:GRAD_BYTES:BATCHES [...]
"""
import argparse
import json
import math

NETWORKS = [  # name, bytes/s, assumed per-message latency (s)
    ("10 Gb/s Ethernet (TCP, alpha 25 us)", 10e9 / 8, 25e-6),
    ("25 Gb/s Ethernet (TCP, alpha 15 us)", 25e9 / 8, 15e-6),
    ("100 Gb/s InfiniBand/RoCE (alpha 3 us)", 100e9 / 8, 3e-6),
]
HOSTS = [1, 2, 4, 8, 16, 32, 64]


def fit(rows):
    """alpha: the smallest message's time; beta: the slope between 1 MiB and 4 MiB (2 ranks).
    (A least-squares line over every size is pulled below zero at 0 bytes by the 16 MiB point,
    which falls out of the caches.)"""
    t = {r["bytes"]: r["us_per_call"] * 1e-6 for r in rows if r["ranks"] == 2}
    alpha = t[min(t)]
    beta = (t[4 << 20] - t[1 << 20]) / ((4 << 20) - (1 << 20))
    return alpha, beta


def t_ar(p, n, bandwidth, alpha):
    if p == 1:
        return 0.0
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * n / bandwidth


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--allreduce", required=True, help="cgcn-allreduce-bench output (JSON lines)")
    ap.add_argument("--graph", action="append", required=True, help="NAME:STEP_S:GRAD_BYTES:BATCHES")
    a = ap.parse_args()
    rows = [json.loads(l) for l in open(a.allreduce) if l.strip().startswith("{")]
    alpha, beta = fit(rows)
    print(f"shared memory on this machine (2 ranks): alpha {alpha * 1e6:.1f} us, beta {beta * 1e9:.3f} ns/byte "
          f"({1 / beta / 1e9:.2f} GB/s)\n")
    for g in a.graph:
        name, step_s, grad_bytes, batches = g.split(":")
        step_s, grad_bytes, batches = float(step_s), float(grad_bytes), int(batches)
        print(f"### {name}: t_step {step_s:.3f} s, gradient {grad_bytes / 1e6:.2f} MB, {batches} batches per epoch\n")
        head = "| hosts | " + " | ".join(n for n, _, _ in NETWORKS) + " |"
        print(head)
        print("|---" * (len(NETWORKS) + 1) + "|")
        base = batches * step_s
        for p in HOSTS:
            cells = []
            for _, bw, al in NETWORKS:
                ar = t_ar(p, grad_bytes, bw, al)
                epoch = math.ceil(batches / p) * (step_s + ar)
                cells.append(f"{epoch:.1f} s ({base / epoch:.1f}x; allreduce {ar * 1e3:.2f} ms/step)")
            print(f"| {p} | " + " | ".join(cells) + " |")
        print()


if __name__ == "__main__":
    main()
