"""Every policy version that ever decided is pinned by its content fingerprint.

A version is immutable: a change to any setting or rule text of a version already in use
changes its fingerprint and fails here. Change a rule by adding a new version (and pin
it below), never by editing one.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from assessments.domain.policy import POLICIES as ASSESSMENT_RULES
from clr_events.application.fingerprint import canonical_json, fingerprint
from collaboration.domain.policy import LISTING_CRITERIA, PARTNERSHIP_RULES
from label_decisions.domain.policy import POLICIES as DECISION_POLICIES
from training_certification.domain.policy import POLICIES as CERTIFICATION_POLICIES

PINNED: dict[str, dict[str, str]] = {
    "decision policy": {
        "2026.1": "sha256:440cb289185ef489621f9f3c6c014103f8a3d5d6695f269d5e54ec037b42f50e",
        "2026.2": "sha256:c733439d06f88d2da18a5517f0f5413fcce9f075c64e6dc9136ede371f65f2df",
    },
    "assessment rules": {
        "2026.1": "sha256:30ab5897a94af1e634f3bddd9d506563d38d86d790ce37f81f78568cfe7d2534",
    },
    "certification policy": {
        "2026.1": "sha256:9eb0c009ec2116905934f9d286eeeac51683e64cb32b80d0126e6d782f2fc46a",
    },
    "listing criteria": {
        "eccp-2019": "sha256:2707488b2b2fe9857dc12861c276920d27fc9faf8e4b55521b4d693b49da7a87",
    },
    "partnership rules": {
        "escp-2020": "sha256:3f6928c7408492006a1c868c8d9132a33add0dbe53994e158ce910f19eccfc83",
    },
}

POLICIES: dict[str, Mapping[str, object]] = {
    "decision policy": DECISION_POLICIES,
    "assessment rules": ASSESSMENT_RULES,
    "certification policy": CERTIFICATION_POLICIES,
    "listing criteria": LISTING_CRITERIA,
    "partnership rules": PARTNERSHIP_RULES,
}


@pytest.mark.parametrize("what", sorted(POLICIES))
def test_every_version_keeps_its_pinned_fingerprint(what: str) -> None:
    versions = POLICIES[what]
    found = {version: fingerprint(policy) for version, policy in versions.items()}
    assert found == PINNED[what], (
        f"a {what} version changed: add a new version instead of editing one"
    )


def test_a_decision_policy_states_its_rules_and_fingerprints_itself() -> None:
    for policy in DECISION_POLICIES.values():
        assert policy.fingerprint == fingerprint(policy)
        assert {"R1", "R4", "R7"} <= {rule for rule, _ in policy.statements}
        assert b'"statements"' in canonical_json(policy)


def test_the_canonical_form_is_sorted_compact_json() -> None:
    assert canonical_json(DECISION_POLICIES["2026.1"]).startswith(b'{"bronze_indicator_count":36,')
