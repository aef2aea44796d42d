import assert from "node:assert/strict";
import { test } from "node:test";
import { apply, emptyState, missing } from "./fold.mjs";
import { events } from "./sse.mjs";

const award = { type: "label_decisions.LabelAwarded.v1", subject: "o:bronze", globalposition: 3,
  prevposition: 0, data: { org_id: "o", level: "bronze", valid_until: "2027-01-31" } };
const withdrawal = { type: "label_decisions.LabelWithdrawn.v1", subject: "o:bronze",
  globalposition: 7, prevposition: 5, data: { org_id: "o", level: "bronze" } };

test("a repeat is skipped and a gap is reported", () => {
  const state = emptyState();
  for (const e of [award, withdrawal, award]) apply(state, e);
  assert.deepEqual(state.labels["o:bronze"], { org_id: "o", level: "bronze", status: "withdrawn",
    valid_until: "2027-01-31", position: 7, events: 2 });
  assert.equal(state.skipped, 1);
  assert.deepEqual(missing(state), [5]);
});

test("the parser joins data lines and keeps the last id", async () => {
  const chunks = ["retry: 2000\n\n: waiting\n\nid: 3\nevent: x\nda", "ta: {\"a\":\ndata: 1}\n\n"];
  const body = (async function* () { for (const c of chunks) yield new TextEncoder().encode(c); })();
  const out = [];
  for await (const m of events(body)) out.push(m);
  assert.deepEqual(out, [{ id: "3", event: "x", data: "{\"a\":\n1}" }]);
});
