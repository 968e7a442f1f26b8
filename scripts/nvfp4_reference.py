#!/usr/bin/python3
"""NVFP4 as Transformer Engine's PyTorch reference quantizer computes it, transcribed in
numpy float32 operations (E4M3 and E2M1 rounding to nearest even on exact grids), against
tensorquant's nvfp4 (test/nvfp4_codes.cpp): element codes, block scale codes, the tensor
scale and the values q d_b s_dec, bit for bit. Needs Debian's python3-numpy.

  nvfp4_reference.py NVFP4_CODES WORKDIR [SEED]
"""
import os
import subprocess
import sys

import numpy as np

f32 = np.float32
FLT_MAX = np.finfo(np.float32).max
# the positive E4M3 values (codes 0..126) and the E2M1 magnitudes (codes 0..7)
E4M3 = np.array([(m / 8) * 2.0 ** -6 if e == 0 else (1 + m / 8) * 2.0 ** (e - 7)
                 for e in range(16) for m in range(8) if not (e == 15 and m == 7)])
E2M1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6])


def nearest_even(v, grid):
    """Index of v's nearest grid value (ties to the even index), saturating; v >= 0, exact."""
    i = np.clip(np.searchsorted(grid, v), 1, len(grid) - 1)
    lo, hi = grid[i - 1], grid[i]
    up = (v - lo > hi - v) | ((v - lo == hi - v) & (i % 2 == 0))
    return np.where(v >= grid[-1], len(grid) - 1, np.where(up, i, i - 1))


def reference(x, block=16):
    amax = f32(np.max(np.abs(x)))
    with np.errstate(divide="ignore"):
        global_encode = min(f32(f32(448.0 * 6.0) / amax), FLT_MAX)
    if amax == 0 or global_encode == 0:  # the CUDA kernel's choice for an all-zero tensor
        global_encode = f32(1)
    global_decode = f32(f32(1) / global_encode)
    blocks = x.reshape(-1, block)
    vec_max = np.max(np.abs(blocks), axis=1).astype(f32)
    decode = np.minimum((vec_max / f32(6)).astype(f32) * global_encode, FLT_MAX).astype(f32)
    decode = np.minimum(decode, f32(448))
    scale_codes = nearest_even(decode.astype(np.float64), E4M3)
    d = E4M3[scale_codes].astype(f32)
    with np.errstate(divide="ignore"):
        encode = np.minimum(f32(1) / (d * global_decode).astype(f32), FLT_MAX).astype(f32)
    with np.errstate(over="ignore"):
        scaled = (blocks * encode[:, None]).astype(f32)
    magnitude = nearest_even(np.minimum(np.abs(scaled).astype(np.float64), 6.0), E2M1)
    negative = np.signbit(scaled)
    q = (E2M1[magnitude] * np.where(negative, -1.0, 1.0)).astype(f32)
    values = ((q * d[:, None]).astype(f32) * global_decode).astype(f32)
    codes = (magnitude + np.where(negative, 8, 0)).astype(np.uint8)
    return global_encode, scale_codes.astype(np.uint8), codes.reshape(-1), values.reshape(-1)


def tensors(rng):
    """Normal tensors, tensors spanning 40 decades (blocks whose scale rounds to 0), tensors
    with half their elements on E2M1 midpoints of their blocks' scales, and scaled ones."""
    for trial in range(240):
        n = 16 * int(rng.integers(1, 160))
        kind = trial % 4
        x = rng.standard_normal(n).astype(f32)
        if kind == 1:
            x = (x * 10.0 ** rng.uniform(-20, 20, n)).astype(f32)
        elif kind == 2:
            global_encode, scale_codes, _, _ = reference(x)
            step = np.repeat(E4M3[scale_codes], 16) / float(global_encode)
            midpoints = rng.choice([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0], n) * np.sign(x) * step
            keep = (np.arange(n) % 16 == 0) | (rng.random(n) < 0.5)  # keep each block's first
            x = np.where(keep, x, midpoints.astype(f32)).astype(f32)
        elif kind == 3:
            x = (x * f32(10.0 ** rng.uniform(-30, 30))).astype(f32)
        yield x


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    exe, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(int(sys.argv[3]) if len(sys.argv) > 3 else 2026)
    path, out = os.path.join(work, "in.bin"), os.path.join(work, "out")
    wrong = checked = 0
    for trial, x in enumerate(tensors(rng)):
        x.tofile(path)
        run = subprocess.run([exe, path, out], capture_output=True, text=True, check=True)
        global_encode, scale_codes, codes, values = reference(x)
        ours_values = np.fromfile(out + ".values", dtype=np.float32)
        ours_codes = np.fromfile(out + ".codes", dtype=np.uint8)
        ours_scales = np.fromfile(out + ".scales", dtype=np.uint8)
        bad = (ours_codes != codes) | (np.repeat(ours_scales, 16) != np.repeat(scale_codes, 16)) | \
              (ours_values.view(np.uint32) != values.view(np.uint32))
        if f32(float(run.stdout)) != global_encode:
            print(f"tensor {trial}: tensor scale {run.stdout.strip()}, reference {global_encode}")
            wrong += 1
        if bad.any():
            i = int(np.nonzero(bad)[0][0])
            print(f"tensor {trial}: {int(bad.sum())} elements differ, first {i}: x = {x[i]!r}, "
                  f"ours {ours_values[i]!r} (code {ours_codes[i]}, scale {ours_scales[i // 16]}), "
                  f"reference {values[i]!r} (code {codes[i]}, scale {scale_codes[i // 16]})")
        wrong += int(bad.sum())
        checked += x.size
    print(f"nvfp4 against Transformer Engine's reference: {checked} elements, {wrong} differ")
    sys.exit(1 if wrong else 0)


if __name__ == "__main__":
    main()
