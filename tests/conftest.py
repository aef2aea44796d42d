"""Shared fixtures: a real PostgreSQL and a real Kafka for integration tests.

Where they come from, in order: the environment (``CLR_DATABASE_URL`` and
``CLR_KAFKA_BOOTSTRAP_SERVERS``, exported by ``deploy/local/stack.sh start``, which
``make test`` runs first); else testcontainers, when a Docker daemon answers; else the
test fails with a message saying what to run. Tests reach Kafka as the environment's
principal (``CLR_KAFKA_USERNAME``: the local stack's admin, a super user).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from clr_events.kafka.topics import TopicSpec, ensure_topics
from clr_events.pg import Pool
from clr_events.settings import ConnectionSettings

HOW_TO = (
    "no {what}: run `deploy/local/stack.sh start` and `source .local/env` (or use `make test`, "
    "which does both), or start a Docker daemon for testcontainers"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by their folder: unit, integration, contracts, e2e, chaos."""
    root = Path(__file__).parent
    for item in items:
        tier = Path(str(item.fspath)).relative_to(root).parts[0]
        if tier in ("unit", "integration", "contracts", "e2e", "chaos"):
            item.add_marker(getattr(pytest.mark, tier))


TASKS_BEFORE_TIMEOUT = 30.0
"""Seconds before pytest-timeout fails a test at which its asyncio tasks are printed: a
test stuck awaiting something shows only an idle event loop in the thread stacks that
pytest-timeout prints, the tasks' stacks say what it awaits."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Print the asyncio tasks of a test that runs into its timeout (to the real standard
    error, so a CI log has them even if the run is killed next)."""
    timeout = float(item.config.getini("timeout") or 0)
    timer = None
    if timeout > TASKS_BEFORE_TIMEOUT:
        timer = threading.Timer(timeout - TASKS_BEFORE_TIMEOUT, _print_tasks, (item.nodeid,))
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()


def _print_tasks(nodeid: str) -> None:
    out = sys.__stderr__
    print(f"\n--- {nodeid} is about to time out; its asyncio tasks:", file=out)
    for _ in range(10):  # the set may change while it is copied (another thread's loop)
        try:
            tasks = list(getattr(asyncio.tasks, "_all_tasks", ()))
            break
        except RuntimeError:
            continue
    else:
        return
    for task in tasks:
        if not task.done():
            print(f"{task.get_name()}:", file=out)
            for place in _awaiting(task.get_coro()):
                print(f"  {place}", file=out)


def _awaiting(coroutine: Any) -> Iterator[str]:
    """Where a suspended coroutine waits, outermost first, down its ``await`` chain (a
    task's own stack has only the outermost frame)."""
    while (frame := _first(coroutine, "cr_frame", "gi_frame", "ag_frame")) is not None:
        yield f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
        coroutine = _first(coroutine, "cr_await", "gi_yieldfrom", "ag_await")


def _first(thing: Any, *names: str) -> Any:
    """The first of ``thing``'s attributes ``names`` that is set (coroutines, generators
    and async generators name the same things differently)."""
    return next((v for n in names if (v := getattr(thing, n, None)) is not None), None)


def _docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
        return True
    except Exception:
        return False


def _from_env(variable: str, what: str) -> str | None:
    """The variable's value; None when testcontainers should start one; else fail."""
    value = os.environ.get(variable)
    if not value and not _docker_answers():
        pytest.fail(HOW_TO.format(what=what), pytrace=False)
    return value or None


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A PostgreSQL server's URL."""
    url = _from_env("CLR_DATABASE_URL", "PostgreSQL")
    if url:
        yield url
        return
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:16", driver=None) as container:
        yield container.get_connection_url()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A Kafka broker's bootstrap servers."""
    servers = _from_env("CLR_KAFKA_BOOTSTRAP_SERVERS", "Kafka broker")
    if servers:
        yield servers
        return
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer("apache/kafka:4.1.1").with_kraft() as container:
        yield container.get_bootstrap_server()


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[Pool]:
    """A connection pool shared by the session."""
    created = await asyncpg.create_pool(database_url, min_size=2, max_size=60)
    assert created is not None
    yield created
    try:
        await asyncio.wait_for(created.close(), 10)
    except TimeoutError:  # a failed test left a connection acquired
        created.terminate()


@pytest.fixture
async def schema(pool: Pool) -> AsyncIterator[str]:
    """A fresh schema per test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    await pool.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


TopicFactory = Callable[..., Awaitable[str]]


@pytest.fixture
def new_topic(kafka_bootstrap: str) -> TopicFactory:
    """Create a uniquely named topic: ``await new_topic("orders", partitions=3)``."""

    async def create(prefix: str = "test", partitions: int = 1, **config: Any) -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:10]}"
        await ensure_topics(
            ConnectionSettings(kafka_bootstrap_servers=kafka_bootstrap),
            [
                TopicSpec(
                    name,
                    partitions,
                    config={k.replace("_", "."): str(v) for k, v in config.items()},
                )
            ],
        )
        return name

    return create
