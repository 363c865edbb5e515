// Drives browser/echo.html in headless Debian Chromium through playwright-core and prints the
// page's result as one JSON line. Port: $AGENTWS_PORT, else a demo server started here.
// Chromium: $CHROMIUM_PATH or /usr/bin/chromium. playwright-core comes from ../node/node_modules.
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ms, startDemo } from '../node/lib/demo.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(resolve(here, '..', 'node', 'package.json'));
const { chromium } = require('playwright-core');

const demo = await startDemo();
let browser;
let exitCode = 0;
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    timeout: ms(30000),
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  const page = await browser.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e}`));
  const url = pathToFileURL(resolve(here, 'echo.html')).href + `?port=${demo.port}`;
  await page.goto(url, { timeout: ms(15000) });
  await page.waitForFunction(() => window.__agentwsResult !== undefined, null, { timeout: ms(15000) });
  const result = await page.evaluate(() => window.__agentwsResult);
  result.browserVersion = browser.version();
  result.console = consoleLines;
  console.log(JSON.stringify(result));
} catch (e) {
  console.error(`browser run failed: ${e.stack || e}`);
  exitCode = 2;
} finally {
  if (browser) await browser.close();
  await demo.stop().catch((e) => { console.error(String(e)); exitCode = 3; });
}
process.exit(exitCode);
