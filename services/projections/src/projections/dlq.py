"""The read models as dead-letter replay targets (``python -m clr_events.consumers.dlq
replay --group projections.<read model>``, ``make dlq-replay GROUP=...``).

A dead letter's original is applied to the read model's active generation past its
checkpoint (the checkpoint already covers it: it was dead-lettered), with the replay's
mark in ``projections.dlq_replays``, in one transaction. It is applied late, after the
records that followed it: the label register skips a decision older than its label's
latest (by position, so that position stays out of the feed); the organisation directory
and the expert register upsert it over what came since.

A rebuild re-reads every record from its topic: after a rebuild with the fix in place,
the dead letters from before it are in the new generation already, and replaying them
applies them twice. Replay before a rebuild, or not at all.
"""

from __future__ import annotations

from clr_events.consumers.dlq import ReplayTarget
from clr_events.settings import ConnectionSettings
from projections.core import CONTROL, redeliverer
from projections.read_models.all import READ_MODELS


def replay_target(group: str, settings: ConnectionSettings) -> ReplayTarget:
    """The read model of a group ``projections.<name>``.

    Raises:
        LookupError: no read model of that name.
    """
    name = group.removeprefix("projections.")
    if name not in READ_MODELS:
        raise LookupError(f"no read model {name!r}: {sorted(READ_MODELS)}")
    return ReplayTarget(settings.topic(group), CONTROL, redeliverer(READ_MODELS[name]))
