"""How long a trial on event data spends preparing its data, cold and with the frame cache.

Each step runs in a fresh Python process, as a Ray trial does, with its own empty cache folder
for the first: (1) the first trial of a search: nmnist5k simulated, then binned at T = 4;
(2) the second trial at the same T: both read from the cache; (3) a trial at a new T = 8: the
streams from the cache, binned once more. Prints seconds per step (load = ``load_dataset``,
bin = ``at_time_steps``). Usage: python experiments/benchmarks/event_frames.py [IMAGE_SIZE]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

STEP = """
import json, time
t0 = time.perf_counter()
from snn_nas.data import load_dataset
t1 = time.perf_counter()
data = load_dataset("nmnist5k", image_size={size})
t2 = time.perf_counter()
binned = data.without_test().at_time_steps({t})
t3 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "load_s": t2 - t1, "bin_s": t3 - t2, "train": len(binned.train)}}))
"""


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "SNN_NAS_CACHE": cache}
        for name, t in (("first trial (cold cache), T=4", 4), ("second trial, T=4", 4), ("a trial at a new T=8", 8)):
            out = subprocess.run(
                [sys.executable, "-c", STEP.format(size=size, t=t)], env=env, capture_output=True, text=True, check=True
            )
            times = json.loads(out.stdout.strip().splitlines()[-1])
            prep = times["load_s"] + times["bin_s"]
            print(f"{name}: load {times['load_s']:.2f} s + bin {times['bin_s']:.2f} s = {prep:.2f} s", flush=True)


if __name__ == "__main__":
    main()
