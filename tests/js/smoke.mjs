// Smoke check of the harness itself: Chromium starts and loads a page from
// the server under test. Usage: node smoke.mjs http://127.0.0.1:PORT
import { launch } from './lib/browser.mjs';
import { run } from './lib/report.mjs';

run(async ([base]) => {
  const browser = await launch();
  try {
    const page = await browser.newPage();
    const response = await page.goto(`${base}/healthz`);
    return { status: response.status(), userAgent: await browser.userAgent() };
  } finally {
    await browser.close();
  }
});
