"""Rule refusals shared by every domain: pure, standard library only.

A domain command that breaks rules raises ``RuleViolationError`` with every violated rule named
(by its number in domain.md where it has one); the HTTP edge turns it into a 422 problem.
A refused command records nothing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuleViolation:
    """One rule a command breaks."""

    rule: str
    message: str


class DomainError(Exception):
    """Base of every domain error."""


class RuleViolationError(DomainError):
    """A command breaks one or more rules; nothing was recorded."""

    def __init__(self, violations: list[RuleViolation]) -> None:
        if not violations:
            raise ValueError("a refusal names at least one violated rule")
        self.violations = violations
        super().__init__("; ".join(f"{v.rule}: {v.message}" for v in violations))


class NotFoundError(DomainError):
    """The command or query names something that does not exist (HTTP 404)."""


class ConflictError(DomainError):
    """The command conflicts with what already happened, e.g. a second approval (HTTP 409)."""


class Violations:
    """Collects violations while a command checks its rules, then refuses once."""

    def __init__(self) -> None:
        self.items: list[RuleViolation] = []

    def add(self, rule: str, message: str) -> None:
        """Record one violation."""
        self.items.append(RuleViolation(rule, message))

    def check(self, ok: bool, rule: str, message: str) -> None:
        """Record a violation unless ``ok``."""
        if not ok:
            self.add(rule, message)

    def raise_if_any(self) -> None:
        """Raise ``RuleViolationError`` naming every violation collected.

        Raises:
            RuleViolationError: at least one rule was broken.
        """
        if self.items:
            raise RuleViolationError(self.items)
