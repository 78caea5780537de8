// Headless Chromium for the browser checks: the system's `chromium`
// (Debian package) driven by puppeteer-core, which downloads no browser.
import puppeteer from 'puppeteer-core';

/** Starts headless Chromium; `WARDEN_TEST_CHROMIUM` overrides the binary. */
export async function launch(extraArgs = []) {
  const executablePath = process.env.WARDEN_TEST_CHROMIUM || '/usr/bin/chromium';
  return puppeteer.launch({
    executablePath,
    headless: true,
    // CI runs as root, where Chromium's sandbox cannot start.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', ...extraArgs],
  });
}
