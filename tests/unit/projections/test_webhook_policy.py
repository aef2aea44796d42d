"""Webhook signatures (checked with the ``standardwebhooks`` library), the retry schedule,
the dead state, what an answer means, and which targets are refused (SSRF)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from projections.webhooks import signing
from projections.webhooks.delivery import feed_event
from projections.webhooks.policy import (
    RetryPolicy,
    Verdict,
    address_allowed,
    retry_after,
    target_refusal,
    verdict,
)

BODY = b'{"type":"label_decisions.LabelAwarded.v1","data":{"org_id":"o-1","level":"bronze"}}'


def test_a_signature_verifies_with_the_reference_library() -> None:
    secret = signing.new_secret()
    now = int(time.time())
    headers = signing.headers([secret], "0b4a1c2e-6f00-4d1e-9a57-0c6f0e0c1f11", now, BODY)
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(BODY, headers)["data"]["org_id"] == "o-1"


def test_a_changed_body_or_another_secret_does_not_verify() -> None:
    secret = signing.new_secret()
    headers = signing.headers([secret], "msg_1", int(time.time()), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"o-1", b"o-2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(BODY, headers)


def test_during_a_rotation_both_secrets_verify() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    headers = signing.headers([new, old], "msg_2", int(time.time()), BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):
        Webhook(secret).verify(BODY, headers)


def test_the_signature_is_the_specifications_example() -> None:
    # the Standard Webhooks reference libraries' test vector
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert (
        signing.signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_a_secret_is_whsec_and_24_to_64_random_bytes() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert 24 <= len(signing.key_of(secret)) <= 64
    assert secret != signing.new_secret()


def test_an_id_with_a_full_stop_is_refused() -> None:
    with pytest.raises(ValueError, match="full stop"):
        signing.headers([signing.new_secret()], "a.b", 1, BODY)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, Verdict.DELIVERED),
        (204, Verdict.DELIVERED),
        (299, Verdict.DELIVERED),
        (301, Verdict.RETRY),
        (404, Verdict.RETRY),
        (410, Verdict.GONE),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
    ],
)
def test_what_an_answer_means(status: int, expected: Verdict) -> None:
    assert verdict(status) is expected


def test_retry_after_is_read_only_from_429_and_503() -> None:
    now = time.time()
    assert retry_after(429, "7", now) == 7.0
    assert (retry_after(503, "Wed, 21 Oct 2099 07:28:00 GMT", now) or 0) > 1e9
    assert retry_after(500, "7", now) is None
    assert retry_after(503, "soon", now) is None


def test_backoff_doubles_with_jitter_up_to_the_maximum() -> None:
    policy = RetryPolicy(first_seconds=1.0, max_seconds=30.0)
    for failures, base in ((1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 30.0), (60, 30.0)):
        delays = [policy.delay(failures) for _ in range(200)]
        assert all(base * 0.5 <= d <= base for d in delays)
        assert len(set(delays)) > 1  # jitter
    assert policy.delay(1, asked=12.0) == 12.0
    assert policy.delay(1, asked=999.0) == 30.0


def test_dead_only_after_enough_attempts_and_time() -> None:
    policy = RetryPolicy(dead_after_seconds=60.0, dead_after_attempts=5)
    assert not policy.dead(4, 3600.0)
    assert not policy.dead(50, 59.0)
    assert policy.dead(5, 60.0)


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.org/x",
        "https://127.0.0.1/x",
        "https://[::1]/x",
        "https://10.1.2.3/x",
        "https://192.168.0.1/x",
        "https://172.16.5.4/x",
        "https://169.254.169.254/latest/meta-data",
        "https://[fe80::1]/x",
        "https://[::ffff:10.0.0.1]/x",
        "https://0.0.0.0/x",
        "https://localhost/x",
        "https://printer.local/x",
        "https://user:pw@hooks.example.org/x",
        "ftp://hooks.example.org/x",
        "https:///x",
    ],
)
def test_private_and_non_https_targets_are_refused(url: str) -> None:
    assert target_refusal(url, allow_private=False) is not None


def test_public_https_targets_are_accepted() -> None:
    assert target_refusal("https://hooks.example.org/cl", allow_private=False) is None
    assert target_refusal("https://93.184.215.14:8443/cl", allow_private=False) is None
    assert address_allowed("2a00:1450:4001:80b::200e", allow_private=False)


def test_development_allows_http_and_loopback_but_not_other_schemes() -> None:
    assert target_refusal("http://127.0.0.1:9000/x", allow_private=True) is None
    assert target_refusal("ftp://127.0.0.1/x", allow_private=True) is not None
    assert not address_allowed("0.0.0.0", allow_private=True)


def test_a_feed_document_becomes_a_message_with_its_exact_bytes() -> None:
    document = (
        '{"specversion":"1.0","id":"5f0c","source":"/label_decisions","type":"t.v1",'
        '"subject":"o-1:bronze","time":"2026-01-02T03:04:05+00:00","globalposition":42}'
    )
    event = feed_event(document)
    assert (event.position, event.message_id, event.key) == (42, "5f0c", "o-1:bronze")
    assert event.body == document.encode()
    assert event.recorded == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert feed_event(document.replace('"5f0c"', '"a.b"')).message_id == "pos_42"
