// A Server-Sent Events parser (the WHATWG "event stream" format) over a fetch body:
// yields {id, event, data} per dispatched event; comments and retry lines are skipped.

export async function* events(body) {
  const decoder = new TextDecoder();
  let buffer = "";
  let message = { id: undefined, event: "message", data: [] };
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
      if (line === "") {
        if (message.data.length > 0) {
          yield { id: message.id, event: message.event, data: message.data.join("\n") };
        }
        message = { id: message.id, event: "message", data: [] };
        continue;
      }
      if (line.startsWith(":")) continue; // a comment (keep-alive)
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") message.data.push(value);
      else if (field === "event") message.event = value;
      else if (field === "id" && !value.includes("\0")) message.id = value;
    }
  }
}
