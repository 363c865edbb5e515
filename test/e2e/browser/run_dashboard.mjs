// Drives the demo's dashboard (examples/web/dashboard.html) in headless Chromium while a chat page makes
// traffic (a /burst of custom events, a run, a /broken stall that fires a run_stalled alert). Records the
// highest rates the dashboard showed and prints one JSON line for test_pages.py; screenshot in
// $AGENTWS_ARTIFACTS_DIR. $DASH_TOKEN: the server's --http-token (a page without it must show 401).
import { drive, ms, newPage, shot } from './pages.mjs';

const token = process.env.DASH_TOKEN || '';
const sleep = (n) => new Promise((r) => setTimeout(r, n));

await drive(async (b) => {
  let noTokenStatus = '';
  if (token) {
    const p = await newPage(b, 'dashboard-no-token', '/dashboard');
    await p.waitForFunction(() => window.agentwsDashboard && window.agentwsDashboard.metricsError !== null,
      null, { timeout: ms(15000) });
    noTokenStatus = await p.textContent('#metrics-status');
    await p.close();
  }
  const dash = await newPage(b, 'dashboard', token ? `/dashboard?token=${encodeURIComponent(token)}` : '/dashboard');
  await dash.waitForFunction(() => window.agentwsDashboard.samples >= 2, null, { timeout: ms(15000) });

  const chat = await newPage(b, 'chat', '/chat?user=dashcarol');
  await chat.waitForFunction(() => window.agentwsChat && window.agentwsChat.ready, null, { timeout: ms(15000) });
  for (const text of ['/burst 600 0 100', 'hello dashboard', '/broken stall']) {
    await chat.fill('#message', text);
    await chat.press('#message', 'Enter');
  }

  const maxRate = {};
  let maxDelivered = 0;
  let seen = null;
  const deadline = Date.now() + ms(30000);
  for (;;) {
    seen = await dash.evaluate(() => {
      const d = window.agentwsDashboard;
      const paths = [...document.querySelectorAll('#latency-chart path')];
      return {
        last: d.last,
        typeRows: [...document.querySelectorAll('#events-by-type tbody tr')].map((r) => r.dataset.type),
        latencyPoints: Math.max(0, ...paths.map((p) => Number(p.dataset.points))),
        alerts: [...document.querySelectorAll('#alerts li.alert')].map((li) => ({
          rule: li.dataset.rule, firing: li.dataset.firing, severity: li.dataset.severity, text: li.textContent,
        })),
      };
    });
    for (const [type, v] of Object.entries((seen.last && seen.last.byType) || {})) {
      if (v.rate > (maxRate[type] || 0)) maxRate[type] = v.rate;
    }
    if (seen.last && seen.last.deliveredRate > maxDelivered) maxDelivered = seen.last.deliveredRate;
    const done = seen.alerts.some((a) => a.rule === 'run_stalled' && a.firing === 'true') &&
      maxRate.custom > 0 && maxRate.agent_thinking > 0 && seen.latencyPoints >= 5 &&
      seen.last.runsStalled >= 1;
    if (done) break;
    if (Date.now() > deadline) throw new Error(`dashboard never showed everything: ${JSON.stringify({ maxRate, maxDelivered, seen })}`);
    await sleep(100);
  }
  const screenshots = [shot('dashboard.png')];
  await dash.screenshot({ path: screenshots[0], fullPage: true });
  const wsState = await dash.getAttribute('#ws-status', 'data-state');
  const chatErrors = await chat.evaluate(() => window.agentwsChat.controls.filter((c) => c.type === 'error'));
  return { noTokenStatus, wsState, chatErrors, maxRate, maxDelivered, screenshots, ...seen };
});
