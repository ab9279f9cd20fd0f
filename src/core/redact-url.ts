// URLs recorded without their credentials: `https://user:pass@host/path` is written `https://host/path` in
// manifests, RPM descriptions, published metadata, logs and events (the guest that fetches keeps the real one).

// scheme://userinfo@ — the userinfo runs to the authority's last `@` (an unescaped `@` in a password, as
// WHATWG URL parsing takes it) and never past the authority's end (`/`, `?`, `#`)
const USERINFO = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/?#]*@/;
const USERINFO_IN_TEXT = /\b([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^\s/?#]*@/g;

/** `url` without its userinfo (`user:pass@`); anything else (no userinfo, not a URL) unchanged. */
export function redactUrl(url: string): string {
  return url.replace(USERINFO, '$1');
}

/** Every URL in free text (a sources line, a command line, a message) without its userinfo. */
export function redactUrlsIn(text: string): string {
  return text.replace(USERINFO_IN_TEXT, '$1');
}

/**
 * fetch() for a URL that may carry credentials: Node's fetch (undici) refuses `user:pass@` in a URL, so
 * they go in an Authorization: Basic header, as curl and apt send them.
 */
export function fetchWithUserinfo(url: string, init: RequestInit = {}): Promise<Response> {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)([^/?#]*)@/.exec(url);
  if (!m) return fetch(url, init);
  const [user = '', pass = ''] = (m[2] as string).split(/:(.*)/s);
  const basic = Buffer.from(`${decodeURIComponent(user)}:${decodeURIComponent(pass)}`).toString('base64');
  const headers = new Headers(init.headers);
  headers.set('authorization', `Basic ${basic}`);
  return fetch(redactUrl(url), { ...init, headers });
}
