"""The public surface: what ``import interlock`` offers, and the one exception tree."""

from __future__ import annotations

import inspect

import interlock
from interlock import errors


def test_every_public_name_resolves():
    for name in interlock.__all__:
        assert getattr(interlock, name) is not None, name


def test_every_exception_is_exported_and_rooted_at_interlock_error():
    classes = {
        name: cls
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, Exception) and cls.__module__ == errors.__name__
    }
    assert set(classes) == set(errors.__all__)
    for name, cls in classes.items():
        assert issubclass(cls, errors.InterlockError), name
        assert name in interlock.__all__, f"{name} missing from interlock.__all__"
        # The tree drawn in the module docstring names every class.
        assert name in errors.__doc__, f"{name} missing from the exception tree"


def test_connect_is_lazy_and_is_the_client():
    from interlock.client import connect

    assert interlock.connect is connect
