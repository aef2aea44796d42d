"""Public contracts: what goes on Kafka, one module per context (pydantic and stdlib only).

Importing this package registers every contract in ``clr_events.registry.registry``.
Contracts never carry an organisation's indicator scores (R11); the one restricted
contract that carries assessment results for the label decision is listed in
``RESTRICTED`` and travels on its own topic, never on a public one.
"""

from clr_events.contracts import assessments, collaboration, label_decisions, training_certification

RESTRICTED: frozenset[str] = frozenset({"assessments.ApprovedForDecision.v1"})
"""Contract types that are not public: consumed by named services only."""

__all__ = [
    "RESTRICTED",
    "assessments",
    "collaboration",
    "label_decisions",
    "training_certification",
]
