#!/usr/bin/env python3
"""Reference merges in PyTorch, from mergekit's published formulas, computed in float64 and
rounded once to the output dtype, compared element by element with the files ckpt wrote.

stdin: JSON list of cases {method (or 'mean': torch's mean of the inputs), inputs: [file...], base: file|null, weights, t, density,
lambda, seed, normalize, output: file}. stdout: JSON list, per case {tensors: {name: {ulp, n,
nan_mismatch}}, missing: [...]}: ulp is the largest distance in units in the last place of the
output dtype between ckpt's element and the reference's.
"""
import json
import struct
import sys

import numpy as np
import torch

DT = {'F32': torch.float32, 'BF16': torch.bfloat16, 'F16': torch.float16, 'F64': torch.float64, 'I64': torch.int64}


def load(path):
    if path.endswith('.safetensors'):
        raw = open(path, 'rb').read()
        n = struct.unpack('<Q', raw[:8])[0]
        header = json.loads(raw[8:8 + n])
        out = {}
        for name, h in header.items():
            if name == '__metadata__':
                continue
            a, b = h['data_offsets']
            buf = bytearray(raw[8 + n + a:8 + n + b])
            dt = DT[h['dtype']]
            if dt == torch.bfloat16:
                t = torch.frombuffer(buf, dtype=torch.int16).view(torch.bfloat16) if buf else torch.empty(0, dtype=dt)
            else:
                t = torch.frombuffer(buf, dtype=dt) if buf else torch.empty(0, dtype=dt)
            out[name] = t.reshape(h['shape'])
        return out
    obj = torch.load(path, map_location='cpu')
    out = {}

    def walk(prefix, v):
        if isinstance(v, torch.Tensor):
            out[prefix] = v
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(f'{prefix}.{k}' if prefix else str(k), x)
    walk('', obj)
    return out


def fnv1a(text):
    h = 0x811c9dc5
    for b in text.encode():
        h ^= b
        h = (h * 0x01000193) & 0xffffffff
    return h


def mulberry32(seed, n):
    """The first n outputs of mulberry32(seed): its state is seed + k * 0x6d2b79f5, so vectorizable."""
    M = np.uint64(0xffffffff)
    k = np.arange(1, n + 1, dtype=np.uint64)
    s = (np.uint64(seed) + k * np.uint64(0x6d2b79f5)) & M
    t = ((s ^ (s >> np.uint64(15))) * (s | np.uint64(1))) & M
    t = t ^ ((t + (((t ^ (t >> np.uint64(7))) * (t | np.uint64(61))) & M)) & M)
    return (t ^ (t >> np.uint64(14))) & M


def trim(d, density):
    if density >= 1:
        return d
    flat = d.flatten()
    k = int(density * flat.numel())
    order = torch.sort(flat.abs().float(), descending=True, stable=True).indices[:k]
    mask = torch.zeros_like(flat)
    mask[order] = 1
    return (flat * mask).reshape(d.shape)


def dare(d, density, seed, model, name):
    if density >= 1:
        return d
    u = mulberry32(fnv1a(f'{seed}:{model}:{name}'), d.numel()).astype(np.float64)
    keep = torch.from_numpy(u < density * 4294967296.0).reshape(d.shape)
    return torch.where(keep, d / density, torch.zeros_like(d))


def merge(case, name, xs, base):
    m = case['method']
    w = case.get('weights') or [1.0] * len(xs)
    if m == 'mean':
        return torch.stack(xs).mean(0)
    if m == 'linear':
        res = sum(wi * x for wi, x in zip(w, xs) if wi != 0)
        return res / sum(w) if case.get('normalize', True) else res
    if m == 'slerp':
        t = case.get('t', 0.5)
        v0, v1 = xs
        n0, n1 = v0.norm(), v1.norm()
        dot = ((v0 / n0 if n0 > 1e-8 else v0) * (v1 / n1 if n1 > 1e-8 else v1)).sum()
        if abs(dot) > 0.9995:
            return (1 - t) * v0 + t * v1
        theta0 = torch.arccos(dot)
        sin0 = torch.sin(theta0)
        tt = theta0 * t
        return torch.sin(theta0 - tt) / sin0 * v0 + torch.sin(tt) / sin0 * v1
    deltas = [x - base for x in xs]
    if m == 'ties':
        deltas = [trim(d, case.get('density', 1)) for d in deltas]
    if m in ('dare-linear', 'dare-ties'):
        deltas = [dare(d, case.get('density', 1), case.get('seed', 0), i, name) for i, d in enumerate(deltas)]
    wd = torch.stack([wi * d for wi, d in zip(w, deltas)])
    wt = torch.tensor(w, dtype=torch.float64).reshape([-1] + [1] * (wd.dim() - 1))
    if m in ('ties', 'dare-ties'):
        majority = torch.where(wd.sum(0) >= 0, 1.0, -1.0).double()
        mask = (wd.sign() == majority)
        mixed = (wd * mask).sum(0)
        divisor = (wt * mask).sum(0)
        divisor[divisor == 0] = 1
    else:
        mixed = wd.sum(0)
        divisor = torch.full_like(mixed, float(sum(w)) if abs(sum(w)) >= 1e-8 else 1.0)
    normalize = case.get('normalize', m == 'ties')
    if normalize:
        mixed = mixed / divisor
    mixed = mixed * case.get('lambda', 1.0)
    return base + mixed


def ordered(t):
    """Integers ordered like the floats they encode (sign-magnitude to two's complement)."""
    bits = t.view(torch.int32).long() if t.dtype == torch.float32 else t.view(torch.int16).long()
    sign_bit = 1 << (31 if t.dtype == torch.float32 else 15)
    return torch.where(bits < 0, -(bits + sign_bit), bits)


def main():
    cases = json.load(sys.stdin)
    results = []
    for case in cases:
        ins = [load(f) for f in case['inputs']]
        base = load(case['base']) if case.get('base') else None
        out = load(case['output'])
        res = {'tensors': {}, 'missing': []}
        for name, first in ins[0].items():
            if name not in out:
                res['missing'].append(name)
                continue
            got = out[name]
            if not first.is_floating_point():
                res['tensors'][name] = {'ulp': 0 if torch.equal(got, first) else 1 << 30, 'n': first.numel(), 'nan_mismatch': 0}
                continue
            ref = merge(case, name, [x[name].double() for x in ins], base[name].double() if base else None).to(first.dtype)
            nan_mismatch = int((ref.isnan() != got.isnan()).sum())
            ok = ~(ref.isnan() | got.isnan())
            ulp = int((ordered(ref[ok]) - ordered(got[ok])).abs().max()) if ok.any() else 0
            res['tensors'][name] = {'ulp': ulp, 'n': first.numel(), 'nan_mismatch': nan_mismatch}
        results.append(res)
    json.dump(results, sys.stdout)


if __name__ == '__main__':
    main()
