// Cookie mode and CORS in a real browser: a page on one origin (the app)
// calls Warden on another (the API) with `credentials: 'include'`, as a
// frontend on a dev server or its own host does.
//
// Usage: node cookies.mjs APP_URL API_URL EMAIL PASSWORD [OPTIONS_JSON]
//   APP_URL  a page to open (any HTML served there will do); its origin is
//            the app's, and must be in WARDEN_CORS_ORIGINS.
//   API_URL  Warden's base URL as the page sees it.
//   OPTIONS  { "secureApi": true }   treat the API's origin as secure, so
//              Secure cookies work over plain HTTP on a name other than
//              localhost (`--unsafely-treat-insecure-origin-as-secure`;
//              Chromium already treats http://localhost and http://127.0.0.1
//              as secure, and needs nothing for them);
//            { "thirdPartyCookies": true }   allow third-party cookies.
//              Chromium 156 (headless, fresh profile) blocks them by default:
//              the DevTools reason is `UserPreferences`. A profile
//              preference (`profile.cookie_controls_mode: 0`, "allow all") is
//              the switch that works; the CDP `Network.setCookieControls`
//              command did not change it here.
//            { "headers": true }   also check CORS request headers.
//
// Host names: `*.example.test` and `*.other.test` resolve to 127.0.0.1
// (`--host-resolver-rules`), so real sites can be told apart on loopback.
//
// Reports { login, refresh, headers?, blocked }: what each call answered,
// and every cookie the browser refused, with Chromium's reasons.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launch } from './lib/browser.mjs';
import { run } from './lib/report.mjs';

run(async ([appUrl, apiUrl, email, password, optionsJson]) => {
  const options = JSON.parse(optionsJson || '{}');
  const args = ['--host-resolver-rules=MAP *.example.test 127.0.0.1, MAP *.other.test 127.0.0.1'];
  if (options.secureApi) {
    args.push(`--unsafely-treat-insecure-origin-as-secure=${new URL(apiUrl).origin}`);
  }
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-cookies-'));
  if (options.thirdPartyCookies) {
    fs.mkdirSync(path.join(profile, 'Default'));
    fs.writeFileSync(
      path.join(profile, 'Default', 'Preferences'),
      JSON.stringify({ profile: { cookie_controls_mode: 0 } }),
    );
  }
  args.push(`--user-data-dir=${profile}`);
  const browser = await launch(args);
  try {
    const page = await browser.newPage();
    // DevTools says which cookies the browser refused, and why.
    const cdp = await page.createCDPSession();
    const blocked = [];
    cdp.on('Network.responseReceivedExtraInfo', (e) => {
      for (const c of e.blockedCookies || []) {
        blocked.push({ op: 'set', name: (c.cookie && c.cookie.name) || c.cookieLine.split('=')[0], reasons: c.blockedReasons });
      }
    });
    // A cookie of another host, or one whose only reason is another path,
    // was never meant for that request (Chromium sometimes lists the API's
    // cookies on a request to the app's own origin, such as its favicon,
    // and then adds `SecureOnly` too when that origin is plain HTTP): that
    // is not a refusal, and is left out.
    const elsewhere = (reasons) =>
      reasons.includes('DomainMismatch') || reasons.every((r) => r === 'NotOnPath');
    cdp.on('Network.requestWillBeSentExtraInfo', (e) => {
      for (const c of e.associatedCookies || []) {
        const reasons = c.blockedReasons || [];
        if (reasons.length && !elsewhere(reasons)) {
          blocked.push({ op: 'send', name: c.cookie.name, reasons });
        }
      }
    });
    await cdp.send('Network.enable');
    await page.goto(appUrl);
    const result = await page.evaluate(
      async ({ apiUrl, email, password, headers }) => {
        async function gql(query, variables, extra = {}) {
          try {
            const response = await fetch(`${apiUrl}/graphql`, {
              method: 'POST',
              credentials: 'include',
              headers: { 'content-type': 'application/json', ...extra },
              body: JSON.stringify({ query, variables }),
            });
            const body = await response.json();
            const error = body.errors && body.errors[0];
            return {
              status: response.status,
              ok: !error,
              code: error ? (error.extensions || {}).code || null : null,
              data: body.data || null,
            };
          } catch (err) {
            // A CORS refusal: the page learns nothing but a TypeError.
            return { ok: false, fetchError: String(err) };
          }
        }
        const login = await gql(
          'mutation($i: LoginInput!) { login(input: $i) { accessToken } }',
          { i: { email, password } },
        );
        const refresh = await gql('mutation { refresh { accessToken } }', {});
        const out = {
          login: { ok: login.ok, code: login.code, fetchError: login.fetchError },
          refresh: {
            ok: refresh.ok,
            code: refresh.code,
            fetchError: refresh.fetchError,
            accessToken: Boolean(refresh.data && refresh.data.refresh),
          },
        };
        if (headers) {
          // What Apollo Client (CSRF guard) and OpenTelemetry add.
          out.headers = {
            allowed: await gql('{ __typename }', {}, {
              'apollo-require-preflight': 'true',
              traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
            }),
            unlisted: await gql('{ __typename }', {}, { 'x-not-allowed': '1' }),
          };
        }
        return out;
      },
      { apiUrl, email, password, headers: Boolean(options.headers) },
    );
    // Let the last DevTools events arrive.
    await new Promise((resolve) => setTimeout(resolve, 200));
    return { ...result, blocked };
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
});
