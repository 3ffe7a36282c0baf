"""Training progress on stderr: a rich progress bar on a terminal, one line per epoch otherwise."""

from __future__ import annotations

import sys
from typing import Any


class EpochProgress:
    """Context manager showing epochs and steps; silent when ``enabled`` is False.

    On a TTY a rich bar shows the running loss of the current epoch; every finished epoch
    prints one summary line (also when stderr is not a TTY, e.g. in logs).
    """

    def __init__(self, *, enabled: bool, total_epochs: int, steps: int) -> None:
        self.enabled = enabled
        self.total_epochs = total_epochs
        self.steps = steps
        self._progress: Any = None
        self._task: Any = None
        self._console: Any = None

    def __enter__(self) -> EpochProgress:
        if not self.enabled:
            return self
        from rich.console import Console

        self._console = Console(stderr=True)
        if sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[loss]}"),
                console=self._console,
                transient=True,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None

    def start_epoch(self, epoch: int) -> None:
        if self._progress is None:
            return
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(f"epoch {epoch}/{self.total_epochs}", total=self.steps, loss="")

    def step(self, step: int, loss: float) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=step, loss=f"loss {loss:.4f}")

    def end_epoch(self, metrics: dict[str, Any]) -> None:
        if self._console is None:
            return
        val = metrics.get("val_acc")
        held_out = (
            f"val loss {metrics['val_loss']:.4f} acc {val:.2%}"
            if isinstance(val, float) and val == val
            else "no held-out part (trained on train+val)"
        )
        self._console.print(
            f"epoch {metrics['epoch']}/{self.total_epochs}: train loss {metrics['train_loss']:.4f} "
            f"acc {metrics['train_acc']:.2%} | {held_out} | {metrics['epoch_s']:.1f} s",
            highlight=False,
        )
