"""Cost model on paper: GPU-hours of a search strategy on CIFAR-10 and ImageNet at published recipes.

What is *measured* here: dense MACs per image and time step of the architectures each strategy
trains (thop on the meta device, ``snn_nas.costs.count_params_macs``), as a mean over random
samples of the space within the experiment's constraints, and of the extremes a supernet step
trains. What is *assumed* (stated in the output, never measured without a GPU): the effective
multiply-accumulate rate of a GPU on these networks, given as a fraction of an H200's dense
BF16 peak (989 TFLOP/s = 494.5 T MAC/s); small spiking MLPs with LIF recurrences use a GPU
poorly, so three utilisations are shown (3 %, 10 %, 30 %).

Training one image for one epoch costs ``3 x MACs x T`` (forward, and backward at about twice the
forward); evaluating one costs ``MACs x T``. Per strategy, in image passes of the average
architecture (``c``: its training cost per image):

* **per-trial search at the proxy** (today's default): ``trials x proxy_epochs x N_train x c x
  s`` with ``s`` the share of epochs MOASHA lets run (0.78 in the quick search: 14 of 32 trials
  stopped after 1 of 2 epochs), plus a validation pass per epoch;
* **per-trial search at the recipe**: every trial trained at the published recipe (what makes a
  per-trial search cost GPU-hours per candidate on these data sets);
* **one-shot**: the supernet trained once at the published recipe's epochs (as BigNAS and OFA
  do), ``epochs x N_train x (c_largest + c_smallest + n x c)`` with the largest at its maximum
  (``largest: max``) or shrunk to the constraints (``largest: feasible``); stage 1, ``trials x
  (bn + val images) x c / 3`` (forward only); stage 2, ``candidates x 2 seeds x proxy_epochs x
  N_train x c``;
* every strategy ends with one retraining at the recipe, ``epochs x N_train x c``, shown apart.

Example::

    python experiments/benchmarks/cost_model.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass

H200_PEAK_MACS = 494.5e12  # dense BF16: 989 TFLOP/s = 494.5 T multiply-accumulates per second
UTILISATIONS = (0.03, 0.10, 0.30)


@dataclass(frozen=True)
class Setting:
    name: str
    space: str
    image_size: int
    in_chans: int
    classes: int
    train_images: int
    val_images: int
    max_params: float
    proxy_epochs: float  # epochs x subset of a per-trial proxy
    trials: int
    final_epochs: int  # published recipe (retraining; a per-trial search at the recipe; the supernet)
    stage1: int
    stage2: int


SETTINGS = (
    # CIFAR-10: experiments/cifar10.yaml's proxy (30 epochs on 40 %), 256 trials; SNN CIFAR recipes
    # train 300 epochs (e.g. SpikeDHS).
    Setting("cifar10", "quick", 32, 3, 10, 45_000, 5_000, 1e6, 30 * 0.4, 256, 300, 1000, 16),
    # ImageNet: a proxy of 5 epochs on 10 %, 64 trials; MLP-SPE's recipe is 100 epochs
    # (SEED_ARCHITECTURES.md); parameters capped at 40 M.
    Setting("imagenet", "spiking_mlp", 224, 3, 1000, 1_281_167, 50_000, 40e6, 5 * 0.1, 64, 100, 1000, 16),
)


def macs_of(genotype, setting: Setting) -> float:
    """Dense MACs of one image over all T steps (forward)."""
    import torch

    from snn_nas.builder import build_model
    from snn_nas.costs import count_params_macs

    with torch.device("meta"):
        model = build_model(genotype, setting.classes, setting.image_size, setting.in_chans)
    _, macs = count_params_macs(model, setting.image_size, setting.in_chans)
    return float(macs) * genotype.time_steps


def measured_costs(setting: Setting, samples: int) -> dict[str, float]:
    """Mean dense MACs per image of feasible random architectures, and of the sandwich extremes."""
    from snn_nas.layers.params import parameter_count
    from snn_nas.space import load_space
    from snn_nas.supernet.sampling import SubnetSampler

    space = load_space(setting.space)
    values, seed = [], 0
    while len(values) < samples and seed < 20 * samples:
        genotype = space.decode(space.sample(seed))
        seed += 1
        if parameter_count(genotype, setting.classes, setting.image_size, setting.in_chans) <= setting.max_params:
            values.append(macs_of(genotype, setting))

    def accept(genotype) -> bool:
        return parameter_count(genotype, setting.classes, setting.image_size, setting.in_chans) <= setting.max_params

    sampler = SubnetSampler(space)
    feasible = SubnetSampler(space, accept=accept, largest="feasible")
    rng = sampler.rng(0, 0)
    return {
        "mean": statistics.fmean(values),
        "largest": macs_of(sampler.extreme(rng, "max"), setting),
        "largest_feasible": macs_of(feasible.extreme(rng, "max"), setting),
        "smallest": macs_of(sampler.extreme(rng, "min"), setting),
    }


def strategy_macs(setting: Setting, c: dict[str, float], random_subnets: int = 2) -> dict[str, float]:
    """Dense MACs of each strategy's search (module docstring) and of the final retraining."""
    train, n = 3.0 * c["mean"], setting.train_images
    per_trial = setting.trials * setting.proxy_epochs * (n * train * 0.78 + setting.val_images * c["mean"])
    at_recipe = setting.trials * setting.final_epochs * (n * train + setting.val_images * c["mean"])
    others = c["smallest"] + random_subnets * c["mean"]
    supernet = setting.final_epochs * n * 3.0 * (c["largest"] + others)
    feasible = setting.final_epochs * n * 3.0 * (c["largest_feasible"] + others)
    stages = setting.stage1 * (400 + setting.val_images) * c["mean"]
    stages += setting.stage2 * 2 * setting.proxy_epochs * n * train
    return {
        "per-trial, proxy": per_trial,
        "per-trial, recipe": at_recipe,
        "one-shot, largest max": supernet + stages,
        "one-shot, feasible": feasible + stages,
        "  of which stages 1+2": stages,
        "final retraining": setting.final_epochs * n * train,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=64, help="random architectures per space")
    args = parser.parse_args(argv)
    for setting in SETTINGS:
        c = measured_costs(setting, args.samples)
        print(
            f"\n{setting.name} ({setting.space} space, {setting.image_size} px): dense MACs per image over T, mean of "
            f"{args.samples} feasible random architectures {c['mean']:.3g}; largest {c['largest']:.3g} (feasible "
            f"{c['largest_feasible']:.3g}); smallest {c['smallest']:.3g} (measured)"
        )
        header = "strategy".ljust(22) + "".join(f"GPU-h @{u:.0%}".rjust(14) for u in UTILISATIONS)
        print(f"  {header}   (assumed: H200 dense BF16 peak x utilisation)")
        for name, macs in strategy_macs(setting, c).items():
            hours = [macs / (H200_PEAK_MACS * u) / 3600 for u in UTILISATIONS]
            print("  " + name.ljust(22) + "".join(f"{h:14.3g}" for h in hours))
    return 0


if __name__ == "__main__":
    sys.exit(main())
