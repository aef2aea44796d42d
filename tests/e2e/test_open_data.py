"""The open data for machines: the licence on the page and the exports, the DCAT-AP
catalogue (JSON-LD, read here with rdflib) whose every distribution answers, and the
caching and security headers the page's answers keep."""

from __future__ import annotations

from rdflib import Graph, Literal, Namespace, URIRef, namespace

from tests.e2e import scenario
from tests.e2e.conftest import System

CC_BY = "https://creativecommons.org/licenses/by/4.0/"
EU_CC_BY = URIRef("http://publications.europa.eu/resource/authority/licence/CC_BY_4_0")
FOAF = Namespace("http://xmlns.com/foaf/0.1/")
DCAT, DCTERMS, RDF = namespace.DCAT, namespace.DCTERMS, namespace.RDF


async def test_the_catalogue_describes_the_datasets_in_dcat_ap(system: System) -> None:
    base = system.urls["projections"]
    response = await system.get("projections", "/catalogue.jsonld")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/ld+json"
    assert response.headers["etag"] and "public" in response.headers["cache-control"]
    assert f'<{CC_BY}>; rel="license"' in response.headers["link"]

    graph = Graph().parse(data=response.text, format="json-ld", base=base)
    catalogue = URIRef(f"{base}/catalogue.jsonld")
    assert (catalogue, RDF.type, DCAT.Catalog) in graph
    # DCAT-AP's mandatory properties of the catalogue, and its licence
    for prop in (DCTERMS.title, DCTERMS.description, DCTERMS.publisher, DCAT.dataset):
        assert graph.value(catalogue, prop) is not None, prop
    assert graph.value(catalogue, DCTERMS.license) == EU_CC_BY
    titles = list(graph.objects(catalogue, DCTERMS.title))
    assert {t.language for t in titles if isinstance(t, Literal)} == {"en", "fr", "de"}
    publisher = graph.value(catalogue, DCTERMS.publisher)
    assert graph.value(publisher, FOAF.name) is not None
    assert (EU_CC_BY, FOAF.page, URIRef(CC_BY)) in graph

    datasets = set(graph.objects(catalogue, DCAT.dataset))
    ids = {str(graph.value(d, DCTERMS.identifier)) for d in datasets}
    assert ids == {"labels", "counts", "label-events"}
    urls = []
    for dataset in datasets:
        assert (dataset, RDF.type, DCAT.Dataset) in graph
        assert graph.value(dataset, DCTERMS.title) and graph.value(dataset, DCTERMS.description)
        distributions = list(graph.objects(dataset, DCAT.distribution))
        assert distributions
        for d in distributions:
            assert graph.value(d, DCTERMS.license) == EU_CC_BY
            assert graph.value(d, DCAT.mediaType) is not None
            urls.append(str(graph.value(d, DCAT.accessURL)))
    # every distribution answers where the catalogue says
    for url in urls:
        assert url.startswith(base), url
        if url.endswith("/stream"):
            async with system.client.stream("GET", url) as stream:
                assert stream.status_code == 200
                assert stream.headers["content-type"].startswith("text/event-stream")
            continue
        answer = await system.client.get(url)
        assert answer.status_code == 200, url
    service = graph.value(catalogue, DCAT.service)
    assert set(graph.objects(service, DCAT.servesDataset)) == datasets
    for prop in (DCAT.endpointURL, DCAT.endpointDescription):
        answer = await system.client.get(str(graph.value(service, prop)))
        assert answer.status_code == 200, prop


async def test_the_exports_and_the_page_state_their_licence(system: System) -> None:
    org, _ = await scenario.bronze_label(system, "SI", "AT", "2025-10-01", "2025-10-15")
    await scenario.listed(system, org)
    csv = await system.get("projections", f"/exports/labels.csv?q={org}")
    json = await system.get("projections", f"/exports/labels.json?q={org}")
    for export in (csv, json):
        assert export.status_code == 200
        assert f'<{CC_BY}>; rel="license"' in export.headers["link"]
    assert json.json()["license"] == CC_BY and len(json.json()["items"]) == 1
    page = await system.get("projections", "/")
    assert f'rel="license" href="{CC_BY}"' in page.text
    assert page.headers["etag"] and "default-src 'none'" in page.headers["content-security-policy"]
    assert "Accept-Language" in page.headers["vary"]
    again = await system.client.get(
        system.urls["projections"] + "/", headers={"If-None-Match": page.headers["etag"]}
    )
    assert again.status_code == 304


async def test_the_language_follows_accept_language_and_the_lang_parameter(
    system: System,
) -> None:
    url = system.urls["projections"] + "/subscribe"
    asked = {
        "de-AT,de;q=0.9,en;q=0.5": "de",
        "it, fr;q=0.8": "fr",
        "en-GB": "en",
        "fr;q=0.2, de;q=0.7": "de",
        "pl": "en",
    }
    for header, lang in asked.items():
        page = await system.client.get(url, headers={"Accept-Language": header})
        assert page.headers["content-language"] == lang, header
        assert f'<html lang="{lang}">' in page.text
    page = await system.client.get(url + "?lang=fr", headers={"Accept-Language": "de"})
    assert page.headers["content-language"] == "fr"
    assert "Données et abonnements" in page.text
    unknown = await system.client.get(url + "?lang=xx", headers={"Accept-Language": "de"})
    assert unknown.status_code == 200 and unknown.headers["content-language"] == "de"


async def test_the_experts_are_filtered_by_country_name(system: System) -> None:
    person = await scenario.expert(system, "AT", ["benchmarking_expert"], "2025-01-02")

    async def known() -> bool:
        listed = await system.get("projections", "/api/experts?country=AT")
        return any(p["person_id"] == person for p in listed.json()["items"])

    await system.until(known, "the expert in the experts register")
    page = await system.get("projections", "/experts?lang=de&country=AT")
    assert '<option value="AT" selected>Österreich</option>' in page.text
    assert '<td data-label="Land">Österreich</td>' in page.text
