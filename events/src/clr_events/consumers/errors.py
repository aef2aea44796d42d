"""One answer, for every consumer, to "may this failure pass, or is the record at fault?".

The ``ConsumerRunner``, the projections' live agents and their rebuild all ask
``is_transient``: a transient failure is retried with backoff (nothing is dead-lettered
because a database or a broker was away); anything else is taken as the record's fault,
and that one record goes to its group's dead-letter topic while the consumer goes on.

Transient:

- ``TransientError`` (a handler says so, e.g. an optimistic concurrency conflict);
- ``OSError`` (lost sockets, refused connections) and ``TimeoutError``;
- asyncpg's ``InterfaceError`` (a closed connection, a closing pool; but not its
  client-side input errors, which are also ``ValueError``) and ``InternalClientError``
  (a protocol hiccup, an outdated statement cache: asyncpg says to retry);
- PostgreSQL errors of the SQLSTATE classes 08 (connection), 40 (transaction rollback:
  serialization failure 40001, deadlock 40P01), 53 (insufficient resources: disk full,
  out of memory, too many connections), 57 (operator intervention: admin shutdown,
  cannot connect now, and query canceled 57014), 58 (system error: I/O), plus lock not
  available (55P03, a lock timeout) and read-only transaction (25006, after a failover);
- Kafka errors the client marks retriable, and its connection and timeout errors.

A statement timeout (57014) and a lock timeout (55P03) count as transient: a record of
this system changes a handful of rows, bounded by Kafka's message size, so a timeout says
the database is busy or a lock is held, not that the record is bad; dead-lettering on them
would send good records away during a slow phase, while retrying one that really is too
slow shows up as a failing consumer in ``/readyz``.

Everything else is the record's fault: decoding and envelope errors, unknown types, a
``pydantic.ValidationError``, PostgreSQL data exceptions (class 22: U+0000 in text 22021
or in JSON 22P05, numeric out of range 22003, string too long 22001, and asyncpg's own
"invalid input for query argument", which it raises as ``DataError``), integrity
violations (class 23), program limits (class 54: a key too long for its index), and
``ValueError``, ``TypeError``, ``KeyError``, ``OverflowError`` or any other error of a
handler. A bug of ours that every record hits is dead-lettered too, record by record; the
dead-letter count in ``/metrics`` shows it, and after the fix ``python -m
clr_events.consumers.dlq replay`` redelivers them (see that module).
"""

from __future__ import annotations

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from clr_events.errors import EventsError


class TransientError(EventsError):
    """Raised by a handler for a failure that may pass: the message is retried."""


TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})
"""SQLSTATE classes of failures that may pass (see the module's docstring)."""

TRANSIENT_SQLSTATES = frozenset({"55P03", "25006"})
"""Single SQLSTATEs of failures that may pass: lock not available, read-only transaction."""


def is_transient(error: BaseException) -> bool:
    """True when ``error`` may pass on a retry; False when the record is at fault."""
    if isinstance(error, TransientError):
        return True
    if isinstance(error, asyncpg.PostgresError):  # a server error, or asyncpg's DataError
        state = str(getattr(error, "sqlstate", "") or "")
        return state[:2] in TRANSIENT_SQLSTATE_CLASSES or state in TRANSIENT_SQLSTATES
    if isinstance(error, asyncpg.InterfaceError):
        return not isinstance(error, ValueError)
    if isinstance(error, asyncpg.exceptions.InternalClientError):
        return True
    if isinstance(error, KafkaError):
        return bool(error.retriable) or isinstance(error, KafkaConnectionError | KafkaTimeoutError)
    return isinstance(error, OSError | TimeoutError)
