"""Per-dataset default recipes for ``snn-nas train`` (``TrainConfig`` overrides).

``mnist5k`` is the CPU recipe measured to reach >= 95 % validation accuracy with the
``mlp_spe_micro`` preset in 5 epochs (it equals the ``TrainConfig`` defaults). CIFAR and image
folders follow the published spiking-MLP recipe (SGD 0.1, momentum 0.9, cosine, label
smoothing 0.1).
"""

from __future__ import annotations

from typing import Any

from snn_nas.data import parse_dataset_name

RECIPES: dict[str, dict[str, Any]] = {
    "mnist5k": {},
    "digits": {"image_size": 16, "epochs": 20},
    "synthetic": {"epochs": 2},
    "cifar10": {
        "optimizer": "sgd",
        "lr": 0.1,
        "batch_size": 128,
        "weight_decay": 5e-4,
        "epochs": 100,
        "warmup_epochs": 2.0,
        "label_smoothing": 0.1,
        "num_workers": 2,
    },
    "imagefolder": {
        "optimizer": "sgd",
        "lr": 0.1,
        "batch_size": 256,
        "weight_decay": 1e-4,
        "epochs": 100,
        "warmup_epochs": 5.0,
        "label_smoothing": 0.1,
        "num_workers": 8,
    },
}
RECIPES["cifar100"] = dict(RECIPES["cifar10"])


def recipe_for(dataset: str) -> dict[str, Any]:
    """``TrainConfig`` overrides for ``dataset`` (its options ignored); empty for unknown names."""
    name, _ = parse_dataset_name(dataset)
    return dict(RECIPES.get(name, {}))
