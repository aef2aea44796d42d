"""Names for the expert list: asked of training_certification, null when it cannot answer."""

from __future__ import annotations

from projections.names import Names


async def test_without_a_url_or_an_answer_names_are_null_and_the_list_still_answers() -> None:
    rows = [{"person_id": "p-1"}, {"person_id": "p-2"}]
    for names in (Names(""), Names("http://127.0.0.1:1", timeout=0.5)):
        assert await names.fill([dict(r) for r in rows]) == [
            {"person_id": "p-1", "name": None},
            {"person_id": "p-2", "name": None},
        ]
        await names.close()
