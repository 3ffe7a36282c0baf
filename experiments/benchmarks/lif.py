"""Benchmark: forward + backward of the multi-step LIF, our kernel versus spikingjelly's.

    python experiments/benchmarks/lif.py                       # T=4, [4, 32, 96, 8, 8], CPU
    python experiments/benchmarks/lif.py --shape 4 32 234 8 8 --threads 1 --repeats 50
    python experiments/benchmarks/lif.py --compile --tune-allocator

Times ``y = LIF(x); y.backward(g)`` (fresh leaf each repeat), interleaving the backends round by
round so that load from other processes hits them alike; prints the median and the fastest
wall time, the median CPU time of this process, minor page faults per call, and the speedup of
each backend over spikingjelly (ratio of medians).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch


def _time_call(lif: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor) -> tuple[float, float, int]:
    leaf = x.detach().requires_grad_()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    cpu, wall = time.process_time(), time.perf_counter()
    lif(leaf).backward(grad)
    if x.is_cuda:
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs="+", default=[4, 32, 96, 8, 8], help="[T, B, ...]")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of --repeats calls")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true", help="also time our kernel under torch.compile")
    parser.add_argument("--tune-allocator", action="store_true", help="snn_nas.perf.tune_cpu_allocator() first")
    parser.add_argument("--reset", default="hard", choices=["hard", "soft"])
    parser.add_argument("--no-detach", action="store_true", help="detach_reset=False")
    args = parser.parse_args(argv)

    from snn_nas import lif_kernels
    from snn_nas.neurons import LIF
    from snn_nas.perf import tune_cpu_allocator

    if args.tune_allocator:
        print(f"tune_cpu_allocator: {tune_cpu_allocator()}")
    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(args.shape, generator=gen) * 1.5 + 0.5).to(args.device)
    grad = torch.randn(args.shape, generator=gen).to(args.device)
    settings = dict(reset=args.reset, detach_reset=not args.no_detach)
    backends: dict[str, tuple[torch.nn.Module, bool]] = {
        "spikingjelly": (LIF(backend="spikingjelly", **settings), False),
        "own (eager)": (LIF(backend="torch", **settings), False),
    }
    if args.compile:
        backends["own (compiled)"] = (LIF(backend="torch", **settings), True)

    samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name in backends}
    for name, (lif, compiled) in backends.items():  # warm-up (and compilation)
        lif_kernels.use_compile(compiled)
        start = time.perf_counter()
        for _ in range(3):
            _time_call(lif, x, grad)
        print(f"warm-up {name}: {time.perf_counter() - start:.2f} s")
    for _ in range(args.rounds):
        for name, (lif, compiled) in backends.items():
            lif_kernels.use_compile(compiled)
            samples[name] += [_time_call(lif, x, grad) for _ in range(args.repeats)]
    lif_kernels.use_compile(None)

    print(f"\nLIF forward+backward, shape {args.shape}, {args.device}, threads {torch.get_num_threads()}, {settings}")
    print(f"{'backend':<16}{'median ms':>11}{'min ms':>9}{'cpu ms':>9}{'faults':>9}{'speedup':>9}")
    base = statistics.median(w for w, _, _ in samples["spikingjelly"])
    for name, rows in samples.items():
        wall = statistics.median(w for w, _, _ in rows)
        cpu = statistics.median(c for _, c, _ in rows)
        faults = statistics.median(f for _, _, f in rows)
        best = min(w for w, _, _ in rows)
        print(f"{name:<16}{wall * 1e3:>11.2f}{best * 1e3:>9.2f}{cpu * 1e3:>9.2f}{faults:>9.0f}{base / wall:>8.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
