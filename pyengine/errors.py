"""Errors pyengine raises for bad input: each names the field, the value and what is allowed."""

from __future__ import annotations


class SpecError(ValueError):
    """A model, hardware or plan field holds a value outside what is allowed."""

    def __init__(self, owner: str, field: str, value: object, allowed: str) -> None:
        self.owner = owner
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{owner}.{field} = {value!r} is not allowed: {allowed}")


class BackendUnavailable(RuntimeError):
    """A backend that was asked for by name cannot run here; the message says why."""
