"""The one error classification of every consumer: may it pass, or is the record at fault?"""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NodeNotReadyError,
)
from pydantic import BaseModel, ValidationError

from clr_events.consumers.errors import TransientError, is_transient
from clr_events.errors import EnvelopeError, UnknownEventTypeError


def validation_error() -> ValidationError:
    class Counted(BaseModel):
        n: int

    try:
        Counted.model_validate({"n": "many"})
    except ValidationError as error:
        return error
    raise AssertionError("validated")


@pytest.mark.parametrize(
    "error",
    [
        TransientError("a concurrent append"),
        ConnectionResetError(),
        OSError("network unreachable"),
        TimeoutError(),
        asyncpg.ConnectionDoesNotExistError("the connection was closed in the middle"),
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.exceptions.OutdatedSchemaCacheError("cached statement plan is invalid"),
        asyncpg.SerializationError("could not serialize access"),  # 40001
        asyncpg.DeadlockDetectedError("deadlock detected"),  # 40P01
        asyncpg.LockNotAvailableError("canceling statement due to lock timeout"),  # 55P03
        asyncpg.QueryCanceledError("canceling statement due to statement timeout"),  # 57014
        asyncpg.AdminShutdownError("terminating connection"),  # 57P01
        asyncpg.CannotConnectNowError("the database system is starting up"),  # 57P03
        asyncpg.TooManyConnectionsError("sorry, too many clients"),  # 53300
        asyncpg.DiskFullError("could not extend file"),  # 53100
        asyncpg.ReadOnlySQLTransactionError("read-only transaction"),  # 25006
        KafkaConnectionError(),
        KafkaTimeoutError(),
        NodeNotReadyError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_failures_that_may_pass_are_retried(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        EnvelopeError("the value is not JSON"),
        UnknownEventTypeError("tests.Nothing.v1"),
        validation_error(),
        asyncpg.CharacterNotInRepertoireError("invalid byte sequence: 0x00"),  # 22021
        asyncpg.UntranslatableCharacterError("\\u0000 cannot be converted"),  # 22P05
        asyncpg.NumericValueOutOfRangeError("integer out of range"),  # 22003
        asyncpg.StringDataRightTruncationError("value too long"),  # 22001
        asyncpg.DataError("invalid input for query argument $1: 10**30"),  # asyncpg's own
        asyncpg.UniqueViolationError("duplicate key"),  # 23505
        asyncpg.CheckViolationError("violates check constraint"),  # 23514
        asyncpg.ProgramLimitExceededError("index row size exceeds maximum"),  # 54000
        asyncpg.exceptions._base.DataError("invalid input"),  # client-side: not a lost line
        ValueError("a domain rule refuses it"),
        TypeError("unsupported operand"),
        KeyError("level"),
        OverflowError("date value out of range"),
        RecursionError("maximum recursion depth exceeded"),
        MessageSizeTooLargeError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_failures_the_record_causes_are_dead_lettered(error: BaseException) -> None:
    assert not is_transient(error)
