// Passkeys in headless Chromium with the DevTools virtual authenticator
// (a platform authenticator with resident keys and user verification):
// a small page on http://localhost:PORT, served here with /graphql passed
// through to Warden, registers an account, adds a passkey through
// navigator.credentials.create, logs out, and signs in again with
// navigator.credentials.get and no password. Options go through the
// browser's own JSON parsers and answers through toJSON(), as an app's
// would. Reports what it saw; the Rust test asserts on it.
// Usage: node passkey.mjs WARDEN_URL EMAIL PASSWORD
import http from 'node:http';
import { launch } from './lib/browser.mjs';
import { run } from './lib/report.mjs';

const PAGE = '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Passkeys</title></head><body><h1>Passkeys</h1></body></html>';

/** Serves PAGE at / and passes POST /graphql through to `warden`. */
function serve(warden) {
  const server = http.createServer(async (req, res) => {
    if (req.method === 'POST' && req.url === '/graphql') {
      const chunks = [];
      for await (const chunk of req) chunks.push(chunk);
      const headers = { 'content-type': 'application/json' };
      if (req.headers.authorization) headers.authorization = req.headers.authorization;
      const upstream = await fetch(`${warden}/graphql`, { method: 'POST', headers, body: Buffer.concat(chunks) });
      res.writeHead(upstream.status, { 'content-type': 'application/json' });
      res.end(Buffer.from(await upstream.arrayBuffer()));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(PAGE);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

run(async ([warden, email, password]) => {
  const server = await serve(warden);
  const origin = `http://localhost:${server.address().port}`;
  const browser = await launch();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (err) => errors.push(String(err)));
    const cdp = await page.createCDPSession();
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });
    await page.goto(`${origin}/`, { waitUntil: 'load' });

    const steps = await page.evaluate(async ({ email, password }) => {
      const gql = async (query, variables = {}, token) => {
        const headers = { 'content-type': 'application/json' };
        if (token) headers.authorization = `Bearer ${token}`;
        const res = await fetch('/graphql', { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
        const body = await res.json();
        if (body.errors) throw new Error(`${query.slice(0, 40)}: ${JSON.stringify(body.errors)}`);
        return body.data;
      };
      const out = {};
      const { register } = await gql(
        'mutation($i: RegisterInput!) { register(input: $i) { accessToken } }',
        { i: { email, password } },
      );
      const token = register.accessToken;

      // Add a passkey.
      const { startPasskeyRegistration: creation } = await gql('mutation { startPasskeyRegistration }', {}, token);
      const created = await navigator.credentials.create({
        publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(creation.publicKey),
      });
      out.createdType = created.type;
      const { finishPasskeyRegistration: added } = await gql(
        'mutation($r: JSON!) { finishPasskeyRegistration(response: $r, name: "Chromium") { id name } }',
        { r: created.toJSON() },
        token,
      );
      out.added = added;

      // Log out: this session ends.
      await gql('mutation { logout }', {}, token);
      try {
        await gql('{ me { email } }', {}, token);
        out.afterLogout = 'still signed in';
      } catch (e) {
        out.afterLogout = /REVOKED|UNAUTHENTICATED/.test(String(e)) ? 'signed out' : String(e);
      }

      // Sign in with the passkey alone: no email, no password.
      const { startPasskeyLogin: started } = await gql('mutation { startPasskeyLogin { challengeId options } }');
      out.allowCredentials = started.options.publicKey.allowCredentials ?? [];
      const assertion = await navigator.credentials.get({
        publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(started.options.publicKey),
      });
      const { finishPasskeyLogin: signedIn } = await gql(
        'mutation($c: ID!, $r: JSON!) { finishPasskeyLogin(challengeId: $c, response: $r) { accessToken user { email } } }',
        { c: started.challengeId, r: assertion.toJSON() },
      );
      out.signedInAs = signedIn.user.email;
      const { me } = await gql('{ me { email } }', {}, signedIn.accessToken);
      out.me = me.email;
      out.amr = JSON.parse(atob(signedIn.accessToken.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).amr;
      return out;
    }, { email, password });

    // What the authenticator holds: one discoverable credential for
    // localhost, under a user handle that is not the email.
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    const handle = credentials[0] ? Buffer.from(credentials[0].userHandle, 'base64') : Buffer.alloc(0);
    return {
      ...steps,
      origin,
      errors,
      credentials: credentials.map((c) => ({
        rpId: c.rpId,
        resident: c.isResidentCredential,
        signCount: c.signCount,
      })),
      handleLength: handle.length,
      handleHasEmail: handle.toString('latin1').includes(email),
    };
  } finally {
    await browser.close();
    server.close();
  }
});
