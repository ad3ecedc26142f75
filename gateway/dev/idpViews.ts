// HTML pages of the dev IdP: user-code entry, device confirmation, login, success and error.
// Self-contained (no web fonts, no scripts) so they work offline; every interpolated value is
// escaped. test/support/deviceApproval.ts drives these pages and relies on the form field names
// (`user_code`, `name`) and on the success page's title.
import type { DevUser } from './idp.js';

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(value: string): string {
  return value
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const STYLE = `
  body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 28rem; color: #222; }
  h1 { font-weight: 400; }
  .error { color: #b00020; }
  .code { font-family: ui-monospace, monospace; font-size: 1.6rem; letter-spacing: .1em; }
  input[type=text] { font-size: 1rem; padding: .4rem; width: 100%; box-sizing: border-box; }
  button { font-size: 1rem; padding: .4rem 1rem; margin: .5rem .5rem 0 0; cursor: pointer; }
  ul { padding-left: 0; list-style: none; }
  li form { display: inline; }
  small { color: #666; }`;

/** A whole page; `title` is plain text, `body` is already-escaped HTML. */
export function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>${escapeHtml(title)}</title>
  <style>${STYLE}</style>
</head>
<body>
  <p><small>Sluice development identity provider — not for production</small></p>
${body}
</body>
</html>`;
}

/** Page for `verification_uri` without a code. `form` is oidc-provider's own form markup. */
export function userCodeInputPage(form: string, problem?: string): string {
  const message = problem
    ? `<p class="error">${escapeHtml(problem)}</p>`
    : '<p>Enter the code shown by the Sluice CLI.</p>';
  return page(
    'Sign in to Sluice',
    `  <h1>Sign in</h1>
  ${message}
  ${form}
  <button type="submit" form="op.deviceInputForm">Continue</button>`,
  );
}

/** Asks the person to compare the code with the one their terminal shows. */
export function confirmDevicePage(form: string, clientName: string, userCode: string): string {
  return page(
    'Confirm device',
    `  <h1>Confirm device</h1>
  <p><strong>${escapeHtml(clientName)}</strong> asks to sign in. Check that your terminal shows this code:</p>
  <p class="code">${escapeHtml(userCode)}</p>
  ${form}
  <button type="submit" form="op.deviceConfirmForm">Continue</button>
  <button type="submit" form="op.deviceConfirmForm" name="abort" value="yes">Abort</button>
  <p><small>If you did not start this sign-in, or the codes differ, abort.</small></p>`,
  );
}

/**
 * The login form: any configured user's name signs in as that user (no password: this IdP is for
 * development and tests). The main form (id `login`) has a text field `name`; each configured
 * user also gets a one-click form.
 */
export function loginPage(action: string, users: readonly DevUser[], problem?: string): string {
  const message = problem ? `<p class="error">${escapeHtml(problem)}</p>` : '';
  const choices = users
    .map(
      (u) => `    <li><form method="post" action="${escapeHtml(action)}">
      <input type="hidden" name="name" value="${escapeHtml(u.name)}">
      <button type="submit">${escapeHtml(u.name)}</button>
    </form> <small>${escapeHtml(u.email)}${u.groups.length ? ` · ${escapeHtml(u.groups.join(', '))}` : ''}</small></li>`,
    )
    .join('\n');
  return page(
    'Sign in to Sluice',
    `  <h1>Who are you?</h1>
  ${message}
  <form id="login" method="post" action="${escapeHtml(action)}">
    <label for="name">User name</label>
    <input type="text" id="name" name="name" autofocus autocomplete="username">
    <button type="submit">Sign in</button>
  </form>
  <p>Or pick a configured user:</p>
  <ul>
${choices}
  </ul>`,
  );
}

/** Shown once the device is approved; its title is what tests look for. */
export function successPage(clientName: string): string {
  return page(
    'Sign-in successful',
    `  <h1>Sign-in successful</h1>
  <p>${escapeHtml(clientName)} is signed in. You can close this page and return to your terminal.</p>`,
  );
}

/** `details` are oidc-provider's `{ error, error_description }` or our own message. */
export function errorPage(details: Record<string, string>): string {
  const rows = Object.entries(details)
    .map(([k, v]) => `  <p><strong>${escapeHtml(k)}</strong>: ${escapeHtml(v)}</p>`)
    .join('\n');
  return page('Sign-in failed', `  <h1>Sign-in failed</h1>\n${rows}`);
}
