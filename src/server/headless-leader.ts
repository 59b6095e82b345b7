// `npm start -- --leader headless`: the server starts the headless API leader (src/cli/api-leader.ts,
// a headless Chromium tab) as a child process pointed at itself, so the API works on a machine where
// nobody opens a browser. A separate process, not an import: the server stays free of the browser
// side (tests/architecture.test.ts), and a crashed browser cannot take the server down.
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';

/** What the headless leader is told. */
export interface HeadlessLeaderOptions {
  /** The room link on this server, e.g. https://127.0.0.1:8443/?room=R. */
  link: string;
  /** The room's secret (passed in the environment, not on the command line that `ps` shows). */
  secret?: string;
  /** The token that lets it, and only it, serve the API (createSignallingServer's apiToken); environment too. */
  apiToken: string;
  /** Passed through: --placement, --stages, --model, --draft-model. */
  args: string[];
  /** Each line it prints. */
  log: (line: string) => void;
}

const SCRIPT = resolve(import.meta.dirname, '../cli/api-leader.ts');

/** Starts the headless leader; it is killed with this process (SIGINT/SIGTERM handlers call kill). */
export function spawnHeadlessLeader(o: HeadlessLeaderOptions): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, '--join', o.link, '--insecure', ...o.args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SPECPIPE_API_TOKEN: o.apiToken, ...(o.secret ? { SPECPIPE_SECRET: o.secret } : {}) },
  });
  const lines = (d: Buffer): void => {
    for (const l of String(d).split('\n')) if (l.trim()) o.log(l);
  };
  child.stdout?.on('data', lines);
  child.stderr?.on('data', lines);
  child.once('exit', (code, sig) => o.log(`[leader] the headless leader exited (${sig ?? `code ${code}`})`));
  return child;
}
