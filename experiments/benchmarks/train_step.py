"""Benchmark: throughput of a full training step of a preset on the CPU (issue 4 item 6).

    python experiments/benchmarks/train_step.py                   # mlp_spe_t, 32 px, batch 32, T=4
    python experiments/benchmarks/train_step.py --backend spikingjelly --steps 5
    python experiments/benchmarks/train_step.py --compile-lif --tune-allocator --profile
    python experiments/benchmarks/train_step.py --reference       # the plain reference (reference_mixer.py)

One step = forward of ``[B, 3, S, S]`` images (direct encoding over T steps), cross-entropy,
backward, SGD (momentum 0.9) update. Prints images/s (median step), the achieved GFLOP/s =
6 x dense forward MACs of the batch over all T steps / median step time (2 flops per MAC, x3 for
forward + backward), and that figure as a fraction of the GFLOP/s of a 2048 x 2048 float32
matmul measured in the same process between the steps (2 n^3 flops per matmul). ``--profile`` prints the
``torch.profiler`` table of one step. ``--reference`` times ``reference_mixer.ReferenceMLPSPE``
(a plain spikingjelly implementation of ``mlp_spe_t``, same parameters) instead of our model.
``make_step`` and ``interleaved_times`` are shared with ``throughput.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch


def make_step(
    model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, amp: torch.dtype | None = None
) -> Callable[[], None]:
    """One SGD training step of ``model`` on the batch (``amp``: autocast dtype or None)."""
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    device = images.device.type

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=amp or torch.float32, enabled=amp is not None):
            logits = model(images)
        torch.nn.functional.cross_entropy(logits.float(), labels).backward()
        optimizer.step()
        if images.is_cuda:
            torch.cuda.synchronize(images.device)

    return step


def interleaved_times(
    steps: dict[str, Callable[[], None]], repeats: int, warmup: int = 2
) -> dict[str, tuple[list[float], list[float]]]:
    """Wall and process-CPU seconds of each step, ``repeats`` times, round by round (A B A B ...)
    so that load from other processes hits them alike, after ``warmup`` untimed calls each."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    out: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            wall, cpu = time.perf_counter(), time.process_time()
            step()
            out[name][0].append(time.perf_counter() - wall)
            out[name][1].append(time.process_time() - cpu)
    return out


class MatmulReference:
    """GFLOP/s of an ``n x n`` float32 matmul (``2 n^3`` flops each), sampled between the timed
    steps so that it sees the same machine load as they do."""

    def __init__(self, n: int = 2048) -> None:
        gen = torch.Generator().manual_seed(0)
        self.n = n
        self.a, self.b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
        self.out = torch.empty(n, n)
        torch.mm(self.a, self.b, out=self.out)
        self.samples: list[float] = []

    def sample(self, repeats: int = 3) -> None:
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(self.a, self.b, out=self.out)
            self.samples.append(2 * self.n**3 / (time.perf_counter() - start) / 1e9)

    def gflops(self) -> float:
        return statistics.median(self.samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="mlp_spe_t")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--time-steps", type=int, default=4)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10, help="timed steps (after --warmup)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--backend", default="auto", help="LIF backend: auto | torch | spikingjelly")
    parser.add_argument("--compile-lif", action="store_true", help="torch.compile the LIF kernels")
    parser.add_argument("--tune-allocator", action="store_true", help="snn_nas.perf.tune_cpu_allocator() first")
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table of one step")
    parser.add_argument("--reference", action="store_true", help="time the plain reference implementation")
    args = parser.parse_args(argv)

    from snn_nas import lif_kernels
    from snn_nas.builder import build_model
    from snn_nas.costs import count_params_macs
    from snn_nas.neurons import LIF
    from snn_nas.perf import tune_cpu_allocator
    from snn_nas.presets import get_preset

    if args.tune_allocator:
        print(f"tune_cpu_allocator: {tune_cpu_allocator()}")
    if args.threads:
        torch.set_num_threads(args.threads)
    lif_kernels.use_compile(True if args.compile_lif else None)

    model = build_model(get_preset(args.preset), num_classes=args.classes, image_size=args.image_size, seed=0)
    model.time_steps = args.time_steps
    for module in model.modules():
        if isinstance(module, LIF):
            module.backend = args.backend
    params, macs_per_step = count_params_macs(model, args.image_size, 3)
    if args.reference:
        from reference_mixer import ReferenceMLPSPE, check_same_parameters

        if args.preset != "mlp_spe_t":
            parser.error("--reference: the reference implements mlp_spe_t only")
        reference = ReferenceMLPSPE(num_classes=args.classes, image_size=args.image_size, time_steps=args.time_steps)
        check_same_parameters(reference, model)
        model, args.backend = reference, "spikingjelly LIFNode (plain reference)"
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(args.batch, 3, args.image_size, args.image_size, generator=gen)
    labels = torch.randint(0, args.classes, (args.batch,), generator=gen)
    step = make_step(model, images, labels)

    start = time.perf_counter()
    for _ in range(args.warmup):
        step()
    warm = time.perf_counter() - start
    reference = MatmulReference()
    times, cpu_times = [], []
    for _ in range(args.steps):
        reference.sample()
        start, cpu = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - start)
        cpu_times.append((time.process_time() - cpu) / torch.get_num_threads())
    median = statistics.median(times)
    reference.sample()
    flops = 6 * macs_per_step * args.batch * args.time_steps
    achieved = flops / median / 1e9

    print(
        f"{args.preset}: {params / 1e6:.2f} M params, {macs_per_step / 1e6:.1f} M dense MACs per image and step; "
        f"{args.image_size} px, batch {args.batch}, T {args.time_steps}, threads {torch.get_num_threads()}, "
        f"LIF backend {args.backend}{' (compiled)' if args.compile_lif else ''}"
    )
    print(f"warm-up {args.warmup} steps: {warm:.2f} s")
    print(f"step time: median {median * 1e3:.1f} ms, min {min(times) * 1e3:.1f} ms over {args.steps} steps")
    cpu_median = statistics.median(cpu_times)
    print(f"process CPU time per step / threads: median {cpu_median * 1e3:.1f} ms (less sensitive to other load)")
    print(f"images/s: {args.batch / median:.1f}")
    print(f"achieved: {achieved:.2f} GFLOP/s (6 x {flops / 6 / 1e9:.3f} G MACs per step)")
    ref = reference.gflops()
    print(f"matmul 2048^2 float32: {ref:.2f} GFLOP/s (median of {len(reference.samples)}, sampled between steps)")
    print(f"fraction of matmul: {achieved / ref:.3f} (from CPU time: {flops / cpu_median / 1e9 / ref:.3f})")

    if args.profile:
        with torch.profiler.profile() as prof:
            step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
