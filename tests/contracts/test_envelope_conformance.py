"""Our envelopes are CloudEvents 1.0 as the reference SDK reads them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from cloudevents.v1.http import from_json
from cloudevents.v1.kafka import KafkaMessage, from_binary

from clr_events.codec import to_kafka, to_structured
from clr_events.envelope import Envelope

ENVELOPE = Envelope(
    id=str(uuid.uuid4()),
    source="/assessments",
    type="assessments.AssessmentApproved.v1",
    subject="assessment-7",
    time=datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC),
    data={"approver": "EUCLES board"},
    streamversion=4,
    globalposition=99,
    causationid="cmd-1",
)


def test_the_sdk_reads_our_binary_kafka_records() -> None:
    record = to_kafka(ENVELOPE)
    event = from_binary(KafkaMessage(dict(record.headers), record.key, record.value))
    assert event["id"] == ENVELOPE.id
    assert event["type"] == ENVELOPE.type
    assert event["subject"] == "assessment-7"
    assert event["globalposition"] == "99"
    assert event["causationid"] == "cmd-1"
    assert event.data == {"approver": "EUCLES board"}


def test_the_sdk_reads_our_structured_documents() -> None:
    event = from_json(to_structured(ENVELOPE))
    assert event["specversion"] == "1.0"
    assert event["source"] == "/assessments"
    assert event["time"] == "2026-05-04T03:02:01Z"
    assert event.data == {"approver": "EUCLES board"}
