// Talking to this node's HTTP API: JSON in, JSON out, errors carry the API's stable code.

export class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

export async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    throw new ApiError("node_unreachable", `cannot reach the node: ${err.message}`, 0);
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    if (!response.ok) throw new ApiError("http_error", `HTTP ${response.status}`, response.status);
    throw new ApiError("bad_response", "the node answered with something that is not JSON", response.status);
  }
  if (!response.ok) {
    const error = body && body.error ? body.error : { code: "http_error", message: `HTTP ${response.status}` };
    throw new ApiError(error.code, error.message, response.status);
  }
  return body;
}

export function postJson(path, value) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(value) });
}

// Answers 404 with null: for things that may simply not exist (an identity, a checkpoint not yet made).
export async function apiOrNull(path) {
  try {
    return await api(path);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

// The live stream: calls `handlers[event](data)`; reports its state to `onState`. EventSource reconnects
// by itself (the server sends `retry`); after `dropped` we reconnect and the page reloads what it shows.
export function openStream(handlers, onState) {
  let source = null;
  const connect = () => {
    source = new EventSource("/v1/stream");
    source.onopen = () => onState("open");
    source.onerror = () => onState(source.readyState === EventSource.CLOSED ? "error" : "connecting");
    for (const name of ["hello", "entry", "checkpoint", "heartbeat"]) {
      source.addEventListener(name, (event) => {
        const handler = handlers[name];
        if (handler) handler(JSON.parse(event.data));
      });
    }
    source.addEventListener("dropped", () => {
      source.close();
      onState("connecting");
      setTimeout(connect, 1000);
      if (handlers.dropped) handlers.dropped();
    });
  };
  connect();
  return () => source && source.close();
}
