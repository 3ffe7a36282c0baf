"""A training run's per-epoch curve: its info (pure) and a PNG (matplotlib, imported on draw)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snn_nas.plots.backend import _matplotlib


@dataclass(frozen=True)
class TrainingCurveInfo:
    """Per-epoch series of a training run (accuracy in percent; NaN where not reported)."""

    epochs: tuple[int, ...]
    val_acc: tuple[float, ...]
    train_loss: tuple[float, ...]
    val_loss: tuple[float, ...]
    title: str


def training_curve_info(history: Sequence[dict[str, Any]], *, title: str = "training curve") -> TrainingCurveInfo:
    """Series of ``history`` (the ``TrainResult.history`` metric dicts, one per epoch)."""

    def series(name: str, scale: float = 1.0) -> tuple[float, ...]:
        out = []
        for h in history:
            value = h.get(name)
            out.append(float("nan") if value is None else scale * float(value))
        return tuple(out)

    epochs = tuple(int(h.get("epoch", i + 1)) for i, h in enumerate(history))
    return TrainingCurveInfo(
        epochs=epochs,
        val_acc=series("val_acc", 100.0),
        train_loss=series("train_loss"),
        val_loss=series("val_loss"),
        title=title,
    )


def draw_training_curve_png(info: TrainingCurveInfo, path: str | Path, *, dpi: int = 150) -> Path:
    """Validation accuracy (left axis) and losses (right axis) per epoch."""
    plt = _matplotlib()
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    try:
        ax.plot(info.epochs, info.val_acc, "o-", color="C0", label="val accuracy (%)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation accuracy (%)", color="C0")
        ax.grid(True, alpha=0.3)
        loss_ax = ax.twinx()
        loss_ax.plot(info.epochs, info.train_loss, "s--", color="C1", ms=4, label="train loss")
        loss_ax.plot(info.epochs, info.val_loss, "^:", color="C2", ms=4, label="val loss")
        loss_ax.set_ylabel("loss")
        handles = ax.get_legend_handles_labels()[0] + loss_ax.get_legend_handles_labels()[0]
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
