"""A role certified, lapsed and certified again keeps both periods (a past day is answered
from the period in force then, not from the latest certification)."""

from __future__ import annotations

from datetime import date

from training_certification.domain.events import (
    CertificationRenewed,
    CertificationRevoked,
    ExpertCertified,
)
from training_certification.domain.model import Certification, certification_periods

ROLE = "benchmarking_expert"


def certified(on: date, until: date) -> ExpertCertified:
    return ExpertCertified(
        person_id="p-1",
        role=ROLE,
        valid_from=on,
        valid_until=until,
        certified_by="admin",
        policy_version="2026.1",
    )


def test_each_certification_opens_a_period_renewals_and_revocations_change_the_latest() -> None:
    periods = certification_periods(
        [
            certified(date(2015, 6, 1), date(2018, 6, 1)),
            CertificationRenewed(person_id="p-1", role=ROLE, valid_until=date(2019, 6, 1)),
            certified(date(2020, 1, 10), date(2023, 1, 10)),
            CertificationRevoked(
                person_id="p-1", role=ROLE, revoked_on=date(2021, 6, 1), reason="misconduct"
            ),
            # a renewal of a role never certified changes nothing
            CertificationRenewed(person_id="p-1", role="trainer", valid_until=date(2030, 1, 1)),
        ]
    )
    assert periods == {
        ("p-1", ROLE): [
            Certification(date(2015, 6, 1), date(2019, 6, 1)),
            Certification(date(2020, 1, 10), date(2023, 1, 10), date(2021, 6, 1)),
        ]
    }
    first, second = periods[("p-1", ROLE)]
    assert first.valid_on(date(2016, 1, 1)) and not second.valid_on(date(2016, 1, 1))
    assert not second.valid_on(date(2022, 1, 1))
