"""Webhooks end to end: a local receiver that fails, times out, answers slowly, says it is
gone and comes back, while label decisions flow and the projections service is killed.

Every public label event is delivered, in order per label record, with valid Standard
Webhooks signatures (checked with the ``standardwebhooks`` library, both secrets during a
rotation), and nothing is lost across the kill. Its own installation (the projections
service is killed, and private targets are allowed for the local receiver); the admin
API's refusals run on the session's system, where they are not.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from standardwebhooks.webhooks import Webhook

from clr_dev import supervisor
from clr_dev.installation import install, service_env, uninstall
from clr_events.settings import ConnectionSettings
from tests.e2e import scenario
from tests.e2e.conftest import PORT_BASE, System
from tests.e2e.receiver import Receiver

PORTS = {name: PORT_BASE + 30 + n for n, name in enumerate(supervisor.SERVICES)}
RECEIVER_PORT = PORT_BASE + 40
ADMIN = "registry_admin"
FAST = {
    "CLR_WEBHOOK_ALLOW_PRIVATE_TARGETS": "1",
    "CLR_WEBHOOK_TIMEOUT_SECONDS": "1.5",
    "CLR_WEBHOOK_RETRY_FIRST_SECONDS": "0.2",
    "CLR_WEBHOOK_RETRY_MAX_SECONDS": "1",
    "CLR_WEBHOOK_DEAD_AFTER_SECONDS": "6",
    "CLR_WEBHOOK_DEAD_AFTER_ATTEMPTS": "5",
    "CLR_WEBHOOK_IDLE_POLL_SECONDS": "1",
    "CLR_WEBHOOK_MAX_IN_FLIGHT": "4",
}
"""Short timeouts and backoff, so a failing receiver is retried (and given up on) within
seconds; an endpoint failing for 6 s and 5 attempts is dead."""


async def _feed(system: System) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = (await system.get("projections", f"/api/feed?after={after}&limit=1000")).json()
        events += page["events"]
        if not page["events"]:
            return events
        after = page["next"]


def _first_deliveries(receiver: Receiver, path: str) -> list[dict[str, Any]]:
    """The events delivered on ``path``, each once (the first time), in arrival order."""
    seen: set[str] = set()
    out = []
    for r in receiver.delivered(path):
        if r.headers["webhook-id"] not in seen:
            seen.add(r.headers["webhook-id"])
            out.append(orjson.loads(r.body))
    return out


def _assert_all_in_order(receiver: Receiver, path: str, feed: list[dict[str, Any]]) -> None:
    delivered = _first_deliveries(receiver, path)
    assert sorted(e["id"] for e in delivered) == sorted(e["id"] for e in feed)
    by_record: dict[str, list[int]] = defaultdict(list)
    for event in delivered:
        by_record[event["subject"]].append(event["globalposition"])
    for subject, positions in by_record.items():
        assert positions == sorted(positions), f"{subject} out of order: {positions}"


async def _status(system: System, sub_id: str) -> dict[str, Any]:
    response = await system.get("projections", f"/webhooks/{sub_id}", ADMIN)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_every_event_is_delivered_in_order_signed_and_survives_a_kill(
    database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    base = ConnectionSettings(database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap)
    settings = await install(base, "clr_webhooks")
    secret = secrets.token_hex(32)
    running = await asyncio.to_thread(
        supervisor.start, tmp_path, ports=PORTS, env={**service_env(settings, secret), **FAST}
    )
    receiver = Receiver(RECEIVER_PORT)
    await receiver.start()
    try:
        async with httpx.AsyncClient(timeout=30.0) as client:
            system = System(
                running.urls, client, kafka_bootstrap, secret, settings.instance, database_url
            )
            await _scenario(system, running, receiver)
    finally:
        await receiver.stop()
        await asyncio.to_thread(running.stop)
        await uninstall(base, settings)


async def _scenario(system: System, running: supervisor.Running, receiver: Receiver) -> None:
    person = await scenario.expert(system, "AT", ["benchmarking_expert"], "2024-01-02")
    orgs = [await scenario.organisation(system, "DE", "2024-01-10") for _ in range(4)]
    await scenario.known_to_assessments(system, orgs, [person])
    for org in orgs[:2]:  # history before the subscriptions exist
        await scenario.bronze(system, org, person, "2025-06-03", "2025-06-20")
    for org in orgs[:2]:  # awarded (label decisions decide from Kafka) before corrections
        await scenario.listed(system, org)

    async def decided() -> bool:
        """Label decisions took both approvals (it consumes them): the records exist."""
        for org in orgs[:2]:
            response = await system.get("label_decisions", f"/labels/{org}")
            if response.status_code != 200 or not any(
                r["level"] == "bronze" for r in response.json()["labels"]
            ):
                return False
        return True

    await system.until(decided, "the Bronze labels the corrections below change")

    async def register(path: str, **extra: Any) -> dict[str, Any]:
        body = {"url": receiver.url(path), "description": f"receiver {path}", **extra}
        response = await system.post("projections", "/webhooks", body, ADMIN)
        assert response.status_code == 201, response.text
        assert response.headers["location"] == f"/webhooks/{response.json()['id']}"
        created: dict[str, Any] = response.json()
        return created

    main = await register("/main", after=0)  # the whole history, then everything new
    gone = await register("/gone", after=0)
    dead = await register("/dead", after=0)
    receiver.mode.update({"/gone": "gone", "/dead": "fail"})
    assert main["state"] == "active" and main["secret"].startswith("whsec_")
    rounds = 0
    awarded = 2

    async def corrections(n: int) -> None:
        nonlocal rounds
        for _ in range(n):
            rounds += 1
            for org in orgs[:2]:
                response = await system.client.post(
                    system.urls["label_decisions"] + f"/labels/{org}/bronze/corrections",
                    json={
                        "valid_until": str(date(2027, 1, 1) + timedelta(days=rounds)),
                        "reason": "e2e",
                    },
                    headers=system.auth("labelling_board"),
                )
                assert response.status_code == 201, response.text

    async def delivered_all(path: str, timeout: float = 90.0) -> list[dict[str, Any]]:
        feed: list[dict[str, Any]] = []

        produced = awarded + 2 * rounds  # each award and each correction: one public event

        async def check() -> bool:
            nonlocal feed
            feed = await _feed(system)
            ids = {r.headers["webhook-id"] for r in receiver.delivered(path)}
            return len(feed) >= produced and ids >= {e["id"] for e in feed}

        await system.until(check, f"every feed event delivered to {path}", timeout=timeout)
        return feed

    await corrections(2)
    await delivered_all("/main")
    # failing: 500s, then answers that never come (timeouts), then slow answers
    for mode, seconds in (("fail", 2.5), ("timeout", 3.5), ("slow", 2.0)):
        receiver.mode["/main"] = mode
        await corrections(2)
        await asyncio.sleep(seconds)
        if mode != "slow":
            status = await _status(system, main["id"])
            assert status["failures"] >= 1 and status["state"] == "active", status
            assert status["last_error"], status
        receiver.mode["/main"] = "ok"
        await delivered_all("/main")
    # the new label records' awards, and a kill (-9) of the projections service mid-flow
    for org in orgs[2:]:
        await scenario.bronze(system, org, person, "2025-06-03", "2025-06-20")
    awarded = 4
    await corrections(3)
    running.processes["projections"].kill()
    await asyncio.to_thread(running.processes["projections"].wait)
    await corrections(3)
    running.launch("projections")
    await system.until(
        lambda: _ready(system), "the projections service ready again after its kill", 90
    )
    await corrections(2)
    # a rotation: the new secret and the old one both sign during the overlap
    rotated = await system.post("projections", f"/webhooks/{main['id']}/secret", {}, ADMIN)
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    # the delivery loops take the rotation up when they notice the subscription changed
    # (a notification, then a restart from the cursor): what is delivered after that
    # carries both signatures
    await asyncio.sleep(2.0)
    before_rotation = len(receiver.requests)
    await corrections(2)
    feed = await delivered_all("/main")
    _assert_all_in_order(receiver, "/main", feed)
    old, new = Webhook(main["secret"]), Webhook(new_secret)
    for request in receiver.delivered("/main"):
        old.verify(request.body, request.headers)
        assert request.headers["content-type"] == "application/cloudevents+json"
    after = [r for r in receiver.requests[before_rotation:] if r.path == "/main"]
    assert after, "no delivery after the rotation"
    for request in after:
        new.verify(request.body, request.headers)
        assert len(request.headers["webhook-signature"].split(" ")) == 2
    # the cursor moves once a batch is delivered: just after its last delivery
    await system.until(lambda: _caught_up(system, main["id"]), "the cursor at the head", 30)
    status = await _status(system, main["id"])
    assert status["state"] == "active" and status["lag_events"] == 0, status
    assert status["position"] == status["head"] == feed[-1]["globalposition"]
    assert status["failures"] == 0 and status["delivered"] >= len(feed)
    metrics = (await system.get("projections", "/metrics")).text
    assert f'clr_webhook_lag_events{{subscription="{main["id"]}"}} 0' in metrics
    assert 'clr_webhook_subscriptions{state="dead"} 2' in metrics
    assert "clr_webhook_delivery_age_seconds_count" in metrics

    # 410 Gone: dead at once; a receiver failing for long enough: dead too
    gone_status = await _status(system, gone["id"])
    assert gone_status["state"] == "dead" and "410" in gone_status["dead_reason"]
    dead_status = await _status(system, dead["id"])
    assert dead_status["state"] == "dead", dead_status
    assert dead_status["failures"] >= 5, dead_status
    # re-enabled once the receivers work again: everything, in order, nothing lost
    receiver.mode.update({"/gone": "ok", "/dead": "ok"})
    for sub in (gone, dead):
        response = await system.post("projections", f"/webhooks/{sub['id']}/resume", {}, ADMIN)
        assert response.status_code == 200 and response.json()["state"] == "active"
    for path in ("/gone", "/dead"):
        _assert_all_in_order(receiver, path, await delivered_all(path))

    # pause: nothing is delivered, the cursor waits; resume: delivered
    paused = await system.post("projections", f"/webhooks/{main['id']}/pause", {}, ADMIN)
    assert paused.json()["state"] == "paused"
    head = paused.json()["head"]
    await corrections(1)
    await system.until(
        lambda: _lagging(system, main["id"]), "the paused subscription to lag behind", 30
    )
    assert (await _status(system, main["id"]))["position"] == head
    await asyncio.sleep(1.5)
    positions = [orjson.loads(r.body)["globalposition"] for r in receiver.delivered("/main")]
    assert max(positions) <= head, "delivered while paused"
    await system.post("projections", f"/webhooks/{main['id']}/resume", {}, ADMIN)
    feed = await delivered_all("/main")
    # replay from a position: every event after it is delivered again, in order
    replay_from = feed[len(feed) // 2]["globalposition"]
    mark = len(receiver.requests)
    response = await system.post(
        "projections", f"/webhooks/{main['id']}/replay", {"after": replay_from}, ADMIN
    )
    assert response.status_code == 200 and response.json()["position"] == replay_from
    expected = [e["id"] for e in feed if e["globalposition"] > replay_from]

    async def replayed() -> bool:
        again = [r.headers["webhook-id"] for r in receiver.requests[mark:] if r.status == 200]
        return set(again) >= set(expected)

    await system.until(replayed, "the replay delivered", 60)
    log = running.log_tail("projections", 5000)
    # one line when the endpoint starts failing and one when it recovers, per episode:
    # never one per attempt
    assert log.count(f"webhook {main['id']}") <= 12, log[-4000:]


async def _ready(system: System) -> bool:
    try:
        response = await system.client.get(system.urls["projections"] + "/readyz")
    except httpx.HTTPError:
        return False
    return response.status_code == 200


async def _caught_up(system: System, sub_id: str) -> bool:
    return bool((await _status(system, sub_id))["lag_events"] == 0)


async def _lagging(system: System, sub_id: str) -> bool:
    return bool((await _status(system, sub_id))["lag_events"] >= 1)


async def test_the_admin_api_refuses_what_it_must(system: System) -> None:
    """On the session's system: https only, no private targets, admins only, problems."""
    url = "https://93.184.215.14/hooks/cl"  # a public address, never called: paused below
    body: dict[str, Any] = {"url": url}
    anonymous = await system.client.post(system.urls["projections"] + "/webhooks", json=body)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert (await system.post("projections", "/webhooks", body, "assessor")).status_code == 403
    for target in (
        "http://93.184.215.14/x",
        "https://127.0.0.1/x",
        "https://10.0.0.7/x",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/x",
        "https://localhost/x",
        "https://does-not-resolve.invalid/x",
        "https://user:pw@93.184.215.14/x",
    ):
        refused = await system.post("projections", "/webhooks", {"url": target}, ADMIN)
        assert refused.status_code == 422, (target, refused.text)
        problem = refused.json()
        assert problem["type"] == "urn:cluster-label-registry:problem:webhook-target-refused"
        assert problem["detail"] and problem["status"] == 422
    bad_type = await system.post(
        "projections", "/webhooks", {"url": url, "types": ["label_decisions.Secret.v1"]}, ADMIN
    )
    assert bad_type.status_code == 422
    beyond = await system.post("projections", "/webhooks", {"url": url, "after": 2**62}, ADMIN)
    assert beyond.status_code == 422
    assert beyond.json()["type"] == "urn:cluster-label-registry:problem:cursor-beyond-head"

    created = await system.post(
        "projections",
        "/webhooks",
        {"url": url, "types": ["label_decisions.LabelAwarded.v1"], "description": "platform"},
        ADMIN,
    )
    assert created.status_code == 201, created.text
    sub = created.json()
    try:
        paused = await system.post("projections", f"/webhooks/{sub['id']}/pause", {}, ADMIN)
        assert paused.json()["state"] == "paused"
        listed = await system.get("projections", "/webhooks", ADMIN)
        assert sub["id"] in [s["id"] for s in listed.json()["subscriptions"]]
        assert "secret" not in listed.json()["subscriptions"][0]
        assert "public" not in listed.headers.get("cache-control", "")
        changed = await system.client.patch(
            system.urls["projections"] + f"/webhooks/{sub['id']}",
            json={"description": "renamed", "url": "https://10.0.0.1/x"},
            headers=system.auth(ADMIN),
        )
        assert changed.status_code == 422
        changed = await system.client.patch(
            system.urls["projections"] + f"/webhooks/{sub['id']}",
            json={"description": "renamed"},
            headers=system.auth(ADMIN),
        )
        assert changed.status_code == 200 and changed.json()["description"] == "renamed"
        replay = await system.post(
            "projections", f"/webhooks/{sub['id']}/replay", {"after": 2**62}, ADMIN
        )
        assert replay.status_code == 422
        rotated = await system.post(
            "projections", f"/webhooks/{sub['id']}/secret", {"overlap_seconds": 60}, ADMIN
        )
        assert rotated.status_code == 200 and rotated.json()["secret"] != sub["secret"]
        unknown = await system.get("projections", "/webhooks/wh_0000000000000000", ADMIN)
        assert unknown.status_code == 404
        assert unknown.headers["content-type"] == "application/problem+json"
    finally:
        deleted = await system.client.delete(
            system.urls["projections"] + f"/webhooks/{sub['id']}", headers=system.auth(ADMIN)
        )
    assert deleted.status_code == 204
    assert (await system.get("projections", f"/webhooks/{sub['id']}", ADMIN)).status_code == 404
