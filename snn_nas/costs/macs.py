"""Parameter count and dense MACs per time step, with thop and counting rules for our layers.

Counting rule (ours, documented and tested): only synaptic operations cost MACs, i.e.
convolutions (``C_in / groups x kernel`` MACs per output element), linear maps
(``in_features`` per output element) and any other product of a weight with an activation.
Normalisation (BatchNorm folds into the weights at inference; GroupNorm/LayerNorm), activation
functions, pooling, additions, dropout, the LIF neurons and the group LIF cost 0 MACs. thop's
own rules charge 2 operations per element to an affine norm and some to pooling and softmax;
we override those with zero. With this rule the SNN-MLP presets at 224 x 224 count 4.363 /
8.533 / 15.154 G MACs, the published 4.4 / 8.5 / 15.2 G "FLOPs" (MACs, as in Swin); the authors'
``flops()`` also charges one operation per element to every norm and to the branch sum
(4.373 / 8.548 / 15.174 G, +0.1 to 0.2 %), which rounds to the same figures.

thop only sees modules: a synaptic operation written functionally inside a module thop has no
rule for (``F.linear``, ``einsum``, ``@``) would be missed, so the same forward also runs the
operator-level probe (``snn_nas.costs.probe``) in dense mode and adds the MACs of operations
that no thop rule covered. The count runs one forward of a single image at one time step and
works on the ``meta`` device (build the model under ``torch.device("meta")`` to count a large
model at 224 without allocating or computing anything).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from snn_nas.costs.counting import conv_macs
from snn_nas.costs.probe import OperatorProbe, spiking_neuron_modules
from snn_nas.costs.report import CostError

Rule = Callable[[nn.Module, tuple, Any], None]

#: module classes that cost 0 MACs (not synaptic); subclasses included
ZERO_MAC_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.PixelShuffle,
    nn.PixelUnshuffle,
    nn.Upsample,
    nn.ZeroPad2d,
    nn.modules.padding._ConstantPadNd,
    nn.modules.padding._ReflectionPadNd,
    nn.modules.padding._ReplicationPadNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
)
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def count_params(model: nn.Module) -> int:
    """Number of parameter elements of ``model`` (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters())


def _count_conv(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
    transposed = bool(getattr(module, "transposed", False))
    macs = conv_macs(module.weight.shape, inputs[0].shape, output.shape, transposed)
    module.total_ops += torch.DoubleTensor([macs])


def _count_linear(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
    module.total_ops += torch.DoubleTensor([module.in_features * output.numel()])


def _zero(module: nn.Module, inputs: tuple, output: Any) -> None:
    return None


def _is_activation(module: nn.Module) -> bool:
    return type(module).__module__ == "torch.nn.modules.activation"


def mac_rule(module: nn.Module) -> Rule | None:
    """Our counting rule for one module (None: no rule, its inner operations are probed)."""
    if isinstance(module, _CONTAINERS):
        return None
    if isinstance(module, nn.modules.conv._ConvNd):
        return _count_conv
    if isinstance(module, nn.Linear):
        return _count_linear
    if isinstance(module, ZERO_MAC_TYPES) or _is_activation(module):
        return _zero
    return None


def _custom_ops(model: nn.Module, extra: dict[type, Rule] | None) -> dict[type, Rule]:
    rules: dict[type, Rule] = {}
    neurons = {type(m) for _, m in spiking_neuron_modules(model)}
    group_lif = _group_lif_type()
    for module in model.modules():
        kind = type(module)
        if kind in rules:
            continue
        is_neuron = kind in neurons or (group_lif is not None and isinstance(module, group_lif))
        rule = _zero if is_neuron else mac_rule(module)
        if rule is not None:
            rules[kind] = rule
    rules.update(extra or {})
    return rules


def _group_lif_type() -> type | None:
    try:
        from snn_nas.group_lif import GroupLIF
    except ImportError:  # pragma: no cover - the module ships with the package
        return None
    return GroupLIF


def _probe_input(model: nn.Module, image_size: int | tuple[int, int] | None, in_chans: int | None) -> torch.Tensor:
    if image_size is None:
        image_size = getattr(model, "image_size", None)
    if in_chans is None:
        in_chans = getattr(model, "in_chans", None)
    if image_size is None or in_chans is None:
        raise CostError("count_params_macs: pass image_size and in_chans (the model has no such attributes)")
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    for name, value in (("image_size", height), ("image_size", width), ("in_chans", in_chans)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CostError(f"count_params_macs: {name} must be a positive integer, got {value!r}")
    reference = next(iter((*model.parameters(), *model.buffers())), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else torch.float32
    shape: tuple[int, ...] = (1, in_chans, height, width)
    if hasattr(model, "time_steps"):
        shape = (1, *shape)  # [T=1, B=1, C, H, W]: one time step (a [T, ...] input overrides time_steps)
    return torch.zeros(shape, device=device, dtype=dtype)


def count_params_macs(
    model: nn.Module,
    image_size: int | tuple[int, int] | None = None,
    in_chans: int | None = None,
    *,
    custom_ops: dict[type, Rule] | None = None,
) -> tuple[int, int]:
    """``(parameters, dense MACs of one image at one time step)`` of ``model``.

    Runs one forward of a zero image ``[1, 1, in_chans, H, W]`` (``[1, in_chans, H, W]`` for a
    model without a ``time_steps`` attribute) under thop with our rules (module docstring);
    ``image_size`` (int or ``(H, W)``) and ``in_chans`` default to the model's attributes.
    ``custom_ops`` adds or overrides thop rules ``{module class: fn(module, inputs, output)}``.
    The model is left as it was (train/eval flags, parameters, buffers).
    """
    x = _probe_input(model, image_size, in_chans)
    params = count_params(model)
    rules = _custom_ops(model, custom_ops)
    flags = {m: m.training for m in model.modules()}
    buffers_before = {m: set(m._buffers) for m in model.modules()}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # thop 0.1 imports distutils
            import thop

        known = set(rules) | set(importlib.import_module("thop.profile").register_hooks)
    except ImportError as exc:  # pragma: no cover - thop is a dependency
        warnings.warn(f"thop is unavailable ({exc}); counting dense MACs with the operator probe only", stacklevel=2)
        thop, known = None, set()

    def covered(module: nn.Module) -> bool:
        return thop is not None and type(module) in known and not isinstance(module, _CONTAINERS)

    try:
        model.eval()
        with torch.no_grad(), OperatorProbe(model, dense=True, skip=covered) as probe:
            if thop is not None:
                thop_macs, _ = thop.profile(model, inputs=(x,), custom_ops=rules, verbose=False)
            else:
                model(x)
                thop_macs = 0.0
    finally:
        for module, before in buffers_before.items():
            for name in ("total_ops", "total_params"):
                if name not in before:
                    module._buffers.pop(name, None)
        for module, flag in flags.items():
            module.training = flag
    return params, round(thop_macs) + probe.dense_macs
