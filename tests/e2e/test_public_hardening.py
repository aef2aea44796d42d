"""The public read side from outside: bad input is a 4xx problem, reads are bounded and time
out as a 503, stored websites never become script links, and every answer carries the
security and caching headers."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import asyncpg
import httpx
import pytest

from clr_events.contracts.collaboration import OrganisationRegistered, ProfileValidated
from clr_events.envelope import Envelope
from clr_events.registry import Contract, registry
from tests.e2e import scenario
from tests.e2e.conftest import System
from tests.integration.events.kafka_helpers import produce

PROBLEM = "application/problem+json"
BIG = "99999999999999999999"  # beyond 64 bits
SCRIPT = "javascript:alert(document.cookie)"
DATA = "data:text/html,<script>alert(1)</script>"


async def registered_from_kafka(system: System, website: str, *, validated: bool) -> str:
    """A new organisation whose ``OrganisationRegistered`` (and ``ProfileValidated``) are put
    straight on the topic, as events stored before the write side checked websites would
    arrive; its id."""
    org_id = scenario.fresh("org")
    contracts: list[Contract] = [
        OrganisationRegistered(
            org_id=org_id,
            name=f"Cluster {org_id}",
            country="FR",
            sector="Photonics",
            website=website,
        )
    ]
    if validated:
        contracts.append(
            ProfileValidated(org_id=org_id, validated_on=date(2024, 1, 10), criteria_version="1")
        )
    envelopes = [
        Envelope(
            id=str(uuid.uuid4()),
            source="/collaboration",
            type=registry.type_of(contract),
            subject=f"organisation:{org_id}",
            time=datetime.now(UTC),
            data=contract.model_dump(mode="json"),
            streamversion=version,
            globalposition=10**12 + version,
        )
        for version, contract in enumerate(contracts, start=1)
    ]
    await produce(system.kafka, system.topic("collaboration.events"), list(envelopes))
    return org_id


async def labelled(system: System, names: list[str]) -> list[str]:
    """Organisations with these names, each with a valid Bronze label; their ids."""
    orgs = []
    for name in names:
        org_id = scenario.fresh("org")
        body = {
            "org_id": org_id,
            "name": name.format(org_id=org_id),
            "country": "FR",
            "sector": "Photonics",
            "website": f"https://{org_id}.example.eu",
            "figures": scenario.figures(),
        }
        created = await system.post("collaboration", "/organisations", body, scenario.ADMIN)
        assert created.status_code == 201, created.text
        validated = await system.post(
            "collaboration",
            f"/organisations/{org_id}/validation",
            {"validated_on": "2024-01-10"},
            scenario.ADMIN,
        )
        assert validated.status_code == 201, validated.text
        orgs.append(org_id)
    person = await scenario.expert(system, "BE", ["benchmarking_expert"], "2024-01-02")
    await scenario.known_to_assessments(system, orgs, [person])
    for org_id in orgs:
        await scenario.bronze(system, org_id, person, "2025-10-01", "2025-10-20")
    for org_id in orgs:
        await scenario.listed(system, org_id)
    return orgs


@pytest.mark.parametrize(
    "path",
    [
        # U+0000 in a path id or a query text: PostgreSQL cannot hold it
        "/api/organisations/a%00b",
        "/organisations/a%00b",
        "/api/labels?q=%00",
        "/api/labels?sector=a%00",
        "/?q=%00",
        "/exports/labels.csv?q=%01",
        "/experts?country=%00",
        "/api/experts?role=%00",
        "/api/organisations/" + "a" * 65,
        "/api/labels?q=" + "x" * 101,
        # integers beyond 64 bits, and outside their documented bounds
        f"/api/feed?after={BIG}",
        "/api/feed?after=-1",
        "/api/feed?limit=1001",
        f"/api/labels?offset={BIG}",
        f"/api/labels?limit={BIG}",
        "/api/labels?offset=100001",
        f"/?offset={BIG}",
        f"/api/expiring?months={BIG}",
        # days and ranges outside their bounds
        "/api/counts/series?from=0001-01-01&to=9999-12-31",
        "/api/counts/series?from=1990-01-01&to=2100-12-31",  # 1332 months: more than 600
        "/api/counts/series?to=1989-12-31",
        "/api/counts?on=9999-12-31",
        "/api/labels?on=0001-01-01",
        "/api/organisations/x?on=2101-01-01",
        "/api/experts?on=1900-01-01",
    ],
)
async def test_bad_input_is_a_422_problem_never_a_500(system: System, path: str) -> None:
    response = await system.get("projections", path)
    assert response.status_code == 422, f"{path}: {response.status_code} {response.text}"
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["status"] == 422


async def test_the_bounds_themselves_are_accepted(system: System) -> None:
    # the largest cursor is a valid value, and beyond every position the feed holds: a 409
    # naming the head, never a 422 (nor a page that silently never advances)
    async def refused() -> httpx.Response | None:
        answer = await system.get("projections", f"/api/feed?after={2**63 - 1}&limit=1000")
        assert answer.status_code in (200, 409), answer.text  # 200: the read side is behind
        return answer if answer.status_code == 409 else None

    beyond = await system.until(refused, "the read side to catch up")
    assert beyond.json()["type"] == "urn:cluster-label-registry:problem:cursor-ahead"
    for path in (
        "/api/feed?after=0&limit=1000",
        "/api/labels?offset=100000&limit=1000&on=2100-12-31",
        "/api/counts/series?from=2000-01-01&to=2049-12-31",  # 600 months
        "/?on=2100-12-31",  # the page's chart is cut to the last 600 months
        "/?country=&level=&q=&sector=&on=",  # the form with "All ..." chosen: no filter
        "/experts?role=&country=",
    ):
        response = await system.get("projections", path)
        assert response.status_code == 200, f"{path}: {response.text}"
    # without `from`, a series is cut to its last 600 months
    series = (await system.get("projections", "/api/counts/series?to=2100-12-31")).json()
    assert series["from"] >= "2050-12-31" and len(series["points"]) <= 601


@pytest.mark.parametrize(
    "headers",
    [{}, {"Last-Event-ID": BIG}, {"Last-Event-ID": "x"}],
    ids=["after", "last-event-id", "last-event-id-text"],
)
async def test_a_bad_stream_cursor_is_refused_before_the_stream_starts(
    system: System, headers: dict[str, str]
) -> None:
    # an EventSource reconnects after a stream that opens with 200 and drops; it stops on a 4xx
    after = BIG if not headers else "0"
    url = system.urls["projections"] + f"/api/feed/stream?after={after}"
    async with system.client.stream("GET", url, headers=headers) as stream:
        assert stream.status_code == 422
        assert stream.headers["content-type"] == PROBLEM


async def test_name_search_takes_percent_underscore_and_backslash_literally(
    system: System,
) -> None:
    # given a labelled organisation with a % in its name and one with an _ in its name
    percent, underscore = await labelled(system, ["100% Cluster {org_id}", "Cluster_{org_id}"])

    async def names(q: str) -> list[str]:
        body = await system.get("projections", f"/api/labels?status=all&limit=1000&q={q}")
        assert body.status_code == 200, body.text
        return [item["name"] for item in body.json()["items"]]

    # then "%" finds the names with a literal %, and "_" those with a literal _ only
    found = await names("%25")
    assert f"100% Cluster {percent}" in found and all("%" in n for n in found)
    found = await names("_")
    assert f"Cluster_{underscore}" in found and all("_" in n for n in found)
    assert all("\\" in n for n in await names("%5C"))
    # and the other characters of the name still match anywhere, case-insensitively
    assert await names(f"% cluster {percent}".replace("%", "%25")) == [f"100% Cluster {percent}"]


async def test_a_stored_script_or_data_website_is_shown_as_text_never_as_a_link(
    system: System,
) -> None:
    # given two organisations whose websites arrive from Kafka as a data: and a javascript:
    # URL, the first validated and labelled
    listed = await registered_from_kafka(system, DATA, validated=True)
    unlisted = await registered_from_kafka(system, SCRIPT, validated=False)
    person = await scenario.expert(system, "BE", ["benchmarking_expert"], "2024-01-02")
    await scenario.known_to_assessments(system, [listed], [person])
    await scenario.bronze(system, listed, person, "2025-10-01", "2025-10-20")
    await scenario.listed(system, listed)

    async def website(org_id: str, expected: str) -> bool:
        response = await system.get("projections", f"/api/organisations/{org_id}")
        return response.status_code == 200 and (
            response.json()["organisation"].get("website") == expected
        )

    async def in_list() -> bool:
        response = await system.get("projections", f"/api/labels?q={listed}")
        return bool(response.json()["items"][0]["website"] == DATA)

    await system.until(lambda: website(unlisted, SCRIPT), "the javascript: website projected")
    await system.until(lambda: website(listed, DATA), "the data: website projected")
    await system.until(in_list, "the data: website in the label list")

    # then the organisation pages and the list show them as text, never as an href
    for path, url in (
        (f"/organisations/{unlisted}", SCRIPT),
        (f"/organisations/{listed}", DATA),
        (f"/?q={listed}", DATA),
    ):
        page = await system.get("projections", path)
        assert page.status_code == 200, page.text
        assert 'href="javascript:' not in page.text and 'href="data:' not in page.text
        shown = url.replace("<", "&lt;").replace(">", "&gt;")
        assert shown in page.text, path
        assert "script-src" not in page.headers["content-security-policy"]

    # while a http(s) website is still a link
    (other,) = await labelled(system, ["Cluster {org_id}"])
    page = await system.get("projections", f"/organisations/{other}")
    assert f'href="https://{other}.example.eu"' in page.text


async def test_every_answer_has_the_security_headers_and_public_gets_an_etag(
    system: System,
) -> None:
    base = system.urls["projections"]
    for path in ("/", "/experts", "/subscribe", "/api/labels", "/api/organisations/a%00b"):
        response = await system.get("projections", path)
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "script-src" not in policy and "unsafe-inline" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"

    for path in ("/", "/api/labels?status=all", "/exports/labels.csv", "/api/feed?after=0"):
        # a public GET carries a short public max-age and an ETag, the same for both encodings
        gzipped = await system.client.get(base + path, headers={"Accept-Encoding": "gzip"})
        plain = await system.client.get(base + path, headers={"Accept-Encoding": "identity"})
        assert gzipped.status_code == plain.status_code == 200
        assert gzipped.headers["cache-control"] == "public, max-age=30"
        etag = gzipped.headers["etag"]
        assert etag.startswith('W/"') and plain.headers["etag"] == etag
        assert gzipped.content == plain.content

        # when the client has it, it gets a 304 without a body
        again = await system.client.get(base + path, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag
        assert again.headers["x-content-type-options"] == "nosniff"
        other = await system.client.get(base + path, headers={"If-None-Match": 'W/"other"'})
        assert other.status_code == 200 and other.content == plain.content

    static = await system.get("projections", "/static/site.css")
    assert static.headers["cache-control"] == "public, max-age=30" and "etag" in static.headers

    # live answers are never cached: health, metrics, and the stream
    for path in ("/readyz", "/metrics", "/read-models"):
        response = await system.get("projections", path)
        assert "etag" not in response.headers and "cache-control" not in response.headers
    async with system.client.stream("GET", base + "/api/feed/stream?after=0") as stream:
        assert stream.status_code == 200 and "etag" not in stream.headers
        assert stream.headers["cache-control"] == "no-cache"


async def test_a_read_past_the_statement_timeout_is_a_503_with_retry_after(
    system: System,
) -> None:
    # given the label tables locked by another session (as a long rebuild's swap would)
    conn = await asyncpg.connect(system.database_url)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE projections.labels_labels IN ACCESS EXCLUSIVE MODE")
            # when a public read needs them: PostgreSQL cancels it at the timeout (5 s)
            response = await system.client.get(
                system.urls["projections"] + "/api/labels", timeout=20.0
            )
    finally:
        await conn.close()

    # then it is a 503 problem saying when to retry, and the next read works
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM
    assert int(response.headers["retry-after"]) >= 1
    assert (await system.get("projections", "/api/labels")).status_code == 200
