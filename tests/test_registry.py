from __future__ import annotations

import pytest

from snn_nas.errors import SnnNasError
from snn_nas.registry import Registry, UnknownNameError


def test_register_get_and_names_sorted():
    reg: Registry[int] = Registry("widget")
    reg.register("b", 2)

    @reg.register("a")
    def _a() -> int:
        return 1

    assert reg.get("b") == 2
    assert reg.get("a")() == 1
    assert reg.names() == ["a", "b"]
    assert "a" in reg and "c" not in reg
    assert len(reg) == 2


def test_unknown_name_lists_valid_names():
    reg: Registry[int] = Registry("widget")
    reg.register("alpha", 1)
    reg.register("beta", 2)
    with pytest.raises(UnknownNameError) as info:
        reg.get("gamma")
    message = str(info.value)
    assert "unknown widget 'gamma'" in message
    assert "alpha, beta" in message
    assert isinstance(info.value, SnnNasError) and isinstance(info.value, LookupError)


def test_duplicate_registration_is_rejected():
    reg: Registry[int] = Registry("widget")
    reg.register("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", 2)
