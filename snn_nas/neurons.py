"""Multi-step LIF neurons of the spiking family, behind one module.

``LIF`` maps a current sequence ``[T, ...]`` to spikes ``[T, ...]``. Every call starts from a
membrane of 0 (``v_reset``), so the state is reset before every batch by construction; no
state survives between forward calls.

Maths (spikingjelly's ``LIFNode`` with ``decay_input=True`` and ``v_reset=0``)::

    H[t] = V[t-1] + (X[t] - V[t-1]) / tau
    S[t] = heaviside(H[t] - v_threshold)            # fires when H >= v_threshold
    V[t] = H[t] * (1 - S[t])                        # hard reset (S detached if detach_reset)
    V[t] = H[t] - S[t] * v_threshold                # soft reset

The backward pass of the heaviside uses the surrogate gradient named by ``surrogate``.

Backends (same maths; ``tests/test_neurons.py`` checks that they agree):

* ``"spikingjelly"``: spikingjelly's ``LIFNode`` in multi-step mode;
* ``"torch"``: our own ``torch.autograd.Function`` (``snn_nas.lif_kernels``): the forward
  recurrence runs without an autograd graph and saves only ``H``; the backward runs the
  surrogate recurrence itself. Its kernels run eagerly; ``lif_kernels.use_compile(True)`` (or
  ``SNN_NAS_LIF_COMPILE=1``) compiles them with ``torch.compile`` for long runs;
* ``"auto"`` (default): ``"torch"`` on CPU (faster there: ``experiments/benchmarks/lif.py``
  measures it), spikingjelly's native kernels on CUDA; ``"torch"`` wherever tau = 1 (which
  spikingjelly's ``LIFNode`` rejects).

Mixed precision (``torch.autocast`` with bfloat16 or float16): the synaptic layers run in half
precision, the neuron does not. Both backends integrate a half-precision current in float32
(``H`` and ``V`` are float32 tensors) and return the spikes, exactly 0 or 1, in the current's
dtype; so a spike differs from the float32 model's only where rounding the current to half
precision moved it across ``v_threshold`` (``tests/test_neurons.py`` bounds that share).
"""

from __future__ import annotations

import torch
from torch import nn

from snn_nas.errors import SnnNasError
from snn_nas.genotype import Neuron
from snn_nas.lif_kernels import SURROGATE_GRADIENTS, lif_multistep
from snn_nas.registry import Registry

SURROGATES: Registry[type] = Registry("surrogate function")
BACKENDS = ("auto", "torch", "spikingjelly")
RESETS = ("hard", "soft")
HALF_DTYPES = (torch.float16, torch.bfloat16)


class NeuronError(SnnNasError, ValueError):
    """Bad LIF settings; the message names the setting and what is allowed."""


def _register_spikingjelly_surrogates() -> None:
    from spikingjelly.activation_based import surrogate

    SURROGATES.register("sigmoid", surrogate.Sigmoid)
    SURROGATES.register("atan", surrogate.ATan)
    SURROGATES.register("piecewise_quadratic", surrogate.PiecewiseQuadratic)


_register_spikingjelly_surrogates()


class LIF(nn.Module):
    """Multi-step leaky integrate-and-fire neuron: ``[T, ...]`` currents -> ``[T, ...]`` spikes.

    Parameter names follow spikingjelly. ``backend`` picks the implementation: ``"torch"`` (our
    own kernel, ``snn_nas.lif_kernels``), ``"spikingjelly"`` (its ``LIFNode``) or ``"auto"``
    (ours on CPU, spikingjelly's on CUDA).
    """

    is_spiking_neuron = True

    def __init__(
        self,
        tau: float = 2.0,
        v_threshold: float = 1.0,
        reset: str = "hard",
        detach_reset: bool = True,
        surrogate: str = "sigmoid",
        alpha: float = 4.0,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.tau = float(tau)
        self.v_threshold = float(v_threshold)
        self.reset = reset
        self.detach_reset = detach_reset
        self.surrogate = surrogate
        self.alpha = float(alpha)
        if reset not in RESETS:
            raise NeuronError(f"reset: {reset!r} is not allowed; choose 'hard' or 'soft'")
        if backend not in BACKENDS:
            raise NeuronError(f"backend: {backend!r} is not allowed; choose one of {list(BACKENDS)}")
        if not self.tau >= 1.0:
            raise NeuronError(f"tau: {tau!r} is not allowed; it must be >= 1")
        SURROGATES.get(surrogate)  # unknown name -> error listing the valid ones
        self.backend = backend
        self.node: nn.Module | None = None
        if backend == "spikingjelly" and self.tau <= 1.0:
            raise NeuronError("tau: spikingjelly's LIFNode needs tau > 1; use backend 'torch' or 'auto' for tau = 1")
        if backend != "torch" and self.tau > 1.0:
            from spikingjelly.activation_based import neuron

            self.node = neuron.LIFNode(
                tau=self.tau,
                decay_input=True,
                v_threshold=self.v_threshold,
                v_reset=0.0 if reset == "hard" else None,
                surrogate_function=SURROGATES.get(surrogate)(alpha=self.alpha),
                detach_reset=detach_reset,
                step_mode="m",
            )

    def uses_own_kernel(self, device: torch.device) -> bool:
        """Whether a forward on ``device`` runs our kernel (else spikingjelly's ``LIFNode``)."""
        if self.node is None or self.backend == "torch":
            return True
        return self.backend == "auto" and device.type != "cuda"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``[T, ...]`` input currents. Returns ``[T, ...]`` binary spikes (same dtype; the
        membrane of a float16 / bfloat16 input is float32)."""
        if self.uses_own_kernel(x.device):
            return lif_multistep(
                x, self.tau, self.v_threshold, self.reset == "hard", self.detach_reset, self.surrogate, self.alpha
            )
        self.node.reset()
        out = self.node(x.float() if x.dtype in HALF_DTYPES else x).to(x.dtype)  # membrane in float32
        self.node.reset()
        return out

    def extra_repr(self) -> str:
        return (
            f"tau={self.tau}, v_threshold={self.v_threshold}, reset={self.reset}, "
            f"detach_reset={self.detach_reset}, surrogate={self.surrogate}(alpha={self.alpha}), "
            f"backend={self.backend}"
        )


def lif_from_gene(gene: Neuron, **overrides: object) -> LIF:
    """A ``LIF`` with the parameters of a genotype's ``Neuron``."""
    kwargs: dict[str, object] = dict(
        tau=gene.tau,
        v_threshold=gene.v_threshold,
        reset=gene.reset,
        detach_reset=gene.detach_reset,
        surrogate=gene.surrogate,
        alpha=gene.alpha,
    )
    kwargs.update(overrides)
    return LIF(**kwargs)  # type: ignore[arg-type]


def spiking_neurons(model: nn.Module) -> list[tuple[str, LIF]]:
    """All spiking neurons of ``model`` with their qualified names."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, LIF)]


__all__ = [
    "BACKENDS",
    "LIF",
    "SURROGATES",
    "SURROGATE_GRADIENTS",
    "NeuronError",
    "lif_from_gene",
    "lif_multistep",
    "spiking_neurons",
]
