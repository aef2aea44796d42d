"""Private stored events to public contracts: one mapping per service, nothing else leaks.

A stored event whose type is not in the mapping is private and is not published. A mapped
one is validated into its contract, which drops every field the contract does not declare
(so, for example, indicator scores on a stored assessment never reach Kafka: R11).
"""

from __future__ import annotations

from collections.abc import Callable

from clr_events.envelope import Envelope
from clr_events.outbox.relay import Translator, envelope_for
from clr_events.registry import Contract, registry
from clr_events.store.base import StoredEvent


def contract_translator(
    source: str,
    mapping: dict[str, type[Contract]],
    *,
    subject: Callable[[StoredEvent, Contract], str] | None = None,
) -> Translator:
    """A relay translator from stored type names to contract classes.

    ``subject``: the envelope subject (and Kafka key) when it is not the stream id, e.g.
    the organisation for a topic whose consumers need one organisation's events in order.
    """

    def translate(stored: StoredEvent) -> Envelope | None:
        model = mapping.get(stored.type)
        if model is None:
            return None
        contract = model.model_validate(stored.data)
        envelope = envelope_for(
            stored,
            source=source,
            type_=registry.type_of(model),
            data=contract.model_dump(mode="json"),
        )
        if subject is not None:
            envelope = envelope.model_copy(update={"subject": subject(stored, contract)})
        return envelope

    return translate
