// The broker's HTTP API from the pages: JSON in and out. `requestJson` is one call, with the
// caller's token if any (the customer page holds its own); `createApi` is the console's and the
// security review's client, with the staff token in one closure.
//
// The token is kept in memory only, never in localStorage or sessionStorage: storage outlives
// the tab and is readable by any script that ever runs on this origin, so a reload means
// logging in again. No cookies either (docs/security.md, "Web hygiene"): nothing for a forged
// cross-site request to ride on.

export class ApiError extends Error {
  /**
   * @param {number} status HTTP status (0 when the broker could not be reached)
   * @param {string} code the broker's stable error code, e.g. "unauthorized"
   * @param {string} message the broker's human-readable message
   */
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: fall through to the status text
  }
  if (body && typeof body.error === "string") {
    const message = typeof body.message === "string" && body.message ? body.message : body.error;
    return new ApiError(response.status, body.error, message);
  }
  return new ApiError(response.status, "http_error", `${response.status} ${response.statusText}`.trim());
}

/**
 * One JSON request; a token goes in the Authorization header only, never in the URL.
 * @param {string} method
 * @param {string} url
 * @param {{body?: object, token?: string|null, fetchImpl?: typeof fetch}} options
 * @returns {Promise<any>} the JSON answer, or null for 204
 * @throws {ApiError} the broker's error, or status 0 when it could not be reached
 */
export async function requestJson(method, url, { body, token = null, fetchImpl = globalThis.fetch.bind(globalThis) } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetchImpl(url, init);
  } catch {
    throw new ApiError(0, "unreachable", "the broker cannot be reached; check the network");
  }
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204) return null;
  return response.json();
}

/** Create a client; the token lives only inside this closure. */
export function createApi({ base = "", fetchImpl = globalThis.fetch.bind(globalThis) } = {}) {
  let token = null;
  let user = null;
  let renewTimer = null;
  const listeners = new Set();
  const renewedListeners = new Set();

  // Renew at four fifths of the token's life: a live viewer socket ends at its token's expiry,
  // so the console hands each renewed token to its socket too (onRenewed).
  function scheduleRenewal(expiresAt) {
    clearTimeout(renewTimer);
    const life = Date.parse(expiresAt) - Date.now();
    if (!Number.isFinite(life)) return;
    renewTimer = setTimeout(renew, Math.max(5_000, life * 0.8));
  }

  async function renew() {
    if (!token) return;
    try {
      const result = await request("POST", "/api/v1/token");
      token = result.token;
      scheduleRenewal(result.expires_at);
      for (const listener of renewedListeners) listener(token);
    } catch (error) {
      // 401 already told the page (sign in again); otherwise try again shortly.
      if (!(error instanceof ApiError && error.status === 401)) renewTimer = setTimeout(renew, 30_000);
    }
  }

  async function request(method, path, body) {
    try {
      return await requestJson(method, `${base}${path}`, { body, token, fetchImpl });
    } catch (error) {
      // An expired or revoked token: tell the page so it can show the login form again.
      if (error.status === 401 && token) for (const listener of listeners) listener(error);
      throw error;
    }
  }

  return {
    get token() {
      return token;
    },
    get user() {
      return user;
    },
    get loggedIn() {
      return token !== null;
    },
    onUnauthorized(listener) {
      listeners.add(listener);
    },
    /** Called with each renewed token (every four fifths of its life while signed in). */
    onRenewed(listener) {
      renewedListeners.add(listener);
    },
    async login(username, password) {
      const result = await request("POST", "/api/v1/login", { username, password });
      token = result.token;
      user = result.user;
      scheduleRenewal(result.expires_at);
      return result;
    },
    renew,
    logout() {
      clearTimeout(renewTimer);
      token = null;
      user = null;
    },
    get: (path) => request("GET", path),
    post: (path, body = {}) => request("POST", path, body),
    queue: (states = "waiting,active") => request("GET", `/api/v1/sessions?state=${encodeURIComponent(states)}`),
    cases: (status = "") =>
      request("GET", status ? `/api/v1/cases?status=${encodeURIComponent(status)}` : "/api/v1/cases"),
    createCase: (fields) => request("POST", "/api/v1/cases", fields),
    caseDetail: (number) => request("GET", `/api/v1/cases/${encodeURIComponent(number)}`),
    cancelCase: (number, reason) => request("POST", `/api/v1/cases/${encodeURIComponent(number)}/cancel`, { reason }),
    changeTerms: (number, fields) => request("PATCH", `/api/v1/cases/${encodeURIComponent(number)}`, fields),
    plans: () => request("GET", "/api/v1/plans"),
    createSession: (caseNumber) => request("POST", `/api/v1/cases/${encodeURIComponent(caseNumber)}/sessions`, {}),
    session: (id) => request("GET", `/api/v1/sessions/${encodeURIComponent(id)}`),
    invite: (id, fields) => request("POST", `/api/v1/sessions/${encodeURIComponent(id)}/invite`, fields),
    endSession: (id, reason) => request("POST", `/api/v1/sessions/${encodeURIComponent(id)}/end`, { reason }),
  };
}
