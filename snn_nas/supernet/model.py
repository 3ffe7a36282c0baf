"""The supernet: one store of shared weights, and every architecture of a space as a view of it.

``Supernet(bounds)`` allocates the store tensors of ``snn_nas.supernet.layout.store_layout`` and
initialises them (torch's default inits, seeded). It does not re-implement any layer: for a
genotype it builds the ordinary model of ``snn_nas.builder.build_model`` once on the meta device
(a *skeleton*, no memory) and runs it with ``torch.func.functional_call``, its parameters being
slices of the store and its batch-norm buffers views of the store's. So

    Supernet.forward(x, genotype)  ==  Supernet.subnet(genotype)(x)

exactly (the same layer code on the same numbers; ``tests/test_supernet.py`` checks equality in
train and eval mode), and gradients of a forward flow into the store slices the architecture
uses. ``subnet(genotype)`` returns the real model with those numbers copied in: costs, SOPs,
checkpoints and ``load_model`` work on it as on any built model.

Parameters are passed as contiguous copies of their slices (identical memory layout to the
extracted model, so identical results); buffers as views, so that a training-mode forward
updates the shared running statistics in place, or, where a buffer is cut from several
segments (a stream after a patch-encoding cell), as copies written back after the forward
(they are recalibrated per architecture before evaluation, ``snn_nas.supernet.evaluate``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from snn_nas.genotype import Genotype
from snn_nas.supernet.bounds import SupernetBounds, SupernetError
from snn_nas.supernet.layout import AxisSlice, Entry, axis_slices, fits, store_key, store_layout

PLAN_CACHE = 256  # skeletons kept (meta-device models: a few kB each)


@dataclass
class _Item:
    name: str
    slot: str
    cut: tuple[AxisSlice, ...]
    buffer: bool


@dataclass
class _Plan:
    skeleton: nn.Module
    items: list[_Item]

    def __post_init__(self) -> None:
        # buffers cut from several segments: passed as copies, written back after a training forward
        self.copied = [item for item in self.items if item.buffer and not _is_view(item.cut)]


def slot_name(key: str) -> str:
    """A store key as a parameter/buffer name (``.`` is not allowed there)."""
    return key.replace(".", "/")


def take(tensor: torch.Tensor, cut: tuple[AxisSlice, ...]) -> torch.Tensor:
    """The slice ``cut`` of ``tensor``: per axis the leading ``n`` entries, or the concatenation
    of ``(start, length)`` segments. A view where no segments are concatenated."""
    out = tensor
    for axis, piece in enumerate(cut):
        if isinstance(piece, int):
            if out.shape[axis] != piece:
                out = out.narrow(axis, 0, piece)
        elif len(piece) == 1:
            out = out.narrow(axis, piece[0][0], piece[0][1])
        else:
            out = torch.cat([out.narrow(axis, start, length) for start, length in piece], dim=axis)
    return out


def _is_view(cut: tuple[AxisSlice, ...]) -> bool:
    return all(isinstance(piece, int) or len(piece) == 1 for piece in cut)


def put(tensor: torch.Tensor, cut: tuple[AxisSlice, ...], value: torch.Tensor) -> None:
    """Write ``value`` (of the shape ``take(tensor, cut)`` gives) into ``tensor`` at ``cut``."""
    target, source = [tensor], [value]
    for axis, piece in enumerate(cut):
        pieces = [(0, piece)] if isinstance(piece, int) else list(piece)
        offsets = [sum(n for _, n in pieces[:k]) for k in range(len(pieces))]
        target = [t.narrow(axis, start, n) for t in target for start, n in pieces]
        source = [v.narrow(axis, offset, n) for v in source for offset, (_, n) in zip(offsets, pieces, strict=True)]
    for t, v in zip(target, source, strict=True):
        t.copy_(v)


def _initial(entry: Entry, generator: torch.Generator) -> torch.Tensor:
    if entry.init == "count":
        return torch.zeros((), dtype=torch.long)
    if entry.init in ("ones", "zeros", "value"):
        fill = {"ones": 1.0, "zeros": 0.0, "value": entry.value}[entry.init]
        return torch.full(entry.shape, fill)
    if entry.init == "trunc_normal":
        out = torch.empty(entry.shape)
        nn.init.trunc_normal_(out, std=0.02, generator=generator)
        return out
    if entry.init == "kaiming":  # nn.Conv2d / nn.Linear reset_parameters: kaiming_uniform(a=sqrt(5))
        fan_in = math.prod(entry.shape[1:])
        bound = 1.0 / math.sqrt(fan_in) if fan_in else 0.0
        return torch.empty(entry.shape).uniform_(-bound, bound, generator=generator)
    if entry.init == "bias":
        bound = 1.0 / math.sqrt(entry.fan_in) if entry.fan_in else 0.0
        return torch.empty(entry.shape).uniform_(-bound, bound, generator=generator)
    raise SupernetError(f"store entry: unknown init {entry.init!r}")


class _Stats(nn.Module):
    """Holder of the store's buffers (batch-norm running statistics)."""


class Supernet(nn.Module):
    """Shared weights of every architecture within ``bounds`` (see the module docstring).

    ``forward(x, genotype)``: ``x`` ``[B, C, H, W]`` or ``[T, B, C, H, W]`` -> logits ``[B, K]`` of
    the sub-network ``genotype`` (``time_steps`` overrides its T). ``subnet(genotype)`` -> the
    ordinary model with the inherited weights. Genotypes outside the bounds raise
    ``SupernetError`` naming the dimension. ``meta``: allocate nothing (shapes only).
    """

    def __init__(self, bounds: SupernetBounds, *, seed: int = 0, meta: bool = False) -> None:
        super().__init__()
        self.bounds = bounds
        self.layout = store_layout(bounds)
        self.weights = nn.ParameterDict()
        self.stats = _Stats()
        generator = torch.Generator().manual_seed(seed)
        for key, entry in self.layout.items():
            if meta:  # shapes only (membership and layout checks of large spaces)
                dtype = torch.long if entry.init == "count" else torch.float32
                value = torch.empty(entry.shape, dtype=dtype, device="meta")
            else:
                value = _initial(entry, generator)
            if entry.buffer:
                self.stats.register_buffer(slot_name(key), value)
            else:
                self.weights[slot_name(key)] = nn.Parameter(value)
        self._plans: OrderedDict[str, _Plan] = OrderedDict()

    # ------------------------------------------------------------------ store access
    def store(self, key: str) -> torch.Tensor:
        """The store tensor of ``key`` (a parameter or a buffer)."""
        slot = slot_name(key)
        if slot in self.weights:
            return self.weights[slot]
        return self.stats.get_buffer(slot)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.weights.parameters())

    # ------------------------------------------------------------------ one architecture
    def plan(self, genotype: Genotype) -> _Plan:
        """The skeleton of ``genotype`` and where each of its tensors lives in the store (cached)."""
        key = genotype.key()
        cached = self._plans.get(key)
        if cached is not None:
            self._plans.move_to_end(key)
            return cached
        self.bounds.check(genotype)
        from snn_nas.builder import build_model

        b = self.bounds
        with torch.device("meta"):
            skeleton = build_model(genotype, num_classes=b.num_classes, image_size=b.image_size, in_chans=b.in_chans)
        items = []
        named = [
            *((n, t, False) for n, t in skeleton.named_parameters()),
            *((n, t, True) for n, t in skeleton.named_buffers()),
        ]
        for name, tensor, buffer in named:
            store = store_key(name, genotype, b.image_size)
            entry = self.layout.get(store)
            if entry is None:
                raise SupernetError(f"{name}: the supernet has no weights for it (slot {store!r} is not in its layout)")
            cut = axis_slices(name, tuple(tensor.shape), genotype, b)
            if not fits(tuple(tensor.shape), cut, entry.shape):
                raise SupernetError(
                    f"{name}: shape {list(tensor.shape)} does not fit the supernet's {list(entry.shape)} "
                    f"(slot {store!r})"
                )
            items.append(_Item(name, slot_name(store), cut, buffer))
        plan = _Plan(skeleton, items)
        self._plans[key] = plan
        if len(self._plans) > PLAN_CACHE:
            self._plans.popitem(last=False)
        return plan

    def tensors(self, genotype: Genotype, plan: _Plan | None = None) -> dict[str, torch.Tensor]:
        """``{name: tensor}`` of ``genotype``'s model: parameters as contiguous slices (autograd
        flows into the store), buffers as views of the store's."""
        plan = plan or self.plan(genotype)
        out = {}
        for item in plan.items:
            if item.buffer:
                out[item.name] = take(self.stats.get_buffer(item.slot), item.cut)
            else:
                out[item.name] = take(self.weights[item.slot], item.cut).contiguous()
        return out

    def forward(self, x: torch.Tensor, genotype: Genotype, *, time_steps: int | None = None) -> torch.Tensor:
        """Logits ``[B, num_classes]`` of sub-network ``genotype`` on ``x`` (``[B, C, H, W]`` or
        ``[T, B, C, H, W]``), in this module's train/eval mode."""
        plan = self.plan(genotype)
        skeleton = plan.skeleton
        skeleton.train(self.training)
        skeleton.time_steps = int(time_steps or genotype.time_steps)
        tensors = self.tensors(genotype, plan)
        out = torch.func.functional_call(skeleton, tensors, (x,), strict=True)
        if self.training:  # running statistics held as copies go back to the store
            with torch.no_grad():
                for item in plan.copied:
                    put(self.stats.get_buffer(item.slot), item.cut, tensors[item.name])
        return out

    @torch.no_grad()
    def subnet(self, genotype: Genotype, *, device: torch.device | str | None = None) -> nn.Module:
        """The ordinary model of ``genotype`` (``build_model``) with its weights and batch-norm
        statistics copied from the store, on ``device`` (default: the store's), in train mode."""
        from snn_nas.builder import build_model

        plan = self.plan(genotype)
        target = torch.device(device) if device is not None else next(iter(self.weights.values())).device
        b = self.bounds
        model = build_model(genotype, num_classes=b.num_classes, image_size=b.image_size, in_chans=b.in_chans, seed=0)
        model.load_state_dict(self.tensors(genotype, plan), strict=True)
        return model.to(target).train()

    def extra_repr(self) -> str:
        b = self.bounds
        return (
            f"space={b.space}, family={b.family}, image_size={b.image_size}, in_chans={b.in_chans}, "
            f"num_classes={b.num_classes}, stores={len(self.layout)}"
        )


def describe(supernet: Supernet) -> dict[str, Any]:
    """A short summary (for logs and checkpoints): parameters and store tensors."""
    return {"parameters": supernet.parameter_count(), "stores": len(supernet.layout)}
