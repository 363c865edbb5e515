// Where the Node tests find agentws-demo: $AGENTWS_PORT (a server pytest already runs),
// else a server started here from $AGENTWS_DEMO or <repo>/build/examples/agentws-demo.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, '..', '..', '..', '..');
export const scale = Math.max(1, Number(process.env.AGENTWS_TIMEOUT_SCALE || '1') || 1);
export const ms = (n) => Math.round(n * scale);

export async function startDemo(extraArgs = []) {
  if (process.env.AGENTWS_PORT) {
    return { port: Number(process.env.AGENTWS_PORT), stop: async () => 0 };
  }
  const binary = process.env.AGENTWS_DEMO
    ? resolve(process.env.AGENTWS_DEMO)
    : resolve(repoRoot, 'build', 'examples', 'agentws-demo');
  if (!existsSync(binary)) throw new Error(`agentws-demo not found at ${binary}`);
  const wrapper = (process.env.AGENTWS_DEMO_WRAPPER || '').split(/\s+/).filter(Boolean);
  const argv = [...wrapper, binary, '--mode', 'echo', '--host', '127.0.0.1', '--port', '0', ...extraArgs];
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((res) => child.on('exit', (code, sig) => res(sig ? `signal ${sig}` : code)));
  const port = await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error('agentws-demo did not print its listening line')), ms(10000));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const m = /^listening on (\S+):(\d+)$/.exec(line);
      if (m) { clearTimeout(timer); res(Number(m[2])); }
    });
    exited.then((code) => { clearTimeout(timer); rej(new Error(`agentws-demo exited early: ${code}`)); });
  });
  return {
    port,
    stop: async () => {
      child.kill('SIGTERM');
      let timer;
      const timeout = new Promise((r) => { timer = setTimeout(() => r('timeout'), ms(10000)); });
      const code = await Promise.race([exited, timeout]);
      clearTimeout(timer);
      if (code === 'timeout') child.kill('SIGKILL');
      if (code !== 0) throw new Error(`agentws-demo exit after SIGTERM: ${code}`);
      return code;
    },
  };
}
