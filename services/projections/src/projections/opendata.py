"""The registry's open data described for machines: the licence, a DCAT-AP catalogue of the
public datasets (JSON-LD, at a stable URL), and schema.org JSON-LD for organisation pages.

The catalogue's ``@context`` is inline (no remote context to fetch), so any JSON-LD
processor reads it offline; controlled values come from the EU Vocabularies (licence,
language, data theme, frequency, file type) as DCAT-AP recommends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson

JSONLD = "application/ld+json"
CATALOGUE_PATH = "/catalogue.jsonld"
"""The stable URL of the DCAT-AP catalogue."""

EU = "http://publications.europa.eu/resource/authority"
IANA = "http://www.iana.org/assignments/media-types"


@dataclass(frozen=True)
class Licence:
    """The licence of everything the registry publishes."""

    name: str
    spdx: str
    url: str
    """The licence deed (what people and the ``Link: rel="license"`` headers point to)."""
    authority: str
    """Its IRI in the EU Vocabularies' licence list (what DCAT-AP asks for)."""
    attribution: str


LICENCE = Licence(
    name="Creative Commons Attribution 4.0 International (CC BY 4.0)",
    spdx="CC-BY-4.0",
    url="https://creativecommons.org/licenses/by/4.0/",
    authority=f"{EU}/licence/CC_BY_4_0",
    attribution="Cluster label registry",
)

CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}


def _text(en: str, fr: str, de: str) -> list[dict[str, str]]:
    return [
        {"@value": en, "@language": "en"},
        {"@value": fr, "@language": "fr"},
        {"@value": de, "@language": "de"},
    ]


def _id(iri: str) -> dict[str, str]:
    return {"@id": iri}


def _distribution(
    base: str, path: str, media_type: str, file_type: str, title: str, *, download: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "@id": f"{base}{path}#distribution",
        "@type": "dcat:Distribution",
        "dct:title": title,
        "dcat:accessURL": _id(base + path),
        "dcat:mediaType": _id(f"{IANA}/{media_type}"),
        "dct:format": _id(f"{EU}/file-type/{file_type}"),
        "dct:license": _id(LICENCE.authority),
    }
    if download:
        out["dcat:downloadURL"] = _id(base + path)
    return out


def catalogue(base: str) -> dict[str, Any]:
    """The DCAT-AP catalogue of the public datasets, with absolute IRIs under ``base``."""
    publisher: dict[str, Any] = {
        "@id": f"{base}/#publisher",
        "@type": "foaf:Agent",
        "foaf:name": LICENCE.attribution,
        "foaf:homepage": _id(f"{base}/"),
    }
    contact: dict[str, Any] = {
        "@type": "vcard:Organization",
        "vcard:fn": LICENCE.attribution,
        "vcard:hasURL": _id(f"{base}/subscribe"),
    }
    common: dict[str, Any] = {
        "dct:publisher": _id(publisher["@id"]),
        "dcat:contactPoint": contact,
        "dcat:theme": [_id(f"{EU}/data-theme/ECON")],
        "dct:spatial": _id(f"{EU}/continent/EUROPE"),
        "dct:language": [_id(f"{EU}/language/{c}") for c in ("ENG", "FRA", "DEU")],
        "dcat:landingPage": _id(f"{base}/"),
    }
    labels: dict[str, Any] = {
        "@id": f"{base}/#dataset-labels",
        "@type": "dcat:Dataset",
        "dct:identifier": "labels",
        "dct:title": _text(
            "Labelled cluster organisations",
            "Organisations de clusters labellisées",
            "Ausgezeichnete Clusterorganisationen",
        ),
        "dct:description": _text(
            "Every cluster organisation with a cluster management excellence label (Bronze,"
            " Silver, Gold): country, sector, website, level, award and validity dates and"
            " status on a day. Indicator scores are never published.",
            "Chaque organisation de cluster titulaire d'un label d'excellence en gestion de"
            " clusters (Bronze, Argent, Or) : pays, secteur, site web, niveau, dates"
            " d'attribution et de validité, statut à une date. Les scores des indicateurs ne"
            " sont jamais publiés.",
            "Jede Clusterorganisation mit einem Label für exzellentes Clustermanagement"
            " (Bronze, Silber, Gold): Land, Branche, Website, Stufe, Vergabe- und"
            " Gültigkeitsdaten und Status an einem Tag. Indikatorwerte werden nie"
            " veröffentlicht.",
        ),
        "dcat:keyword": ["cluster management", "excellence label", "ECEI", "clusters"],
        "dct:accrualPeriodicity": _id(f"{EU}/frequency/UPDATE_CONT"),
        **common,
        "dcat:distribution": [
            _distribution(base, "/exports/labels.csv", "text/csv", "CSV", "CSV", download=True),
            _distribution(
                base, "/exports/labels.json", "application/json", "JSON", "JSON", download=True
            ),
            _distribution(base, "/api/labels", "application/json", "JSON", "JSON API (paged)"),
        ],
    }
    counts: dict[str, Any] = {
        "@id": f"{base}/#dataset-counts",
        "@type": "dcat:Dataset",
        "dct:identifier": "counts",
        "dct:title": _text(
            "Valid labels by level and country",
            "Labels valides par niveau et par pays",
            "Gültige Labels nach Stufe und Land",
        ),
        "dct:description": _text(
            "How many labels are valid on a day, per level and per country, and the monthly"
            " series of valid labels per level since the first award.",
            "Le nombre de labels valides à une date, par niveau et par pays, et la série"
            " mensuelle des labels valides par niveau depuis la première attribution.",
            "Wie viele Labels an einem Tag gültig sind, je Stufe und Land, und die monatliche"
            " Reihe der gültigen Labels je Stufe seit der ersten Vergabe.",
        ),
        "dcat:keyword": ["statistics", "cluster management", "excellence label"],
        "dct:accrualPeriodicity": _id(f"{EU}/frequency/DAILY"),
        **common,
        "dcat:distribution": [
            _distribution(base, "/api/counts", "application/json", "JSON", "Counts on a day"),
            _distribution(base, "/api/counts/series", "application/json", "JSON", "Monthly series"),
        ],
    }
    feed: dict[str, Any] = {
        "@id": f"{base}/#dataset-label-events",
        "@type": "dcat:Dataset",
        "dct:identifier": "label-events",
        "dct:title": _text(
            "Label decisions as events",
            "Décisions de labellisation sous forme d'événements",
            "Label-Entscheidungen als Ereignisse",
        ),
        "dct:description": _text(
            "Every public label decision (awarded, renewed, expired, withdrawn, corrected) as a"
            " CloudEvents 1.0 event in order, from any position: a pull feed, Server-Sent"
            " Events, and the Kafka topic label_decisions.events.",
            "Chaque décision publique de labellisation (attribution, renouvellement,"
            " expiration, retrait, correction) sous forme d'événement CloudEvents 1.0, dans"
            " l'ordre, depuis n'importe quelle position : un flux à interroger, des"
            " Server-Sent Events et le sujet Kafka label_decisions.events.",
            "Jede öffentliche Label-Entscheidung (Vergabe, Verlängerung, Ablauf, Entzug,"
            " Korrektur) als CloudEvents-1.0-Ereignis, geordnet, ab jeder Position: ein"
            " Abruf-Feed, Server-Sent Events und das Kafka-Topic label_decisions.events.",
        ),
        "dcat:keyword": ["events", "CloudEvents", "feed", "excellence label"],
        "dct:accrualPeriodicity": _id(f"{EU}/frequency/UPDATE_CONT"),
        "dct:conformsTo": _id(
            "https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md"
        ),
        **common,
        "dcat:distribution": [
            _distribution(base, "/api/feed", "application/json", "JSON", "Pull feed"),
            {
                **_distribution(
                    base, "/api/feed/stream", "text/event-stream", "TXT", "Server-Sent Events"
                ),
                "dct:description": "The feed live; each event's id is its position.",
            },
        ],
    }
    datasets = [labels, counts, feed]
    api: dict[str, Any] = {
        "@id": f"{base}/#api",
        "@type": "dcat:DataService",
        "dct:title": "Public JSON API",
        "dcat:endpointURL": _id(f"{base}/"),
        "dcat:endpointDescription": _id(f"{base}/openapi.json"),
        "dcat:servesDataset": [_id(d["@id"]) for d in datasets],
        "dct:license": _id(LICENCE.authority),
        "dct:publisher": _id(publisher["@id"]),
    }
    return {
        "@context": CONTEXT,
        "@graph": [
            {
                "@id": f"{base}{CATALOGUE_PATH}",
                "@type": "dcat:Catalog",
                "dct:title": _text(
                    "Cluster label registry",
                    "Registre des labels de clusters",
                    "Cluster-Label-Register",
                ),
                "dct:description": _text(
                    "Open data of Europe's cluster management excellence labels.",
                    "Données ouvertes des labels européens d'excellence en gestion de clusters.",
                    "Offene Daten der europäischen Labels für exzellentes Clustermanagement.",
                ),
                "dct:publisher": _id(publisher["@id"]),
                "foaf:homepage": _id(f"{base}/"),
                "dct:license": _id(LICENCE.authority),
                "dct:language": common["dct:language"],
                "dcat:themeTaxonomy": _id(f"{EU}/data-theme"),
                "dcat:dataset": [_id(d["@id"]) for d in datasets],
                "dcat:service": [_id(api["@id"])],
            },
            publisher,
            {
                "@id": LICENCE.authority,
                "@type": "dct:LicenseDocument",
                "dct:title": LICENCE.name,
                "dct:identifier": LICENCE.spdx,
                "foaf:page": _id(LICENCE.url),
            },
            *datasets,
            api,
        ],
    }


def _day(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, date) else None


def organisation(page: dict[str, Any], base: str) -> dict[str, Any]:
    """schema.org ``Organization`` JSON-LD for an organisation's page: its profile and, as
    ``award``, each label record with its level and validity."""
    o = page["organisation"]
    url = f"{base}/organisations/{o['org_id']}"
    out: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "Organization",
        "@id": f"{url}#organisation",
        "identifier": o["org_id"],
        "name": o.get("name") or o["org_id"],
        "mainEntityOfPage": url,
    }
    website = o.get("website")
    if isinstance(website, str) and website.lower().startswith(("https://", "http://")):
        out["url"] = website
    if o.get("country"):
        address = {"@type": "PostalAddress", "addressCountry": o["country"]}
        if o.get("region"):
            address["addressRegion"] = o["region"]
        out["address"] = address
    if o.get("sector"):
        out["knowsAbout"] = o["sector"]
    awards = []
    for label in page["labels"]:
        text = f"{label['level'].capitalize()} cluster management excellence label"
        until = _day(label.get("valid_until"))
        awards.append(
            f"{text} ({label['status'].replace('_', ' ')}, valid until {until})" if until else text
        )
    if awards:
        out["award"] = awards
    out["subjectOf"] = {
        "@type": "Dataset",
        "name": "Cluster label registry",
        "url": f"{base}/",
        "license": LICENCE.url,
    }
    return out


def dumps(document: dict[str, Any]) -> bytes:
    """JSON-LD bytes."""
    return orjson.dumps(document, option=orjson.OPT_INDENT_2)
