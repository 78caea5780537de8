// GraphiQL in headless Chromium with the network off: every request to an
// origin other than the server under test is aborted and recorded, and no
// host name resolves. Opens the page, reads the docs explorer's Mutation
// type, runs a query with an access token in the headers editor, and
// reports what it saw: CSP violations, console errors, the texts, and
// whether the token reached localStorage.
// Usage: node graphiql.mjs http://127.0.0.1:PORT ACCESS_TOKEN SCREENSHOT.png
import { launch } from './lib/browser.mjs';
import { run } from './lib/report.mjs';

const WAIT = { timeout: 20000 };

run(async ([base, token, screenshot]) => {
  const origin = new URL(base).origin;
  // Nothing but loopback resolves: a CDN URL would fail even unintercepted.
  const browser = await launch(['--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1']);
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 800 });
    const offsite = [];
    const local = [];
    await page.setRequestInterception(true);
    page.on('request', (request) => {
      const url = request.url();
      if (url.startsWith('data:')) return request.continue();
      if (new URL(url).origin !== origin) {
        offsite.push(url);
        return request.abort('internetdisconnected');
      }
      local.push(new URL(url).pathname);
      return request.continue();
    });
    const consoleErrors = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error') consoleErrors.push(msg.text());
    });
    page.on('pageerror', (err) => consoleErrors.push(String(err)));
    await page.evaluateOnNewDocument(() => {
      window.__csp = [];
      document.addEventListener('securitypolicyviolation', (e) => {
        window.__csp.push({ directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample });
      });
    });

    const response = await page.goto(`${base}/graphql`, { waitUntil: 'load' });
    const headers = response.headers();
    await page.waitForSelector('.graphiql-container .graphiql-query-editor .CodeMirror', WAIT);

    // What the editors open with.
    const editors = () =>
      page.evaluate(() =>
        [...document.querySelectorAll('.CodeMirror')].map((el) => el.CodeMirror.getValue()),
      );
    const initial = await editors();
    const isHeaders = (v) => v.trim().startsWith('{') && v.includes('"Authorization"');
    const initialHeaders = initial.find(isHeaders) ?? null;
    const initialVariables = initial.find((v) => v.trim().startsWith('{') && v.includes('"input"')) ?? null;
    const headersVisible = await page.evaluate(() => {
      const section = document.querySelector('.graphiql-editor-tool');
      return section ? section.getAttribute('aria-label') : null;
    });

    // The docs explorer: Query and Mutation at the root, `login` in Mutation.
    await page.click('button[aria-label="Show Documentation Explorer"]');
    await page.waitForFunction(
      () => [...document.querySelectorAll('.graphiql-doc-explorer a')].some((a) => a.textContent === 'Mutation'),
      WAIT,
    );
    await page.evaluate(() => {
      [...document.querySelectorAll('.graphiql-doc-explorer a')].find((a) => a.textContent === 'Mutation').click();
    });
    await page.waitForFunction(
      () => document.querySelector('.graphiql-doc-explorer-title')?.textContent === 'Mutation',
      WAIT,
    );
    const docs = await page.evaluate(() => ({
      title: document.querySelector('.graphiql-doc-explorer-title')?.textContent ?? null,
      fields: [...document.querySelectorAll('.graphiql-doc-explorer-field-name')].map((a) => a.textContent),
    }));

    // A query with the token pasted into the headers editor, and a secret in
    // the variables (as a password would be), which must not be kept either.
    const secret = `not-kept-${Date.now()}`;
    await page.evaluate((bearer, secretValue) => {
      const cms = [...document.querySelectorAll('.CodeMirror')].map((el) => el.CodeMirror);
      document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue('query Me { me { email role } }');
      const json = (cm) => cm.getValue().trim().startsWith('{');
      const headersEditor = cms.find((cm) => json(cm) && cm.getValue().includes('"Authorization"'));
      headersEditor.setValue(JSON.stringify({ Authorization: `Bearer ${bearer}` }, null, 2));
      const variablesEditor = cms.find((cm) => json(cm) && cm.getValue().includes('"input"'));
      variablesEditor.setValue(JSON.stringify({ password: secretValue }, null, 2));
    }, token, secret);
    // The toolbar re-renders as the editors change: let it settle, then click.
    await new Promise((resolve) => setTimeout(resolve, 500));
    await page.click('.graphiql-execute-button');
    await page.waitForFunction(
      () => document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue().includes('"me"'),
      WAIT,
    );
    const result = await page.evaluate(() =>
      document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue(),
    );
    // GraphiQL saves its tabs half a second after a change; wait past that.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const stored = await page.evaluate(() => JSON.stringify({ ...window.localStorage }));
    if (screenshot) await page.screenshot({ path: screenshot });
    const title = await page.title();

    // GraphiQL's dialogs insert a scroll-lock <style>: the page's CSP
    // allows exactly that one by its hash.
    const dialogs = [];
    for (const label of ['Open settings dialog', 'Open short keys dialog']) {
      await page.click(`button[aria-label="${label}"]`);
      await page.waitForSelector('[role=dialog]', WAIT);
      dialogs.push(await page.evaluate(() => document.querySelector('[role=dialog] h2')?.textContent ?? null));
      await page.keyboard.press('Escape');
      await page.waitForFunction(() => !document.querySelector('[role=dialog]'), WAIT);
    }
    const csp = await page.evaluate(() => window.__csp);

    // Reloaded, the page restores what was kept (the query), and the
    // headers editor is back to its placeholder.
    await page.reload({ waitUntil: 'load' });
    await page.waitForSelector('.graphiql-container .graphiql-query-editor .CodeMirror', WAIT);
    const reloaded = await editors();
    const afterReload = {
      query: reloaded[0] ?? null,
      headers: reloaded.find(isHeaders) ?? null,
      csp: await page.evaluate(() => window.__csp),
    };

    return {
      status: response.status(),
      headers: {
        csp: headers['content-security-policy'] ?? null,
        cacheControl: headers['cache-control'] ?? null,
      },
      title,
      editorInDom: true,
      initialHeaders,
      initialVariables,
      headersVisible,
      initialQuery: initial[0] ?? null,
      docs,
      result: JSON.parse(result),
      tokenInLocalStorage: stored.includes(token),
      secretInLocalStorage: stored.includes(secret),
      localStorageKeys: Object.keys(JSON.parse(stored)),
      dialogs,
      afterReload,
      offsite,
      local,
      csp,
      consoleErrors,
    };
  } finally {
    await browser.close();
  }
});
