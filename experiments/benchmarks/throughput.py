"""Throughput of trials on a device: images/s, a proxy trial's wall time, trials per hour, and the
train step against a plain reference implementation (issue 17).

    python experiments/benchmarks/throughput.py                      # the CPU (and CUDA when present)
    python experiments/benchmarks/throughput.py --device cuda        # what gpu_check.sh runs
    python experiments/benchmarks/throughput.py --smoke              # tiny sizes, a few seconds per part
    python experiments/benchmarks/throughput.py --compile --json out.json

For each device it prints:

1. **images/s** of training (``snn_nas.training.loops.train_one_epoch``: batch, forward over T = 4,
   loss, backward, AdamW step) for ``mlp_spe_micro`` (batch 50) and ``mlp_spe_t`` (batch 32) on
   CIFAR-shaped synthetic data (``synthetic:train=45000,val=5000,like=cifar``: 50,000 uint8
   images 3 x 32 x 32, 10 classes, served as CIFAR is, crop + flip on the training part) and on
   ``mnist5k`` (padded to 32 px), with batches from the device-resident path and from the
   ``DataLoader`` path (``snn_nas.data.resident``), each the median of ``--repeats`` timings;
2. **a proxy trial**: ``run_trial`` of the quick experiment (``experiments/quick.yaml``: 2 epochs,
   batch 50, the val part evaluated every epoch, costs measured) for its warm-start design
   ``mlp_spe_micro``, with resident data and with the loader (the "before"), interleaved;
   on CUDA also on the CIFAR-shaped data;
3. **trials per hour** with 1, 2 and 4 such trials at once on the device, each in its own
   process (CPU: ``max(1, cores // k)`` threads each; CUDA: one GPU shared, memory capped at
   ``1/k`` each, GPU utilisation sampled with NVML when available), ``k x 3600 / wall``;
4. **the train step against the reference**: ``mlp_spe_t`` at 32 px, batch 32, T = 4 (as
   ``train_step.py``), ours against ``reference_mixer.ReferenceMLPSPE``, interleaved. The
   reference is not the authors' code (not available offline): it is our own plain
   implementation of the same published architecture in the published style (spikingjelly
   ``LIFNode`` multi-step neurons, plain conv/linear/BN modules, no fused fast paths), with
   exactly ``mlp_spe_t``'s parameter tensors (checked); see ``reference_mixer.py``. Both in
   float32, and, since mixed precision is what a CUDA trial runs (and ``SNN_NAS_CPU_AMP=bf16``
   can make a CPU trial run), ours and the reference under bfloat16 autocast too.

``--compile`` adds ``torch.compile`` of ``mlp_spe_micro``: compile time, step time, and the net
gain per quick trial (120 steps) after paying the compile time. Figures are medians; wall time
and this process's CPU time are both printed (CPU time is less sensitive to other load on a
shared machine). Nothing here is estimated: a figure not measured is not printed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the snn-nas command sets it (snn_nas/perf.py)
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO = Path(__file__).resolve().parents[2]
CIFAR_SHAPED = "synthetic:train=45000,val=5000,test=16,like=cifar"
BATCH = {"mlp_spe_micro": 50, "mlp_spe_t": 32}


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ---------------------------------------------------------------------- 1. images per second
def images_per_second(
    preset: str, data: Any, device: torch.device, *, resident: bool, steps: int, repeats: int
) -> dict[str, float]:
    """Median images/s (wall and process CPU) of ``steps`` training steps through the engine's loop."""
    from snn_nas.builder import build_model
    from snn_nas.data.resident import make_augment_generator, make_batches
    from snn_nas.presets import get_preset
    from snn_nas.training.loops import amp_dtype, train_one_epoch

    model = build_model(get_preset(preset), data.num_classes, data.image_size, data.in_chans, seed=0).to(device)
    model.time_steps = 4
    batch = BATCH[preset]
    batches = make_batches(
        data.train, device=device, batch_size=batch, shuffle=True, drop_last=True, resident=resident,
        generator=torch.Generator().manual_seed(0), augment_generator=make_augment_generator(device, 0),
    )  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    amp = amp_dtype(device, True)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)

    def run(n: int) -> None:
        train_one_epoch(model, batches, optimizer, scheduler, scaler, device=device, amp=amp, label_smoothing=0.1,
                        grad_clip=5.0, max_batches=n, check_every=n)  # fmt: skip
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    run(2)  # warm-up (allocator, cuDNN autotuning)
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run(steps)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    images = steps * batch
    return {"wall": images / med(walls), "cpu": images / med(cpus) * torch.get_num_threads(), "batch": batch}


# ---------------------------------------------------------------------- 2. a proxy trial
def quick_spec(device: torch.device, dataset: str | None = None, max_batches: int | None = None) -> Any:
    from dataclasses import replace

    from snn_nas.search.experiment import load_experiment
    from snn_nas.search.trial import TrialSpec

    spec = TrialSpec.from_experiment(load_experiment(REPO / "experiments" / "quick.yaml"))
    config = dict(spec.train_config)
    if dataset:
        config["dataset"] = dataset
    if max_batches:
        config["max_batches_per_epoch"] = max_batches
    return replace(spec, train_config=tuple(sorted(config.items())), gpus=1.0 if device.type == "cuda" else 0.0)


def proxy_trial(spec: Any, data: Any, resident: bool) -> tuple[float, float, dict[str, Any]]:
    """Wall and CPU seconds of one quick proxy trial of ``mlp_spe_micro``, and its record."""
    from snn_nas.data.resident import BUDGET_ENV
    from snn_nas.search.trial import run_trial

    previous = os.environ.get(BUDGET_ENV)
    if not resident:
        os.environ[BUDGET_ENV] = "0"  # every part falls back to the DataLoader: the path before issue 17
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        record = run_trial({}, space=None, spec=spec, baseline="mlp_spe_micro", data=data)
        return time.perf_counter() - wall, time.process_time() - cpu, record
    finally:
        if previous is None:
            os.environ.pop(BUDGET_ENV, None)
        else:
            os.environ[BUDGET_ENV] = previous


# ---------------------------------------------------------------------- 3. trials per hour
def _trial_worker(device: str, threads: int, share: float, dataset: str, max_batches: int | None, barrier: Any,
                  results: Any) -> None:  # fmt: skip
    torch.set_num_threads(threads)
    from snn_nas.perf import tune_cpu_allocator
    from snn_nas.training import load_config_data

    tune_cpu_allocator()
    dev = torch.device(device)
    if dev.type == "cuda" and share < 1.0:
        torch.cuda.set_per_process_memory_fraction(share, dev)
    spec = quick_spec(dev, dataset, max_batches)
    data = load_config_data(spec.config())
    barrier.wait()
    started = time.time()
    _, _, record = proxy_trial(spec, data, resident=True)
    results.put((started, time.time(), record["status"]))


def trials_per_hour(device: torch.device, k: int, dataset: str, max_batches: int | None) -> dict[str, Any]:
    """``k`` proxy trials at once, one process each; trials/hour from the wall time of the batch."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(k + 1), ctx.Queue()
    threads = max(1, (os.cpu_count() or 1) // k) if device.type == "cpu" else 1
    procs = [
        ctx.Process(target=_trial_worker, args=(str(device), threads, 1.0 / k, dataset, max_batches, barrier, results))
        for _ in range(k)
    ]
    for proc in procs:
        proc.start()
    barrier.wait()  # every worker has imported torch and loaded its data
    util = GpuUtilisation(device)
    done = [results.get() for _ in range(k)]
    util.stop()
    for proc in procs:
        proc.join()
    wall = max(end for _, end, _ in done) - min(start for start, _, _ in done)
    return {"k": k, "threads": threads, "wall_s": wall, "trials_per_hour": k * 3600 / wall,
            "statuses": sorted(s for _, _, s in done), "gpu_util": util.mean()}  # fmt: skip


class GpuUtilisation:
    """Mean GPU utilisation (%) sampled every 0.2 s by NVML while it runs (None without NVML or CUDA)."""

    def __init__(self, device: torch.device) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = None
        if device.type == "cuda":
            try:
                torch.cuda.utilization(device)
            except Exception:
                return
            self._thread = threading.Thread(target=self._run, args=(device,), daemon=True)
            self._thread.start()

    def _run(self, device: torch.device) -> None:
        while not self._stop.wait(0.2):
            self.samples.append(float(torch.cuda.utilization(device)))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def mean(self) -> float | None:
        return med(self.samples) if self.samples else None


# ---------------------------------------------------------------------- 4. against the reference
def train_step_ratio(device: torch.device, repeats: int, batch: int = 32) -> dict[str, Any]:
    from reference_mixer import ReferenceMLPSPE, check_same_parameters
    from train_step import interleaved_times, make_step

    from snn_nas.builder import build_model
    from snn_nas.presets import get_preset

    ours = build_model(get_preset("mlp_spe_t"), num_classes=10, image_size=32, seed=0).to(device)
    reference = ReferenceMLPSPE(num_classes=10, image_size=32, time_steps=4).to(device)
    params = check_same_parameters(reference, ours)
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, 32, 32, generator=gen).to(device)
    labels = torch.randint(0, 10, (batch,), generator=gen).to(device)
    steps = {
        "ours fp32": make_step(ours, images, labels),
        "reference fp32": make_step(reference, images, labels),
        "ours bf16 autocast": make_step(ours, images, labels, torch.bfloat16),
        "reference bf16 autocast": make_step(reference, images, labels, torch.bfloat16),
    }
    times = interleaved_times(steps, repeats, warmup=1)
    out: dict[str, Any] = {"params": params, "batch": batch}
    for name, (walls, cpus) in times.items():
        out[name] = {"wall_ms": 1e3 * med(walls), "cpu_ms": 1e3 * med(cpus), "images_per_s": batch / med(walls)}
    return out


# ---------------------------------------------------------------------- --compile
def compile_gain(device: torch.device, data: Any, steps: int) -> dict[str, float]:
    from train_step import make_step

    from snn_nas.builder import build_model
    from snn_nas.presets import get_preset
    from snn_nas.training.compiled import CompiledModel

    model = build_model(get_preset("mlp_spe_micro"), data.num_classes, data.image_size, data.in_chans, seed=0)
    model = model.to(device)
    images = torch.stack([data.train[i][0] for i in range(50)]).to(device)
    labels = torch.tensor([data.train[i][1] for i in range(50)], device=device)
    wrapper = CompiledModel(model)
    compiled_step, eager_step = make_step(wrapper, images, labels), make_step(model, images, labels)
    start = time.perf_counter()
    compiled_step()  # traces and compiles the training graph
    compile_s = time.perf_counter() - start
    walls: dict[str, list[float]] = {"compiled": [], "eager": []}
    for _ in range(steps):
        for name, step in (("compiled", compiled_step), ("eager", eager_step)):
            start = time.perf_counter()
            step()
            walls[name].append(time.perf_counter() - start)
    compiled_ms, eager_ms = 1e3 * med(walls["compiled"]), 1e3 * med(walls["eager"])
    trial_steps = 120  # the quick proxy: 2 epochs of 60 batches
    return {"compile_s": compile_s, "compiled_ms": compiled_ms, "eager_ms": eager_ms,
            "net_gain_per_trial_s": (eager_ms - compiled_ms) * trial_steps / 1e3 - compile_s,
            "failed": wrapper.failed or ""}  # fmt: skip


# ---------------------------------------------------------------------- the report
def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with open("/proc/cpuinfo") as handle:
        name = next((ln.split(":", 1)[1].strip() for ln in handle if ln.startswith("model name")), "?")
    return f"{name}, {torch.get_num_threads()} threads"


def part_images(device: torch.device, sets: dict[str, Any], steps: int, repeats: int) -> list[dict[str, Any]]:
    print(f"1. training images/s, T=4, median of {repeats} x {steps} steps (wall; from CPU time)")
    rows = []
    for set_name, data in sets.items():
        for preset in ("mlp_spe_micro", "mlp_spe_t"):
            n = 1 if preset == "mlp_spe_t" and device.type == "cpu" else steps
            for resident in (True, False):
                r = images_per_second(preset, data, device, resident=resident, steps=n, repeats=repeats)
                rows.append({"data": set_name, "model": preset, "path": "resident" if resident else "loader", **r})
                print(
                    f"   {set_name:13s} {preset:14s} batch {r['batch']:3d} {rows[-1]['path']:9s} "
                    f"{r['wall']:8.1f} img/s  ({r['cpu']:.1f})",
                    flush=True,
                )
    return rows


def part_trials(device: torch.device, sets: dict[str, Any], cifar_name: str, args: argparse.Namespace) -> list:
    print("2. quick proxy trial (mlp_spe_micro, 2 epochs, batch 50, val every epoch, costs), resident vs loader")
    trials = []
    for set_name in ["mnist5k"] + (["cifar-shaped"] if device.type == "cuda" or args.smoke else []):
        spec = quick_spec(device, cifar_name if set_name == "cifar-shaped" else None, 2 if args.smoke else None)
        proxy_trial(spec, sets[set_name], True)  # warm-up: first-call costs of this process
        times: dict[str, list[tuple[float, float]]] = {"resident": [], "loader": []}
        status = ""
        for _ in range(1 if args.smoke else args.trial_repeats):
            for path in ("loader", "resident"):
                wall, cpu, record = proxy_trial(spec, sets[set_name], path == "resident")
                times[path].append((wall, cpu))
                status = record["status"]
        for path, values in times.items():
            wall, cpu = med([w for w, _ in values]), med([c for _, c in values])
            trials.append({"data": set_name, "path": path, "wall_s": wall, "cpu_s": cpu, "runs": len(values),
                           "status": status})  # fmt: skip
            print(f"   {set_name:13s} {path:9s} wall {wall:6.2f} s (CPU {cpu:.2f} s), median of {len(values)}")
        res, load = (next(t for t in trials[-2:] if t["path"] == path) for path in ("resident", "loader"))
        print(
            f"   {set_name:13s} resident speed-up: {load['wall_s'] / res['wall_s']:.2f}x wall, "
            f"{load['cpu_s'] / res['cpu_s']:.2f}x CPU time",
            flush=True,
        )
    return trials


def part_per_hour(device: torch.device, dataset: str, smoke: bool) -> list[dict[str, Any]]:
    print("3. trials per hour, k quick proxy trials at once (mnist5k, resident data)")
    rows = []
    for k in (1, 2) if smoke else (1, 2, 4):
        r = trials_per_hour(device, k, dataset, 2 if smoke else None)
        rows.append(r)
        util = f", GPU utilisation {r['gpu_util']:.0f} %" if r["gpu_util"] is not None else ""
        print(
            f"   k={k} ({r['threads']} thread(s) each): {r['wall_s']:.1f} s for {k} -> "
            f"{r['trials_per_hour']:.0f} trials/hour{util}; {r['statuses']}",
            flush=True,
        )
    return rows


def part_reference(device: torch.device, repeats: int) -> dict[str, Any]:
    print("4. mlp_spe_t train step (32 px, batch 32, T=4) against the plain reference (reference_mixer.py)")
    ratio = train_step_ratio(device, repeats)
    ref = ratio["reference fp32"]
    for name in ("ours fp32", "reference fp32", "ours bf16 autocast", "reference bf16 autocast"):
        r = ratio[name]
        print(
            f"   {name:24s} {r['wall_ms']:8.1f} ms/step  CPU {r['cpu_ms']:8.1f} ms  {r['images_per_s']:7.1f} img/s  "
            f"x{ref['wall_ms'] / r['wall_ms']:.2f} of reference fp32 (CPU time x{ref['cpu_ms'] / r['cpu_ms']:.2f})"
        )
    like = ratio["reference bf16 autocast"]["wall_ms"] / ratio["ours bf16 autocast"]["wall_ms"]
    print(
        f"   same precision: fp32 x{ref['wall_ms'] / ratio['ours fp32']['wall_ms']:.2f}, bf16 x{like:.2f}; "
        f"{ratio['params']} parameters each"
    )
    return ratio


def bench_device(device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    from snn_nas.training import load_config_data

    print(f"\n== {device}: {describe(device)}; torch {torch.__version__}; load average {os.getloadavg()[0]:.2f}")
    quick = quick_spec(device).config()
    cifar_name = "synthetic:train=480,val=32,test=16,like=cifar" if args.smoke else CIFAR_SHAPED
    started = time.perf_counter()
    cifar = load_config_data(quick.__class__(**{**quick.to_dict(), "dataset": cifar_name}))
    sets = {"cifar-shaped": cifar, "mnist5k": load_config_data(quick)}
    print(f"data: {cifar.describe()} (made in {time.perf_counter() - started:.1f} s)", flush=True)
    steps, repeats = (2, 1) if args.smoke else (args.steps, args.repeats)
    report: dict[str, Any] = {"device": str(device), "what": describe(device), "load": os.getloadavg()[0]}
    report["images_per_s"] = part_images(device, sets, steps, repeats)
    report["proxy_trial"] = part_trials(device, sets, cifar_name, args)
    report["trials_per_hour"] = part_per_hour(device, quick.dataset, args.smoke)
    report["train_step"] = part_reference(device, 1 if args.smoke else args.step_repeats)
    if args.compile:
        print("5. torch.compile of mlp_spe_micro (mnist5k batch 50)")
        r = report["compile"] = compile_gain(device, sets["mnist5k"], 3 if args.smoke else 10)
        print(
            f"   compile {r['compile_s']:.1f} s; step {r['compiled_ms']:.1f} ms compiled vs {r['eager_ms']:.1f} ms "
            f"eager; net gain per quick trial (120 steps) {r['net_gain_per_trial_s']:+.1f} s {r['failed']}"
        )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", action="append", help="cpu or cuda (repeatable; default: cpu, and cuda if present)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and one repeat: checks that it runs")
    parser.add_argument("--steps", type=int, default=8, help="training steps per images/s timing")
    parser.add_argument("--repeats", type=int, default=3, help="timings per images/s figure")
    parser.add_argument("--trial-repeats", type=int, default=3, help="proxy trials per data path")
    parser.add_argument("--step-repeats", type=int, default=5, help="interleaved train steps per model")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile")
    parser.add_argument("--json", metavar="PATH", help="write every figure to this JSON file")
    args = parser.parse_args(argv)

    from snn_nas.errors import SnnNasError
    from snn_nas.perf import tune_cpu_allocator
    from snn_nas.training import resolve_device

    try:
        devices = [resolve_device(d) for d in args.device] if args.device else [torch.device("cpu")]
    except SnnNasError as exc:
        print(f"throughput.py: error: {exc}", file=sys.stderr)
        return 2
    if not args.device and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    tune_cpu_allocator()
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    reports = [bench_device(device, args) for device in devices]
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=1, default=str))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
