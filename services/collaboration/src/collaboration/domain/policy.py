"""Versioned settings of the collaboration rules (sourced, and left open)."""

from __future__ import annotations

from dataclasses import dataclass

import pycountry

import clr_events.countries
from clr_events.application.aggregate import Policies

EU_MEMBER_STATES = frozenset(clr_events.countries.EU_MEMBER_STATES)


@dataclass(frozen=True)
class ListingCriteria:
    """R13: what an ECCP profile needs to be validated, unless a programme waives it."""

    version: str
    min_management_fte: float
    min_committed_members: int
    min_member_types: int
    english_website_required: bool


@dataclass(frozen=True)
class PartnershipRules:
    """R14: who may partner, and how many.

    ``eligible_countries``: EU member states plus the countries taking part in the
    programme of the call (the COSME list varied over the years: a setting, not a fact).
    """

    version: str
    eligible_countries: frozenset[str]
    min_partners: int
    min_countries_by_strand: dict[str, int]


ECCP_2019 = ListingCriteria(
    version="eccp-2019",
    min_management_fte=0.5,
    min_committed_members=15,
    min_member_types=2,
    english_website_required=True,
)

COSME_PARTICIPANTS = frozenset(
    ["IS", "NO", "AL", "AM", "BA", "ME", "MK", "MD", "RS", "TR", "UA", "XK"]
)

PARTNERSHIPS_2020 = PartnershipRules(
    version="escp-2020",
    eligible_countries=EU_MEMBER_STATES | COSME_PARTICIPANTS,
    min_partners=3,
    min_countries_by_strand={"ESCP-S3": 3},
)

STRANDS = ("ESCP-4i", "ESCP-S3", "ESCP-4x", "Euroclusters")


def is_country(code: str) -> bool:
    """Whether ``code`` is an ISO 3166-1 alpha-2 code (XK, Kosovo, is user-assigned)."""
    return code == "XK" or pycountry.countries.get(alpha_2=code) is not None


LISTING_CRITERIA: Policies[ListingCriteria] = Policies(
    "listing criteria", {ECCP_2019.version: ECCP_2019}, ECCP_2019.version
)
"""R13's criteria by version (``CLR_COLLABORATION_LISTING_CRITERIA_VERSION``)."""

PARTNERSHIP_RULES: Policies[PartnershipRules] = Policies(
    "partnership rules", {PARTNERSHIPS_2020.version: PARTNERSHIPS_2020}, PARTNERSHIPS_2020.version
)
"""R14's rules by version (``CLR_COLLABORATION_PARTNERSHIP_RULES_VERSION``)."""
