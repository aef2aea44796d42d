"""``python -m projections`` serves; ``rebuild NAME``, ``status`` and ``forget-offsets`` are
operator commands."""

from __future__ import annotations

import argparse
import asyncio
import logging

import asyncpg

from clr_events.kafka.producer import new_producer
from clr_events.service.serve import serve
from projections.core import CONTROL, ensure_generation, forget_offsets
from projections.offsets import Offsets, lag
from projections.read_models.all import READ_MODELS
from projections.rebuild import rebuild
from projections.service import build
from projections.settings import ProjectionSettings


async def _rebuild(name: str, lanes: int, processes: int) -> None:
    settings = ProjectionSettings()
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=lanes + 2)
    producer = new_producer(settings)
    await producer.start()
    try:
        await rebuild(pool, producer, settings, READ_MODELS[name], lanes=lanes, processes=processes)
    finally:
        await producer.stop()
        await pool.close()


async def _status() -> None:
    settings = ProjectionSettings()
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    offsets = Offsets(settings)
    await offsets.start()
    try:
        for name, model in READ_MODELS.items():
            generation = await ensure_generation(pool, model)
            behind = await lag(pool, offsets, model, settings)
            print(f"{name:<14} generation {generation:<3} lag {behind} messages")  # noqa: T201
        for row in await pool.fetch(f"SELECT * FROM {CONTROL}.rebuilds ORDER BY started_at"):
            print(  # noqa: T201
                f"rebuild {row['name']} g{row['generation']}: {row['state']},"
                f" {row['applied']} read, {row['remaining']} to go"
            )
    finally:
        await offsets.stop()
        await pool.close()


async def _forget_offsets() -> None:
    settings = ProjectionSettings()
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        for name, count in (await forget_offsets(pool, READ_MODELS.values())).items():
            print(f"{name}: offsets of {count} partitions forgotten")  # noqa: T201
    finally:
        await pool.close()


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(prog="python -m projections")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the read side (the default)")
    again = commands.add_parser("rebuild", help="rebuild a read model beside the live one")
    again.add_argument("name", choices=sorted(READ_MODELS))
    again.add_argument(
        "--lanes",
        type=int,
        default=2,
        help="concurrent transactions over shares of the partitions (default 2)",
    )
    again.add_argument(
        "--processes",
        type=int,
        default=2,
        help="processes over shares of the partitions, each with its lanes (default 2)",
    )
    commands.add_parser("status", help="generation and lag of every read model")
    commands.add_parser(
        "forget-offsets", help="after the topics were lost: read the new ones from the start"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.command == "rebuild":
        asyncio.run(_rebuild(args.name, max(1, args.lanes), max(1, args.processes)))
    elif args.command == "status":
        asyncio.run(_status())
    elif args.command == "forget-offsets":
        asyncio.run(_forget_offsets())
    else:
        serve(build, default_port=8100)


if __name__ == "__main__":
    main()
