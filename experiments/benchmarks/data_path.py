"""Does the image-folder data path keep a retraining fed? (issue 27)

    python experiments/benchmarks/data_path.py                   # 2,000 JPEGs of 256 px, 0-2 data workers
    python experiments/benchmarks/data_path.py --images 10000 --workers 0 1 2 4
    python experiments/benchmarks/data_path.py --smoke           # 200 JPEGs, a few seconds

1. **A synthetic image folder**, made here: ``--images`` random-texture JPEGs of ``--size`` px
   (quality 90, about ImageNet's file size at 256 px) in 10 class folders, ``train/`` and a small
   ``val/``, read through ``snn_nas.data.load_dataset("imagefolder")`` exactly as a retraining
   reads ImageNet.
2. **Images per second** through a ``DataLoader`` (batch 64, persistent workers, pinned memory
   on CUDA: what ``snn_nas.training.shards`` builds), for each number of data workers, with the
   plain training transform (random resized crop to 224, flip) and with the published recipes'
   (bicubic, RandAugment 2 ops m9, random erasing 0.25); the first batches (worker start-up) are
   not timed. Per data worker: the rate divided by the number of worker processes (0: the main
   process decodes).
3. **What the model needs**: one training step of ``mlp_spe_t`` (T = 4, 224 px) on this CPU,
   measured (``snn_nas.training.estimate.measure_step``), in images/s: the data path must beat
   it to not be the limit of a CPU retraining here. A GPU's need is not measured here (no
   device was lent); the docs say how to read it off ``--dry-run`` on a GPU node.

Writes ``docs/data/data_path.csv`` (``--csv``) and prints a table.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def make_folder(root: Path, images: int, size: int, classes: int = 10, seed: int = 0) -> Path:
    """``root/train/<class>/*.jpg`` (``images``) and ``root/val/<class>/*.jpg`` (a tenth)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for part, count in (("train", images), ("val", max(classes, images // 10))):
        for i in range(count):
            folder = root / part / f"c{i % classes}"
            folder.mkdir(parents=True, exist_ok=True)
            base = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)  # a coarse texture, then noise
            pixels = np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))
            pixels = np.clip(pixels + rng.integers(-20, 21, pixels.shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.jpg", quality=90)
    return root


def images_per_second(dataset, workers: int, batch: int, warmup: int, timed: int) -> float:
    """Images/s of a ``DataLoader`` over ``dataset`` (persistent workers, pinned on CUDA)."""
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=workers > 0,
                        pin_memory=torch.cuda.is_available(), drop_last=True)  # fmt: skip
    batches = iter(loader)
    for _ in range(warmup):
        next(batches)
    started = time.perf_counter()
    count = 0
    for _ in range(timed):
        x, _ = next(batches)
        count += x.shape[0]
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--csv", type=Path, default=REPO / "docs" / "data" / "data_path.csv")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.images, args.workers, args.batch, args.csv = 200, [0, 1], 16, None
    from snn_nas.data import load_dataset
    from snn_nas.presets import get_preset
    from snn_nas.training.augment import with_training_transform
    from snn_nas.training.estimate import measure_step
    from snn_nas.training.published import get_recipe

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="data_path") as folder:
        made = time.perf_counter()
        make_folder(Path(folder), args.images, args.size)
        print(f"{args.images} JPEGs of {args.size} px made in {time.perf_counter() - made:.1f} s", flush=True)
        data = load_dataset("imagefolder", data_root=folder, image_size=224)
        recipe = with_training_transform(data, get_recipe("mixer_snn_imagenet").augment)
        timed = max(2, min(20, args.images // args.batch - 4))
        for label, splits in (("plain (crop + flip)", data), ("recipe (+ RandAugment, erasing, bicubic)", recipe)):
            for workers in args.workers:
                rate = images_per_second(splits.train, workers, args.batch, warmup=2, timed=timed)
                rows.append({"transform": label, "data_workers": workers, "images_per_s": round(rate, 1),
                             "images_per_s_per_worker": round(rate / max(workers, 1), 1)})  # fmt: skip
                print(rows[-1], flush=True)
    rate = measure_step(get_preset("mlp_spe_t"), num_classes=1000, image_size=224, in_chans=3, batch=2,
                        device=torch.device("cpu"), steps=1)  # fmt: skip
    need = 1 / rate.seconds_per_image
    rows.append({"transform": "mlp_spe_t training step on this CPU (T=4, 224 px)", "data_workers": "",
                 "images_per_s": round(need, 2), "images_per_s_per_worker": ""})  # fmt: skip
    print(rows[-1], f"({os.cpu_count()} cores; one intra-op thread)", flush=True)
    if args.csv is not None:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with args.csv.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
