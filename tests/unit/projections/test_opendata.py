"""schema.org JSON-LD for an organisation's page, and the catalogue's shape."""

from __future__ import annotations

from datetime import date
from typing import Any

from projections import opendata


def page(**organisation: Any) -> dict[str, Any]:
    return {
        "organisation": {"org_id": "org-1", **organisation},
        "labels": [
            {"level": "bronze", "status": "valid", "valid_until": date(2027, 5, 31)},
            {"level": "gold", "status": "withdrawn", "valid_until": None},
        ],
    }


def test_an_organisation_is_a_schema_org_organization_with_its_labels_as_awards() -> None:
    data = opendata.organisation(
        page(name="Cluster One", country="LT", region="Vilnius", website="https://one.eu"),
        "https://registry.example",
    )
    assert data["@context"] == "https://schema.org" and data["@type"] == "Organization"
    assert data["@id"] == "https://registry.example/organisations/org-1#organisation"
    assert data["url"] == "https://one.eu"
    assert data["address"] == {
        "@type": "PostalAddress",
        "addressCountry": "LT",
        "addressRegion": "Vilnius",
    }
    assert data["award"] == [
        "Bronze cluster management excellence label (valid, valid until 2027-05-31)",
        "Gold cluster management excellence label",
    ]
    assert data["subjectOf"]["license"] == opendata.LICENCE.url


def test_a_website_that_is_not_http_is_not_given_as_the_url() -> None:
    data = opendata.organisation(page(website="javascript:alert(1)"), "https://r.example")
    assert "url" not in data and data["name"] == "org-1"


def test_every_distribution_of_the_catalogue_carries_the_licence() -> None:
    graph = opendata.catalogue("https://r.example")["@graph"]
    distributions = [d for node in graph for d in node.get("dcat:distribution", [])]
    assert len(distributions) == 7
    assert all(d["dct:license"] == {"@id": opendata.LICENCE.authority} for d in distributions)
    assert all(d["dcat:accessURL"]["@id"].startswith("https://r.example/") for d in distributions)
