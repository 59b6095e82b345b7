// `npm run leader -- --join URL`: a headless Chromium tab that loads the model and serves the room's
// OpenAI-compatible API (the page: src/headless/api-leader-page.ts, built into the server's dist/).
// `npm start -- --leader headless` runs it against itself (src/server/headless-leader.ts).
import { chromium, type Browser } from '@playwright/test';
import { resolve } from 'node:path';
import { parseArgs, str, num, flag, rejectUnknown } from '../common/args.ts';
import { errorMessage } from '../common/errors.ts';
import { findChromium, chromiumArgs } from './browser.ts';
import { parseJoinLink } from './stage-host-args.ts';
import type { ApiLeaderArgs, ApiLeaderOutcome } from '../headless/api-leader-page.ts';

/** `npm run leader -- --help`. */
export const API_LEADER_USAGE = `usage: npm run leader -- --join URL [--secret S] [--placement tab|mesh] [--stages N] [--model PATH] [--draft-model PATH|none] [--insecure]
  --join URL          the server's room link, e.g. https://HOST:8443/?room=R (a #secret=S fragment counts as --secret; env SPECPIPE_SECRET too)
                      (env SPECPIPE_API_TOKEN: the token a server started with --leader headless hands its own leader)
  --placement P       tab (default): the stages in the leader's tab; mesh: wait for --stages stage tabs/hosts to join the room
  --stages N          stages of the model (default 2)
  --model PATH        the target's folder on that server or a URL (default /models/demo-target/)
  --draft-model PATH  the draft model (default /models/demo-draft/; none: no speculation)
  --insecure          accept the server's self-signed HTTPS certificate (npm start makes one)`;

const KNOWN = ['join', 'secret', 'placement', 'stages', 'model', 'draft-model', 'insecure', 'help'];

/** The page's arguments and the server's origin, from `argv`; null for --help. Throws on a bad command line. */
export function parseApiLeaderArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): { origin: string; insecure: boolean; page: ApiLeaderArgs } | null {
  const args = parseArgs(argv);
  rejectUnknown(args, KNOWN);
  if (flag(args, 'help')) return null;
  const join = str(args, 'join');
  const link = parseJoinLink(join);
  const stages = num(args, 'stages', 2);
  if (!Number.isInteger(stages) || stages < 1 || stages > 16) throw new Error('--stages must be an integer in 1..16');
  const draft = str(args, 'draft-model', '/models/demo-draft/');
  const placement = str(args, 'placement', 'tab');
  if (placement !== 'tab' && placement !== 'mesh') throw new Error('--placement must be tab or mesh');
  const secret = args.has('secret') ? str(args, 'secret') : (env.SPECPIPE_SECRET ?? link.secret);
  return {
    origin: new URL(join).origin,
    insecure: flag(args, 'insecure'),
    page: { room: link.room, ...(secret ? { secret } : {}), ...(env.SPECPIPE_API_TOKEN ? { apiToken: env.SPECPIPE_API_TOKEN } : {}), modelUrl: str(args, 'model', '/models/demo-target/'), draftUrl: draft === 'none' ? null : draft, placement, stages },
  };
}

async function main(): Promise<void> {
  const o = parseApiLeaderArgs(process.argv.slice(2));
  if (!o) return void console.log(API_LEADER_USAGE);
  const browser: Browser = await chromium.launch({ executablePath: findChromium(), args: chromiumArgs });
  const stop = (code: number): void => {
    void browser.close().finally(() => process.exit(code));
  };
  process.on('SIGINT', () => stop(0));
  process.on('SIGTERM', () => stop(0));
  const page = await (await browser.newContext({ ignoreHTTPSErrors: o.insecure })).newPage();
  page.on('console', (m) => {
    // Optional model files (the draft's tokenizer_config.json, ...) are probed and may be absent.
    if (m.text().includes('404 (Not Found)')) return;
    if (m.type() === 'error' || m.text().startsWith('[api]')) console.log(`[leader] ${m.text()}`);
  });
  page.on('crash', () => {
    console.error('[leader] the page crashed');
    stop(1);
  });
  await page.goto(`${o.origin}/src/headless/api-leader.html`);
  if (o.page.placement === 'mesh') console.log(`[leader] waiting for ${o.page.stages} stage tab(s)/host(s) to join room ${o.page.room}`);
  await page.waitForFunction(() => window.specpipeApiLeader !== undefined);
  const out: ApiLeaderOutcome = await page.evaluate((a) => window.specpipeApiLeader!.start(a), o.page);
  if ('error' in out) throw new Error(`the headless leader could not start: ${out.error}`);
  const where = o.page.placement === 'mesh' ? 'stage tabs/hosts' : 'one tab';
  console.log(`[leader] serving the API of room ${o.page.room}: ${out.model}, ${out.mode}, ${out.stages.length} stage(s) in ${where} (${out.stages.join(' | ')}) on ${out.adapter}`);
  const why = await page.evaluate(() => window.specpipeApiLeader!.closed());
  console.error(`[leader] left the room: ${why}`);
  stop(1);
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  main().catch((e: unknown) => {
    console.error(`[leader] ${errorMessage(e)}`);
    process.exit(1);
  });
}
