"""Migration files: names, order, checksums, the SQL sent (no database)."""

from __future__ import annotations

import pytest

from clr_events.migrations import Migration, MigrationError, events_migrations, load, parse


def test_versioned_files_come_in_version_order_then_the_repeatable_ones_by_name() -> None:
    found = parse(
        [
            ("R_views.sql", "v"),
            ("0002_more.sql", "b"),
            ("README.md", "ignored"),
            ("0001_first.sql", "a"),
            ("R_functions.sql", "f"),
        ]
    )
    assert [(m.version, m.name) for m in found] == [
        (1, "first"),
        (2, "more"),
        (None, "functions"),
        (None, "views"),
    ]


@pytest.mark.parametrize(
    "names",
    [
        ["0001_a.sql", "0001_b.sql"],  # one version twice
        ["0001_a.sql", "0003_c.sql"],  # a gap
        ["0002_b.sql"],  # not from 1
    ],
)
def test_duplicate_or_missing_versions_are_refused(names: list[str]) -> None:
    with pytest.raises(MigrationError):
        parse((name, "") for name in names)


def test_the_checksum_is_of_the_file_and_changes_with_it() -> None:
    one = Migration(1, "a", "CREATE TABLE {schema}.t ();")
    assert one.checksum == Migration(1, "renamed", one.text).checksum
    assert one.checksum != Migration(1, "a", one.text + " ").checksum


def test_the_sql_is_for_the_schema_without_documentation_lines() -> None:
    migration = Migration(1, "a", "-- about it\nCREATE TABLE {schema}.t (x int); -- inline\n")
    assert migration.sql("s1") == "CREATE TABLE s1.t (x int); -- inline"


def test_every_component_and_service_has_migration_0001() -> None:
    for component in ("event_store", "idempotency", "relay", "consumer", "dlq", "transparency"):
        assert events_migrations(component)[0].version == 1
    for package in (
        "collaboration",
        "training_certification",
        "assessments",
        "label_decisions",
        "projections",
    ):
        found = load(package)
        assert found[0].version == 1, package
        # every file formats (a stray brace would fail at start)
        for migration in found:
            migration.sql("s")
