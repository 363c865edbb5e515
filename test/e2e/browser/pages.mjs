// Shared by run_chat.mjs and run_dashboard.mjs: headless Debian Chromium through playwright-core with a
// fresh profile, the page errors it reports, and where screenshots go.
import { createRequire } from 'node:module';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ms } from '../node/lib/demo.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(resolve(here, '..', 'node', 'package.json'));
const { chromium } = require('playwright-core');

export { ms };

export const port = Number(process.env.AGENTWS_PORT);
export const base = `http://127.0.0.1:${port}`;
export const artifacts = process.env.AGENTWS_ARTIFACTS_DIR || resolve(here, '..', '..', '..', 'build-artifacts', 'e2e-pages');

// A persistent context is how playwright takes a --user-data-dir: a fresh one per run, removed after.
export async function launch() {
  if (!port) throw new Error('AGENTWS_PORT is not set (run through test_pages.py)');
  mkdirSync(artifacts, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), 'agentws-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    timeout: ms(30000),
    viewport: { width: 1280, height: 900 },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  const pageErrors = [];
  const consoleLines = [];
  const watch = (page, name) => {
    page.on('pageerror', (e) => pageErrors.push(`${name}: ${e}`));
    page.on('console', (m) => {
      consoleLines.push(`${name} ${m.type()}: ${m.text()}`);
      // Chromium logs failed fetches (the 401 the dashboard test asks for) as console errors too.
      if (m.type() === 'error' && !/status of 401/.test(m.text())) pageErrors.push(`${name} console: ${m.text()}`);
    });
  };
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, pageErrors, consoleLines, watch, close };
}

export async function newPage(b, name, path) {
  const page = await b.context.newPage();
  b.watch(page, name);
  await page.goto(base + path, { timeout: ms(15000) });
  return page;
}

// Runs |body| and prints its result as one JSON line; exit 2 on failure (with a screenshot of each page).
export async function drive(body) {
  let b;
  let exitCode = 0;
  try {
    b = await launch();
    const result = await body(b);
    result.pageErrors = b.pageErrors;
    result.console = b.consoleLines;
    console.log(JSON.stringify(result));
  } catch (e) {
    console.error(`browser run failed: ${e.stack || e}`);
    if (b) {
      console.error(b.consoleLines.join('\n'));
      let i = 0;
      for (const p of b.context.pages()) {
        await p.screenshot({ path: join(artifacts, `failure-${i++}.png`), fullPage: true }).catch(() => {});
      }
    }
    exitCode = 2;
  } finally {
    if (b) await b.close().catch((e) => { console.error(String(e)); });
  }
  process.exit(exitCode);
}

export const shot = (name) => join(artifacts, name);
