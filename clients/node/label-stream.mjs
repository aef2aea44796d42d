#!/usr/bin/env node
// Follows the public label events over Server-Sent Events (GET /api/feed/stream), as the
// subscriber guide (schemas/README.md) says, and folds them (clients/README.md).
//
//   node label-stream.mjs --url http://127.0.0.1:8100 --state state.json [--max-events N]
//
// The first run starts at ?after=0; a later run resumes with the Last-Event-ID header set
// to the cursor saved in the state file, as a reconnecting EventSource does. It stops at
// the feed's head as it was when it started (or after N events), saves, and prints a summary.
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { apply, emptyState, missing } from "./fold.mjs";
import { events } from "./sse.mjs";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string", default: "http://127.0.0.1:8100" },
    state: { type: "string", default: "label-stream-state.json" },
    "max-events": { type: "string", default: "-1" },
  },
});
const maxEvents = Number(opts["max-events"]);
const state = existsSync(opts.state) ? JSON.parse(readFileSync(opts.state, "utf8")) : emptyState();

function save() {
  writeFileSync(`${opts.state}.tmp`, JSON.stringify(state));
  renameSync(`${opts.state}.tmp`, opts.state);
}

async function head() {
  const response = await fetch(`${opts.url}/api/feed?after=${state.after}&limit=1`);
  if (!response.ok) throw new Error(`GET /api/feed: ${response.status} ${await response.text()}`);
  return (await response.json()).head;
}

const until = await head();
let read = 0;
if (state.after < until && maxEvents !== 0) {
  const controller = new AbortController();
  const resume = state.after > 0;
  const response = await fetch(`${opts.url}/api/feed/stream${resume ? "" : "?after=0"}`, {
    headers: { Accept: "text/event-stream", ...(resume ? { "Last-Event-ID": String(state.after) } : {}) },
    signal: controller.signal,
  });
  if (!response.ok) throw new Error(`GET /api/feed/stream: ${response.status} ${await response.text()}`);
  try {
    for await (const message of events(response.body)) {
      const event = JSON.parse(message.data);
      if (String(event.globalposition) !== message.id) {
        throw new Error(`event id ${message.id} is not its position ${event.globalposition}`);
      }
      apply(state, event);
      state.after = event.globalposition;
      read += 1;
      save();
      if (read === maxEvents || state.after >= until) break;
    }
  } finally {
    controller.abort();
  }
}
save();
process.stdout.write(`${JSON.stringify({ ...state, missing: missing(state), read })}\n`);
