// The fold of clients/README.md: each label record's state, the positions applied with
// their prevposition, and the repeats skipped.

const STATUS = {
  LabelAwarded: "awarded",
  LabelRenewed: "renewed",
  LabelExpired: "expired",
  LabelWithdrawn: "withdrawn",
};

export function emptyState() {
  return { after: 0, labels: {}, applied: [], skipped: 0 };
}

/** Fold one structured CloudEvent (numbers are JSON integers over HTTP). */
export function apply(state, event) {
  const known = state.labels[event.subject];
  if (known && known.position >= event.globalposition) {
    state.skipped += 1; // a repeat
    return;
  }
  state.applied.push([event.globalposition, event.prevposition]);
  const name = event.type.split(".")[1];
  const status = STATUS[name];
  if (status === undefined && name !== "LabelRecordCorrected") {
    return; // a type this client does not know: ignored, as the guide says
  }
  const label = known ?? (state.labels[event.subject] = { events: 0 });
  label.org_id = event.data.org_id;
  label.level = event.data.level;
  if (status !== undefined) label.status = status; // a correction changes the dates only
  if (event.data.valid_until != null) label.valid_until = event.data.valid_until;
  label.position = event.globalposition;
  label.events += 1;
}

/** The prevpositions named by applied events that were never applied. */
export function missing(state) {
  const seen = new Set(state.applied.map(([position]) => position));
  return state.applied.filter(([, prev]) => prev !== 0 && !seen.has(prev)).map(([, prev]) => prev);
}
