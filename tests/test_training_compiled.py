"""``torch.compile`` behind a flag (``snn_nas.training.compiled``): off unless asked for, and a
model whose compilation fails runs eagerly after one warning."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from snn_nas.training.compiled import COMPILE_ENV, CompiledModel, compile_requested, compiled


def test_off_unless_asked_for(monkeypatch):
    model = nn.Linear(3, 2)
    monkeypatch.delenv(COMPILE_ENV, raising=False)
    assert not compile_requested(None) and compiled(model) is model
    monkeypatch.setenv(COMPILE_ENV, "1")
    assert compile_requested(None) and isinstance(compiled(model), CompiledModel)
    assert compiled(model, False) is model


def test_a_failing_compiler_falls_back_to_eager_with_one_warning():
    def broken_backend(graph, example_inputs):
        raise RuntimeError("no compiler here")

    torch._dynamo.reset()
    model = nn.Linear(3, 2)
    wrapper = CompiledModel(model, backend=broken_backend)
    assert list(wrapper.parameters()) == list(model.parameters())  # one set of weights
    x = torch.randn(4, 3)
    with pytest.warns(UserWarning, match="torch.compile failed"):
        out = wrapper(x)
    assert torch.equal(out, model(x)) and wrapper.failed and "no compiler here" in wrapper.failed
    assert torch.equal(wrapper(x), model(x))  # eager from now on, no second warning
    wrapper.eval()
    assert not model.training
