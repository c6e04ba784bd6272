// The console's only way to the server: the public /api/v1, as any script
// would call it. Errors carry the contract body's message; a 401 asks for a
// token once (kept in sessionStorage only, for this tab) and retries.

const TOKEN_KEY = "research-console-token";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body ? body.code : undefined;
    this.body = body;
  }
}

let askForToken = async () => null;

/** `ask(reason) -> Promise<string | null>`: how a 401 gets a token. */
export function setTokenPrompt(ask) {
  askForToken = ask;
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** `path` with `query` (an object; arrays repeat the parameter; empty values are left out). */
export function withQuery(path, query = {}) {
  const parameters = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    for (const one of Array.isArray(value) ? value : [value]) {
      if (one !== undefined && one !== null && one !== "") parameters.append(name, String(one));
    }
  }
  const encoded = parameters.toString();
  return encoded ? `${path}?${encoded}` : path;
}

/** The URL of `rel="next"` in a Link header (RFC 8288), or null. */
export function nextLink(header) {
  if (!header) return null;
  for (const part of header.split(",")) {
    const match = /<([^>]*)>\s*;\s*rel="?next"?/.exec(part.trim());
    if (match) return match[1];
  }
  return null;
}

/**
 * One call. Resolves to {status, data, etag, next}; rejects with ApiError.
 * `headers` are sent as given (e.g. If-Match); `body` as JSON.
 */
export async function call(method, path, { query, body, headers = {} } = {}) {
  const url = query ? withQuery(path, query) : path;
  for (let attempt = 0; ; attempt += 1) {
    const sent = { Accept: "application/json", ...headers };
    const secret = token();
    if (secret) sent.Authorization = `Bearer ${secret}`;
    if (body !== undefined) sent["Content-Type"] = "application/json";
    const response = await fetch(url, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    const data = await readJson(response);
    if (response.status === 401 && attempt === 0) {
      const reason = data && data.message ? data.message : "This server asks for a token.";
      const given = await askForToken(reason);
      if (given) {
        sessionStorage.setItem(TOKEN_KEY, given);
        continue;
      }
    }
    if (!response.ok && response.status !== 304) throw new ApiError(response.status, data);
    return {
      status: response.status,
      data,
      etag: response.headers.get("ETag"),
      next: nextLink(response.headers.get("Link")),
    };
  }
}

async function readJson(response) {
  if (response.status === 204 || response.status === 304) return null;
  const type = response.headers.get("Content-Type") || "";
  if (!type.includes("json")) return null;
  try {
    return await response.json();
  } catch {
    return null;
  }
}

export const api = {
  get: (path, options) => call("GET", path, options),
  post: (path, options) => call("POST", path, options),
  patch: (path, options) => call("PATCH", path, options),
  delete: (path, options) => call("DELETE", path, options),
};
