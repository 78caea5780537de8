// A mailed link opened in headless Chromium with the network off (only the
// server under test resolves). First a look with JavaScript on, to watch
// for CSP violations and console errors and to check the inline style
// applied; then the flow itself with JavaScript OFF: for a reset, a common
// password first (the page must re-render the form with the policy beside
// the field), then NEW_PASSWORD in both fields; otherwise the one button.
// Reports what it saw; the Rust test asserts on it.
// Usage: node landing.mjs LINK [NEW_PASSWORD]  (LANDING_SCREENSHOT=file.png saves the first look)
import { launch } from './lib/browser.mjs';
import { run } from './lib/report.mjs';

const WAIT = { timeout: 20000 };

run(async ([link, newPassword]) => {
  const origin = new URL(link).origin;
  const browser = await launch(['--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1']);
  try {
    const offsite = [];
    const consoleErrors = [];
    const watch = async (page) => {
      await page.setRequestInterception(true);
      page.on('request', (request) => {
        const url = request.url();
        if (!url.startsWith('data:') && new URL(url).origin !== origin) {
          offsite.push(url);
          return request.abort('internetdisconnected');
        }
        return request.continue();
      });
      page.on('console', (msg) => {
        if (msg.type() === 'error') consoleErrors.push(msg.text());
      });
      page.on('pageerror', (err) => consoleErrors.push(String(err)));
    };

    // 1. JavaScript on: the page as most people see it. A GET consumes nothing.
    const look = await browser.newPage();
    await watch(look);
    await look.evaluateOnNewDocument(() => {
      window.__csp = [];
      document.addEventListener('securitypolicyviolation', (e) => {
        window.__csp.push({ directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample });
      });
    });
    const first = await look.goto(link, { waitUntil: 'load' });
    const seen = await look.evaluate(() => ({
      title: document.title,
      lang: document.documentElement.lang,
      heading: document.querySelector('h1')?.textContent ?? null,
      buttons: [...document.querySelectorAll('button')].map((b) => b.textContent),
      // Every visible input has a label that names it.
      unlabelled: [...document.querySelectorAll('input:not([type=hidden])')]
        .filter((i) => !i.labels || i.labels.length === 0)
        .map((i) => i.name),
      labels: [...document.querySelectorAll('label')].map((l) => l.textContent),
      // The inline style applied (allowed by its hash): main is 26rem wide at most.
      styled: getComputedStyle(document.querySelector('main')).maxWidth,
      scripts: document.scripts.length,
    }));
    // Give late violations (a blocked style, a favicon) a moment to report.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const csp = await look.evaluate(() => window.__csp);
    // For a person to look at: LANDING_SCREENSHOT=/tmp/page.png.
    if (process.env.LANDING_SCREENSHOT) await look.screenshot({ path: process.env.LANDING_SCREENSHOT });
    await look.close();

    // 2. JavaScript off: the form works without it.
    const page = await browser.newPage();
    await watch(page);
    await page.setJavaScriptEnabled(false);
    await page.goto(link, { waitUntil: 'load' });
    const text = () => page.$eval('main', (m) => m.innerText);
    let policyError = null;
    let rerenderedToken = null;
    if (newPassword) {
      // A common password: refused beside the field, the token kept.
      await page.type('#password', 'password123');
      await page.type('#confirm', 'password123');
      await Promise.all([page.waitForNavigation(WAIT), page.click('button[type=submit]')]);
      policyError = await page.$eval('#password-error', (e) => e.textContent).catch(() => null);
      rerenderedToken = await page.$eval('input[name=token]', (e) => e.value).catch(() => null);
      await page.type('#password', newPassword);
      await page.type('#confirm', newPassword);
    }
    const [done] = await Promise.all([page.waitForNavigation(WAIT), page.click('button[type=submit]')]);
    const result = {
      status: done ? done.status() : null,
      heading: await page.$eval('h1', (h) => h.textContent),
      text: await text(),
    };
    await page.close();

    return {
      firstStatus: first.status(),
      headers: first.headers(),
      seen,
      csp,
      consoleErrors,
      offsite,
      policyError,
      rerenderedToken,
      result,
    };
  } finally {
    await browser.close();
  }
});
