"""Benchmark: seconds per candidate of SAHD pre-screening (build the untrained model + score it).

    python experiments/benchmarks/zero_cost.py                    # 32 quick-space samples, B = 64
    python experiments/benchmarks/zero_cost.py --samples 8 --batch 32 --space quick --threads 1

For ``--samples`` seeded samples of the space (seeds ``--seed``, ``--seed`` + 1, ...), builds each
at ``--image-size`` with 1 input channel and 10 classes (``build_model(..., seed=0)``) and scores
SAHD (``snn_nas.zero_cost.sahd``) on the first ``--batch`` validation images of ``--dataset``.
One untimed warm-up candidate first. Prints one row per candidate (T, LIF modules, parameters,
SAHD, seconds), the median and max seconds per candidate, how many scored ``-inf`` and the Spearman
rank correlation of SAHD with the parameter count over the finite scores.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch


def _spearman(a: list[float], b: list[float]) -> float:
    if len(a) < 2:
        return math.nan
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=32, help="seeded samples of the space")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first sample")
    parser.add_argument("--space", default="quick")
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64, help="calibration images (validation split)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args(argv)

    import snn_nas
    from snn_nas.data import load_dataset
    from snn_nas.neurons import spiking_neurons
    from snn_nas.zero_cost import sahd

    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset, image_size=args.image_size)
    images = torch.stack([data.val[i][0] for i in range(args.batch)])
    in_chans = int(images.shape[1])
    space = snn_nas.load_space(args.space)
    genotypes = [space.decode(space.sample(args.seed + i)) for i in range(args.samples)]

    def candidate(genotype: snn_nas.Genotype) -> tuple[torch.nn.Module, float, float]:
        start = time.perf_counter()
        model = snn_nas.build_model(genotype, num_classes=10, image_size=args.image_size, in_chans=in_chans, seed=0)
        score = sahd(model, images)
        return model, score, time.perf_counter() - start

    candidate(genotypes[0])  # warm-up: first-call overheads (allocator, kernels)

    print(f"SAHD pre-screening: {args.space} space, {args.dataset} B={args.batch}, threads {torch.get_num_threads()}")
    print(f"{'seed':>5} {'key':<13}{'T':>2}{'LIFs':>6}{'params':>9}{'SAHD':>10}{'seconds':>9}")
    seconds, scores, params = [], [], []
    for i, genotype in enumerate(genotypes):
        model, score, wall = candidate(genotype)
        n_params = sum(p.numel() for p in model.parameters())
        seconds.append(wall)
        scores.append(score)
        params.append(n_params)
        lifs = len(spiking_neurons(model))
        row = f"{args.seed + i:>5} {genotype.key():<13}{genotype.time_steps:>2}{lifs:>6}{n_params:>9}"
        print(f"{row}{score:>10.2f}{wall:>9.3f}")
    finite = [(s, p) for s, p in zip(scores, params, strict=True) if math.isfinite(s)]
    print(
        f"\nseconds per candidate (build + SAHD): median {statistics.median(seconds):.3f}, max {max(seconds):.3f}, "
        f"total {sum(seconds):.2f}"
    )
    print(
        f"-inf scores: {len(scores) - len(finite)} of {len(scores)}; Spearman(SAHD, params) over finite: "
        f"{_spearman([s for s, _ in finite], [p for _, p in finite]):.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
