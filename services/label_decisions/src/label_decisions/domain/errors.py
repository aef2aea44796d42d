"""Errors of the label decisions domain."""

from __future__ import annotations

from dataclasses import dataclass


class LabelDecisionsError(Exception):
    """Base of every error of this service."""


@dataclass(frozen=True)
class RuleViolation:
    """One rule a command breaks, by its number in domain.md where it has one."""

    rule: str
    message: str


class LabelRefusedError(LabelDecisionsError):
    """A command breaks one or more rules; nothing was recorded."""

    def __init__(self, violations: list[RuleViolation]) -> None:
        self.violations = violations
        super().__init__("; ".join(f"{v.rule}: {v.message}" for v in violations))
