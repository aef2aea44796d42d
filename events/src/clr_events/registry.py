"""Public contract types by type string, with versions and one-step upcasters.

A type string is ``<context>.<EventName>.v<major>`` and is declared, never derived from
the Python path. Within a major version only additive, optional changes are allowed, and
readers ignore fields they do not know (contracts use ``extra="ignore"``). A breaking
change is a new major version registered beside the old one, plus an upcaster from the
old major to the new; decoding an old event runs the chain up to the newest major.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from clr_events.envelope import TYPE_PATTERN
from clr_events.errors import UnknownEventTypeError

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
C = TypeVar("C", bound="Contract")


class Contract(BaseModel):
    """Base of every public event contract: immutable, data only, tolerant reader."""

    model_config = ConfigDict(frozen=True, extra="ignore")


@functools.lru_cache(maxsize=1024)
def parse_type(type_: str) -> tuple[str, int]:
    """Split ``ctx.Name.vN`` into (``ctx.Name``, N).

    Raises:
        UnknownEventTypeError: the string is not of that form.
    """
    match = TYPE_PATTERN.match(type_)
    if match is None:
        raise UnknownEventTypeError(f"not a contract type string: {type_!r}")
    return f"{match['context']}.{match['name']}", int(match["major"])


class ContractRegistry:
    """Contract classes by (name, major) and the upcasters between majors."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, int], type[Contract]] = {}
        self._types: dict[type[Contract], str] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self._latest: dict[str, int] = {}

    def event(self, type_: str) -> Callable[[type[C]], type[C]]:
        """Class decorator: register a contract under its type string."""
        key = parse_type(type_)

        def register(model: type[C]) -> type[C]:
            if key in self._models:
                raise ValueError(f"{type_} is registered twice")
            self._models[key] = model
            self._types[model] = type_
            self._latest[key[0]] = max(key[1], self._latest.get(key[0], 0))
            return model

        return register

    def upcaster(self, from_type: str) -> Callable[[Upcaster], Upcaster]:
        """Decorator: register the pure function taking data of ``from_type`` to the next major."""
        key = parse_type(from_type)

        def register(function: Upcaster) -> Upcaster:
            self._upcasters[key] = function
            return function

        return register

    def type_of(self, model: type[Contract] | Contract) -> str:
        """The type string of a registered contract class or instance."""
        cls = model if isinstance(model, type) else type(model)
        try:
            return self._types[cls]
        except KeyError:
            raise UnknownEventTypeError(f"{cls.__name__} is not a registered contract") from None

    def latest_major(self, name: str) -> int:
        """The newest registered major version of ``ctx.Name``."""
        try:
            return self._latest[name]
        except KeyError:
            raise UnknownEventTypeError(f"no contract named {name!r}") from None

    def types(self) -> list[str]:
        """Every registered type string, sorted."""
        return sorted(self._types.values())

    def models(self) -> dict[str, type[Contract]]:
        """Every registered contract class by type string."""
        return {type_: model for model, type_ in self._types.items()}

    def decode(self, type_: str, data: dict[str, Any]) -> Contract:
        """Validate data of ``type_`` into the newest major's contract, upcasting step by step.

        Raises:
            UnknownEventTypeError: the type, or a step of its upcaster chain, is unknown.
            pydantic.ValidationError: the data does not fit the contract.
        """
        name, major = parse_type(type_)
        latest = self.latest_major(name)
        while major < latest:
            step = self._upcasters.get((name, major))
            if step is None:
                raise UnknownEventTypeError(f"no upcaster from {name}.v{major}")
            data = step(dict(data))
            major += 1
        model = self._models.get((name, major))
        if model is None:
            raise UnknownEventTypeError(f"{type_} is newer than any registered version")
        contract: Contract = model.__pydantic_validator__.validate_python(data)
        return contract


registry = ContractRegistry()
"""The project's registry; contracts/<context>.py modules register into it."""
