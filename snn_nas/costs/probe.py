"""Operator-level probe: every synaptic operation a model runs, attributed to its innermost module.

``OperatorProbe`` is a context manager that, while active, intercepts the aten operators that
multiply weights with activations (``convolution``, ``mm``, ``addmm``, ``bmm``, ``baddbmm``,
``mv``, ``addmv``, ``dot``, ``linear``) with a ``TorchDispatchMode``. ``nn.Conv*``, ``nn.Linear``,
``F.linear``, ``@``, ``torch.einsum`` all reach one of these, so a synaptic operation is caught
however it is written. Forward hooks (removed on exit) keep a stack of the modules being
executed, so every operation is charged to the innermost one.

Which operand is the weight: a tensor that is a parameter or buffer of the model, or was
computed from parameters and buffers alone (a transpose, a view, a copy of a weight); the other
operand is the activation. For a convolution the weight is its kernel argument. A product of
two weights (weight preprocessing, foldable) is not counted. A product of two activations (no
weight at all, e.g. an attention score) is counted the way spikingjelly's counters do: if one
operand is binary it plays the spikes and the other the weights, else it is dense MACs.

An activation is spiking when all its values are 0 or 1 (an all-zero activation is spiking and
costs nothing). Spiking activations cost SOPs (``snn_nas.costs.counting``), real-valued ones
their dense MACs. BatchNorm, neuron updates, the group LIF, pooling and additions are not
synaptic and cost nothing here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from snn_nas.costs.counting import conv_macs, conv_sops, count_nonzero, is_binary, matmul_macs, matmul_sops

aten = torch.ops.aten

ROOT_NAME = "(model)"

#: aten overload packets that multiply a weight with an activation
PRODUCTS = {
    aten.mm: (0, 1),
    aten.addmm: (1, 2),
    aten.bmm: (0, 1),
    aten.baddbmm: (1, 2),
    aten.mv: (0, 1),
    aten.addmv: (1, 2),
    aten.dot: (0, 1),
}
CONVOLUTIONS = (aten.convolution, aten._convolution)


@dataclass
class LayerTally:
    """Running totals of one module's synaptic operations (whole batch, all time steps)."""

    name: str
    kind: str
    sops: int = 0
    macs: int = 0  # dense MACs of operations on real-valued activations
    dense_macs: int = 0  # dense MACs of all its synaptic operations
    spikes: int = 0  # non-zeros of its binary activation inputs
    spike_elements: int = 0  # elements of its binary activation inputs
    calls: int = 0

    @property
    def input_rate(self) -> float | None:
        """Firing rate of the spiking inputs (None when no input was binary)."""
        return self.spikes / self.spike_elements if self.spike_elements else None


@dataclass
class NeuronTally:
    """Spikes emitted by one spiking-neuron module (whole batch, all time steps)."""

    name: str
    kind: str
    spikes: float = 0.0
    elements: int = 0

    @property
    def rate(self) -> float:
        return self.spikes / self.elements if self.elements else 0.0


def spiking_neuron_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The spiking neurons of ``model``: ``snn_nas.neurons.LIF`` instances, group LIFs with spike
    output, modules whose ``is_spiking_neuron`` attribute is true, and spikingjelly neurons
    (``BaseNode``); never one nested inside another (a ``LIF`` may wrap a spikingjelly node)."""
    from snn_nas.group_lif import GroupLIF
    from snn_nas.neurons import LIF

    try:
        from spikingjelly.activation_based.neuron import BaseNode
    except ImportError:  # pragma: no cover - spikingjelly is a dependency
        BaseNode = ()  # type: ignore[assignment,misc]
    found: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        spiking = (
            isinstance(module, (LIF, BaseNode))
            or getattr(module, "is_spiking_neuron", False) is True
            or (isinstance(module, GroupLIF) and module.output == "spike")
        )
        if not spiking:
            continue
        if any(name.startswith(f"{outer}.") or outer == "" for outer, _ in found):
            continue
        found.append((name, module))
    return found


def reset_states(model: nn.Module) -> None:
    """Reset spikingjelly's stateful modules (membranes) to their initial state; ours keep none."""
    try:
        from spikingjelly.activation_based.base import MemoryModule
    except ImportError:  # pragma: no cover - spikingjelly is a dependency
        return
    for module in model.modules():
        if isinstance(module, MemoryModule):
            module.reset()


def _tensors(values: tuple | list) -> Iterator[torch.Tensor]:
    """The tensors among ``values`` and inside its lists/tuples (aten arguments nest one level)."""
    for value in values:
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, (tuple, list)):
            for item in value:
                if isinstance(item, torch.Tensor):
                    yield item


class _Dispatch(TorchDispatchMode):
    def __init__(self, probe: OperatorProbe) -> None:
        super().__init__()
        self.probe = probe

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.probe._observe(func, args, kwargs, out)
        return out


class OperatorProbe:
    """Count the synaptic operations ``model`` runs while the context is active.

    Use ``with OperatorProbe(model) as probe: model(x)``; then ``probe.layers`` (insertion
    ordered ``{module name: LayerTally}``) and ``probe.neurons`` (``{name: NeuronTally}``) hold
    totals over everything run inside the context. ``dense=True`` never looks at values (works on
    the ``meta`` device): every operation costs its dense MACs. ``skip(module)`` true means
    operations run inside that module (at any depth) are not counted. The model is not changed:
    hooks are removed on exit and no tensor is modified; spikingjelly's stateful modules are
    reset on entry and exit, so a measurement never starts from a stale membrane.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        dense: bool = False,
        skip: Callable[[nn.Module], bool] | None = None,
    ) -> None:
        self.model = model
        self.dense = dense
        self.skip = skip
        self.layers: dict[str, LayerTally] = {}
        self.neurons: dict[str, NeuronTally] = {}
        self._weights: dict[int, torch.Tensor] = {}
        self._stack: list[tuple[str, nn.Module, bool]] = []
        self._skipping = 0
        self._handles: list[Any] = []
        self._mode: _Dispatch | None = None

    # ------------------------------------------------------------------ context
    def __enter__(self) -> OperatorProbe:
        reset_states(self.model)
        for tensor in (*self.model.parameters(), *self.model.buffers()):
            self._weights[id(tensor)] = tensor
        names = {module: name for name, module in self.model.named_modules(remove_duplicate=False)}
        try:
            for module, name in names.items():
                self._handles.append(module.register_forward_pre_hook(self._push_hook(name or ROOT_NAME)))
                self._handles.append(module.register_forward_hook(self._pop_hook, always_call=True))
            if not self.dense:
                for name, module in spiking_neuron_modules(self.model):
                    self._handles.append(module.register_forward_hook(self._neuron_hook(name or ROOT_NAME)))
            self._mode = _Dispatch(self)
            self._mode.__enter__()
        except BaseException:
            self._remove_hooks()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._mode is not None:
                self._mode.__exit__(*exc)
                self._mode = None
        finally:
            self._remove_hooks()
            reset_states(self.model)
            self._weights.clear()
            self._stack.clear()
            self._skipping = 0

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    # ------------------------------------------------------------------ totals
    @property
    def sops(self) -> int:
        return sum(t.sops for t in self.layers.values())

    @property
    def macs(self) -> int:
        return sum(t.macs for t in self.layers.values())

    @property
    def dense_macs(self) -> int:
        return sum(t.dense_macs for t in self.layers.values())

    # ------------------------------------------------------------------ hooks
    def _push_hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any) -> None:
            skipped = self.skip is not None and bool(self.skip(module))
            self._stack.append((name, module, skipped))
            self._skipping += int(skipped)

        return hook

    def _pop_hook(self, module: nn.Module, args: Any, output: Any) -> None:
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][1] is module:
                _, _, skipped = self._stack.pop(i)
                self._skipping -= int(skipped)
                return

    def _neuron_hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if not isinstance(output, torch.Tensor) or output.is_meta:
                return
            tally = self.neurons.get(name)
            if tally is None:
                tally = self.neurons[name] = NeuronTally(name, type(module).__name__)
            tally.spikes += float(output.detach().sum(dtype=torch.float64))
            tally.elements += output.numel()

        return hook

    # ------------------------------------------------------------------ operators
    def _is_weight(self, x: Any) -> bool:
        return isinstance(x, torch.Tensor) and id(x) in self._weights

    def _observe(self, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        packet = func.overloadpacket
        if packet in CONVOLUTIONS:
            self._convolution(args, out)
        elif packet in PRODUCTS:
            i, j = PRODUCTS[packet]
            self._product(packet, args[i], args[j])
        elif packet is aten.linear:
            self._product(aten.linear, args[0], args[1])
        self._propagate_weights(args, kwargs, out)

    def _propagate_weights(self, args: tuple, kwargs: dict, out: Any) -> None:
        """Mark outputs computed from weights alone as weights (views, transposes, copies); an
        output that mixes in an activation (e.g. an in-place update of a weight copy) is not one."""
        inputs = list(_tensors((*args, *kwargs.values())))
        from_weights = bool(inputs) and all(id(x) in self._weights for x in inputs)
        for y in _tensors(out if isinstance(out, (tuple, list)) else (out,)):
            if from_weights:
                self._weights[id(y)] = y
            elif id(y) in self._weights:
                del self._weights[id(y)]

    def _tally(self) -> LayerTally | None:
        if self._skipping:
            return None
        name, module, _ = self._stack[-1] if self._stack else ("(outside)", None, False)
        tally = self.layers.get(name)
        if tally is None:
            kind = type(module).__name__ if module is not None else "function"
            tally = self.layers[name] = LayerTally(name, kind)
        return tally

    def _record(self, activation: torch.Tensor, dense: int, sops_of: Callable[[], int]) -> None:
        tally = self._tally()
        if tally is None:
            return
        tally.calls += 1
        tally.dense_macs += dense
        if not self.dense and is_binary(activation):
            tally.sops += sops_of()
            tally.spikes += count_nonzero(activation)
            tally.spike_elements += activation.numel()
        else:
            tally.macs += dense

    def _convolution(self, args: tuple, out: torch.Tensor) -> None:
        x, w = args[0], args[1]
        stride, padding, dilation, transposed, output_padding, groups = args[3:9]
        if self._is_weight(x):
            return
        dense = conv_macs(w.shape, x.shape, out.shape, bool(transposed))
        self._record(
            x,
            dense,
            lambda: conv_sops(x, w.shape, stride, padding, dilation, int(groups), bool(transposed), output_padding),
        )

    def _product(self, packet: Any, a: torch.Tensor, b: torch.Tensor) -> None:
        """``a @ b`` with ``a`` ``[..., M, K]`` (or ``[K]``) and ``b`` ``[..., K, N]`` (or ``[K]``)."""
        if packet is aten.linear:  # x [..., K] @ W.T, W [N, K]
            m, k, n, batch = a.numel() // max(a.shape[-1], 1), a.shape[-1], b.shape[0], 1
        else:
            m = a.shape[-2] if a.ndim >= 2 else 1
            k = a.shape[-1]
            n = b.shape[-1] if b.ndim >= 2 else 1
            batch = a.shape[0] if a.ndim == 3 else 1
        wa, wb = self._is_weight(a), self._is_weight(b)
        if wa and wb:
            return  # weight preprocessing: foldable, not a synaptic operation
        if wb:
            activation, fan_out = a, n
        elif wa:
            activation, fan_out = b, m
        elif not self.dense and not is_binary(a) and is_binary(b):
            activation, fan_out = b, m  # no weight operand: the binary one plays the spikes
        else:
            activation, fan_out = a, n
        self._record(
            activation,
            matmul_macs(m, k, n, batch),
            lambda: matmul_sops(count_nonzero(activation), fan_out),
        )

    def iter_layers(self) -> Iterator[LayerTally]:
        """Layers in the order they first ran a synaptic operation."""
        return iter(self.layers.values())
