// Drives the demo's chat page (examples/web/chat.html) in headless Chromium: a message typed by a person
// and the simulated run streaming in, then "/broken orphan-tool" (server under --validation repair) and what
// the validator did. Prints one JSON line for test_pages.py; screenshots go to $AGENTWS_ARTIFACTS_DIR.
import { drive, ms, newPage, shot } from './pages.mjs';

const user = process.env.CHAT_USER || 'alice';
const text = process.env.CHAT_TEXT || 'hello';

await drive(async (b) => {
  const page = await newPage(b, 'chat', `/chat?user=${encodeURIComponent(user)}`);
  await page.waitForFunction(() => window.agentwsChat && window.agentwsChat.ready, null, { timeout: ms(15000) });
  await page.fill('#message', text);
  await page.press('#message', 'Enter');
  await page.waitForSelector('section.run [data-type="agent_completed"]', { timeout: ms(15000) });

  const run = await page.evaluate(() => {
    const sec = document.querySelector('section.run');
    const runId = sec.dataset.runId;
    const evs = window.agentwsChat.events.filter((e) => e.run_id === runId && !e.type.includes('.'));
    const tool = sec.querySelector('[data-type="tool_executing"]');
    const res = tool && tool.querySelector('[data-type="tool_completed"]');
    const done = evs.find((e) => e.type === 'agent_completed');
    const um = document.querySelector('[data-type="user_message"]');
    return {
      runId,
      events: evs.map((e) => e.type),
      shown: [...sec.querySelectorAll('[data-type]')].map((e) => e.dataset.type),
      thinkingText: sec.querySelector('[data-role="thinking-text"]').textContent,
      thinkingDeltas: sec.querySelector('[data-type="agent_thinking"]').dataset.deltas,
      deltasJoined: evs.filter((e) => e.type === 'agent_thinking').map((e) => e.data.text).join(''),
      resultText: done && done.data.result ? done.data.result.text : null,
      tool: tool && {
        status: tool.dataset.status,
        ok: res ? res.dataset.ok : null,
        name: tool.querySelector('.tool-name').textContent,
        hasDuration: !!(res && res.querySelector('[data-role="duration"]')),
      },
      runStatus: sec.dataset.status,
      userMessage: um ? um.textContent : null,
      userMessageIsText: um ? um.children.length === 0 : false,
    };
  });
  const screenshots = [shot('chat-run.png')];
  await page.screenshot({ path: screenshots[0], fullPage: true });

  await page.click('button[data-scenario="orphan-tool"]');
  await page.waitForFunction(() => {
    const secs = document.querySelectorAll('section.run');
    const s = secs[secs.length - 1];
    return secs.length >= 2 && s.querySelector('[data-type="agent_completed"]') &&
      s.querySelectorAll('[data-type="validation.violation"]').length >= 2;
  }, null, { timeout: ms(15000) });
  const broken = await page.evaluate(() => {
    const secs = document.querySelectorAll('section.run');
    const s = secs[secs.length - 1];
    return {
      runId: s.dataset.runId,
      runStatus: s.dataset.status,
      shown: [...s.querySelectorAll('[data-type]')].map((e) => e.dataset.type),
      synthesized: [...s.querySelectorAll('[data-synthesized="true"]')].map((e) => [e.dataset.type, e.dataset.rule]),
      violations: [...s.querySelectorAll('[data-type="validation.violation"]')].map((e) => [e.dataset.rule, e.dataset.outcome]),
    };
  });
  screenshots.push(shot('chat-broken.png'));
  await page.screenshot({ path: screenshots[1], fullPage: true });
  // Errors the server sent (an ack it did not like, a refused message): none expected.
  const serverErrors = await page.evaluate(() => window.agentwsChat.controls.filter((c) => c.type === 'error'));
  return { text, status: await page.getAttribute('#status', 'data-state'), run, broken, serverErrors, screenshots };
});
