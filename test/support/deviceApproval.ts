// Approves a device authorization the way a person in a browser would, against the dev IdP's real
// pages: open verification_uri_complete, let its auto-submitting form post, confirm the code,
// sign in with a user name, and expect the success page. Uses undici fetch with manual redirects
// and a small cookie jar, so it exercises the same cookies, forms and 303s a browser does.
import { Agent, fetch, type Response } from 'undici';

export interface DeviceApprovalOptions {
  /** PEM of the CA that signed the IdP's certificate (for https issuers with a private CA). */
  ca?: string | Buffer;
  /** Give up after this many requests. Default 12. */
  maxSteps?: number;
}

interface Cookie {
  name: string;
  value: string;
  path: string;
}

/** Just enough of RFC 6265 for one host: name, value, Path, deletion by Max-Age/Expires. */
class CookieJar {
  #cookies = new Map<string, Cookie>();

  store(setCookies: string[]): void {
    for (const header of setCookies) {
      const [pair = '', ...attrs] = header.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = '/';
      let expired = false;
      for (const attr of attrs) {
        const [k = '', v = ''] = attr.split('=', 2).map((s) => s.trim());
        const key = k.toLowerCase();
        if (key === 'path' && v.startsWith('/')) path = v;
        if (key === 'max-age' && Number(v) <= 0) expired = true;
        if (key === 'expires' && Date.parse(v) <= Date.now()) expired = true;
      }
      const id = `${path}\n${name}`;
      if (expired) this.#cookies.delete(id);
      else this.#cookies.set(id, { name, value, path });
    }
  }

  headerFor(url: URL): string | undefined {
    const matching = [...this.#cookies.values()].filter(
      (c) => url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`),
    );
    return matching.length ? matching.map((c) => `${c.name}=${c.value}`).join('; ') : undefined;
  }
}

interface Form {
  action: string;
  method: string;
  id?: string;
  fields: Map<string, string>;
  /** Names of visible text inputs, which a person would type into. */
  textInputs: string[];
}

function decodeEntities(s: string): string {
  return s
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function attributes(tag: string): Map<string, string> {
  const attrs = new Map<string, string>();
  for (const m of tag.matchAll(/([\w.:-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g)) {
    const name = m[1];
    if (name) attrs.set(name.toLowerCase(), decodeEntities(m[2] ?? m[3] ?? m[4] ?? ''));
  }
  return attrs;
}

/** Forms of a page with their inputs (no buttons: a submit button outside a form adds nothing). */
function parseForms(html: string): Form[] {
  const forms: Form[] = [];
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const attrs = attributes(m[1] ?? '');
    const form: Form = {
      action: attrs.get('action') ?? '',
      method: (attrs.get('method') ?? 'get').toUpperCase(),
      id: attrs.get('id'),
      fields: new Map(),
      textInputs: [],
    };
    for (const input of (m[2] ?? '').matchAll(/<input\b([^>]*)>/gi)) {
      const a = attributes(input[1] ?? '');
      const name = a.get('name');
      if (!name) continue;
      const type = (a.get('type') ?? 'text').toLowerCase();
      form.fields.set(name, a.get('value') ?? '');
      if (type === 'text') form.textInputs.push(name);
    }
    forms.push(form);
  }
  return forms;
}

function pageText(html: string): string {
  return decodeEntities(
    html
      .replace(/<(script|style)\b[\s\S]*?<\/\1>/gi, ' ')
      .replace(/<[^>]+>/g, ' ')
      .replace(/\s+/g, ' ')
      .trim(),
  );
}

/**
 * Approves the device authorization behind `verificationUriComplete` as `userName` by driving the
 * IdP's HTML pages over HTTP. Resolves when the success page is shown; otherwise rejects with the
 * text of the page where it stopped (an unknown user name, an expired code, …).
 */
export async function approveDeviceOverHttp(
  verificationUriComplete: string,
  userName: string,
  opts: DeviceApprovalOptions = {},
): Promise<void> {
  const dispatcher = new Agent(opts.ca ? { connect: { ca: opts.ca } } : {});
  const jar = new CookieJar();
  const maxSteps = opts.maxSteps ?? 12;
  let loginSubmitted = false;

  const request = async (url: URL, method: string, body?: URLSearchParams): Promise<Response> => {
    const headers: Record<string, string> = { accept: 'text/html' };
    const cookie = jar.headerFor(url);
    if (cookie) headers.cookie = cookie;
    const res = await fetch(url, { method, body, headers, redirect: 'manual', dispatcher });
    jar.store(res.headers.getSetCookie());
    return res;
  };

  try {
    let here = new URL(verificationUriComplete);
    let res = await request(here, 'GET');
    for (let step = 1; ; step++) {
      if (step > maxSteps) throw new Error(`device approval: gave up after ${maxSteps} requests at ${here}`);
      if ([301, 302, 303, 307, 308].includes(res.status)) {
        const location = res.headers.get('location');
        await res.body?.cancel();
        if (!location) throw new Error(`device approval: ${res.status} without Location at ${here}`);
        here = new URL(location, here);
        res = await request(here, 'GET');
        continue;
      }
      const html = await res.text();
      if (res.status === 200 && /<title>[^<]*sign-in success/i.test(html)) return;
      if (res.status !== 200) {
        throw new Error(`device approval: HTTP ${res.status} at ${here}: ${pageText(html)}`);
      }

      const forms = parseForms(html).filter((f) => f.method === 'POST');
      // The login form is the one with a `name` text field; the others (auto-submit, confirm)
      // carry everything as hidden inputs. On the login page, per-user shortcut forms come after.
      const login = forms.find((f) => f.textInputs.includes('name'));
      const form = login ?? forms[0];
      if (!form) throw new Error(`device approval: no form to submit at ${here}: ${pageText(html)}`);
      if (login) {
        if (loginSubmitted) throw new Error(`device approval: login refused: ${pageText(html)}`);
        login.fields.set('name', userName);
        loginSubmitted = true;
      } else if (form.textInputs.length > 0) {
        throw new Error(`device approval: unexpected input form at ${here}: ${pageText(html)}`);
      }
      here = new URL(form.action || here.href, here);
      res = await request(here, 'POST', new URLSearchParams([...form.fields]));
    }
  } finally {
    await dispatcher.close();
  }
}
