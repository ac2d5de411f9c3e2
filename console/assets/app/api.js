// The one way the console talks to the node: Roster's HTTP API, as clients and the CLI
// call it, with the signed-in user's token as the accessToken header.

let token = '';
let onExpired = () => {};

export function setSession(t, expired) {
  token = t;
  onExpired = expired;
}

// Nacos' texts for a token that no longer works: the console signs out on them. Any
// other refusal (authorization failed!) is shown on the page.
const SESSION_ENDED = ['token invalid!', 'token expired!', 'unknown user!', 'user not found!'];

export class ApiError extends Error {
  constructor(status, text) {
    super(`${messageOf(text) || 'request failed'} (HTTP ${status})`);
    this.status = status;
    this.text = text;
  }
}

// messageOf reads the message of a v1 text answer or of a {code, message} envelope.
function messageOf(text) {
  try {
    const v = JSON.parse(text);
    if (v && typeof v === 'object') return v.message || v.data || text;
  } catch {
    // a plain-text answer
  }
  return text;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null) q.set(k, String(v));
  }
  return q;
}

// request sends params in the query (GET, DELETE) or as a form (POST, PUT), as Nacos'
// endpoints take them, and returns the raw response once it is known to be a success.
export async function request(method, path, params, init = {}) {
  const q = query(params);
  let url = path;
  let body;
  if (method === 'GET' || method === 'DELETE') {
    if ([...q].length) url += '?' + q;
  } else {
    body = q;
  }
  const headers = { ...(init.headers || {}) };
  if (token) headers.accessToken = token;
  const resp = await fetch(url, { method, headers, body: init.body || body });
  if (!resp.ok) {
    const text = await resp.text();
    if ((resp.status === 401 || resp.status === 403) && SESSION_ENDED.includes(text.trim())) onExpired();
    throw new ApiError(resp.status, text);
  }
  return resp;
}

export async function text(method, path, params) {
  return (await request(method, path, params)).text();
}

export async function json(method, path, params) {
  return (await request(method, path, params)).json();
}

// write is a write whose success Nacos answers as "ok" or "true".
export async function write(method, path, params) {
  const t = (await text(method, path, params)).trim();
  if (t === 'false') throw new Error(`${method} ${path} was refused (answer false)`);
  return t;
}
