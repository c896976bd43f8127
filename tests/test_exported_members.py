"""The public API is what `__all__` says, sorted, and every name in it exists."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "revealed",
    "revealed.schema",
    "revealed.store",
    "revealed.pipeline",
    "revealed.errors",
    "revealed.sim",
    "revealed.ope",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_complete(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported == sorted(exported), f"{name}.__all__ is not sorted"
    assert len(set(exported)) == len(exported)
    for member in exported:
        assert hasattr(module, member), f"{name}.__all__ names {member!r}, which does not exist"


def test_public_classes_are_exported() -> None:
    import revealed

    public = {n for n in dir(revealed) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(revealed.__all__)
