"""A training run's per-epoch curve: its info (pure) and a PNG (matplotlib, imported on draw)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snn_nas.plots.backend import _matplotlib


@dataclass(frozen=True)
class TrainingCurveInfo:
    """Per-epoch series of a training run (accuracies in percent; NaN where not reported).

    ``series``: ``(name, axis, values)`` of the series that hold at least one finite value, the
    only ones drawn and in the legend: ``axis`` is ``"accuracy"`` (left, percent) or ``"loss"``
    (right). ``test_acc``: the final model's test accuracy in percent (None: not measured),
    marked at the last epoch.
    """

    epochs: tuple[int, ...]
    val_acc: tuple[float, ...]
    train_loss: tuple[float, ...]
    val_loss: tuple[float, ...]
    title: str
    train_acc: tuple[float, ...] = ()
    test_acc: float | None = None
    series: tuple[tuple[str, str, tuple[float, ...]], ...] = ()

    @property
    def accuracy_label(self) -> str:
        """The left axis says which accuracies it holds."""
        names = [name.split(" (")[0] for name, axis, _ in self.series if axis == "accuracy"]
        if self.test_acc is not None:
            names.append("test")
        words = {"training accuracy": "training", "validation accuracy": "validation", "test": "test"}
        return (" / ".join(words.get(n, n) for n in names) or "no") + " accuracy (%)"


def training_curve_info(
    history: Sequence[dict[str, Any]],
    *,
    title: str = "training curve",
    test_acc: float | None = None,
    trained_on: str = "",
) -> TrainingCurveInfo:
    """Series of ``history`` (the ``TrainResult.history`` metric dicts, one per epoch);
    ``test_acc``: the final model's test accuracy (a fraction); ``trained_on``: what the training
    accuracy was measured on, for its label (e.g. ``train+val``)."""

    def series(name: str, scale: float = 1.0) -> tuple[float, ...]:
        out = []
        for h in history:
            value = h.get(name)
            try:
                out.append(scale * float(value))
            except (TypeError, ValueError):
                out.append(math.nan)
        return tuple(out)

    epochs = tuple(int(h.get("epoch", i + 1)) for i, h in enumerate(history))
    on = f" (on {trained_on})" if trained_on else ""
    candidates = (
        (f"training accuracy{on}", "accuracy", series("train_acc", 100.0)),
        ("validation accuracy", "accuracy", series("val_acc", 100.0)),
        (f"training loss{on}", "loss", series("train_loss")),
        ("validation loss", "loss", series("val_loss")),
    )
    test = None if test_acc is None or not math.isfinite(float(test_acc)) else 100.0 * float(test_acc)
    return TrainingCurveInfo(
        epochs=epochs,
        val_acc=series("val_acc", 100.0),
        train_loss=series("train_loss"),
        val_loss=series("val_loss"),
        title=title,
        train_acc=series("train_acc", 100.0),
        test_acc=test,
        series=tuple(c for c in candidates if any(math.isfinite(v) for v in c[2])),
    )


def draw_training_curve_png(info: TrainingCurveInfo, path: str | Path, *, dpi: int = 150) -> Path:
    """The accuracies that exist (left axis, percent) and the losses that exist (right axis)
    per epoch, the final test accuracy as a marked point; a legend of the drawn series only."""
    plt = _matplotlib()
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    try:
        styles = {"accuracy": ("o-", ("C0", "C4")), "loss": ("s--", ("C1", "C2"))}
        used = {"accuracy": 0, "loss": 0}
        loss_ax = None
        for name, axis, values in info.series:
            if axis == "loss" and loss_ax is None:
                loss_ax = ax.twinx()
                loss_ax.set_ylabel("loss")
            target = ax if axis == "accuracy" else loss_ax
            marker, colors = styles[axis]
            target.plot(info.epochs, values, marker, color=colors[used[axis] % 2], ms=4, label=name)
            used[axis] += 1
        if info.test_acc is not None and info.epochs:
            ax.plot([info.epochs[-1]], [info.test_acc], "*", color="C3", ms=14, label="test accuracy, final model")
            ax.annotate(f"test {info.test_acc:.2f}%", (info.epochs[-1], info.test_acc), textcoords="offset points",
                        xytext=(-8, -14), ha="right", fontsize=8, color="C3")  # fmt: skip
        ax.set_xlabel("epoch")
        ax.set_ylabel(info.accuracy_label, color="C0")
        ax.grid(True, alpha=0.3)
        handles = ax.get_legend_handles_labels()[0] + (loss_ax.get_legend_handles_labels()[0] if loss_ax else [])
        if handles:
            ax.legend(handles, [h.get_label() for h in handles], loc="center right", fontsize=8)
        ax.set_title(info.title)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        fig.tight_layout()
        out = Path(path)
        fig.savefig(out, dpi=dpi)
    finally:
        plt.close(fig)
    return out
