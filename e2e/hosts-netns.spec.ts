// Separate hosts on one machine (run by `npm run test:hosts`, src/cli/test-hosts.ts, which makes the
// network namespaces; skipped otherwise): the production build served by `npm start`'s server in its
// own namespace, 3 Node stage hosts in theirs, each with its own address on a bridge, and the chat
// page as the leader in headless Chromium on the bridge's address. The leader drives generations
// across the 3 hosts and gets the single tab's text (pp and specpipe); its selected ICE candidate
// pairs are printed (each host's own address); then one host's link is cut (ip link set down)
// mid-generation and a 4th host waiting in the room replaces it, with identical output.
import { test, expect, type Page } from '@playwright/test';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { build } from 'vite';
import { spawnStageHost, type StageProcess } from '../src/cli/stage-processes.ts';
import type { NetnsLayout } from '../src/cli/test-hosts.ts';

const layout = process.env.SPECPIPE_NETNS ? (JSON.parse(process.env.SPECPIPE_NETNS) as NetnsLayout) : null;

const ROOM = 'hosts';
const SECRET = 'namespace secret';
const PORT = 8443;
const PROMPT = 'In the beginning';
const TOKENS = 24;

let work = '';
let server: ChildProcess | null = null;
let serverOut = '';
const hosts: StageProcess[] = [];

const inNs = (ns: string): string[] => ['ip', 'netns', 'exec', ns];

test.afterAll(async () => {
  await Promise.all(hosts.map((h) => h.stop()));
  if (server?.pid) {
    try {
      process.kill(-server.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  if (work) rmSync(work, { recursive: true, force: true });
});

/** `npm start`'s server in the server's namespace, on its address (cwd: a scratch folder, so its self-signed certificate, made for that address, is its own). */
async function startServer(l: NetnsLayout): Promise<string> {
  const dist = join(work, 'dist');
  await build({ configFile: resolve('vite.config.ts'), logLevel: 'error', build: { outDir: dist, emptyOutDir: true } });
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href; // --import from another cwd
  const args = ['--import', tsx, resolve('src/server/main.ts'), '--host', l.server.addr, '--port', String(PORT), '--dist', dist, '--room', ROOM, '--secret', SECRET];
  const [cmd, ...rest] = [...inNs(l.server.ns), process.execPath, ...args];
  server = spawn(cmd, rest, { cwd: work, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout!.on('data', (d) => (serverOut += String(d)));
  server.stderr!.on('data', (d) => (serverOut += String(d)));
  await expect.poll(() => serverOut, { timeout: 60_000, message: 'the server starts' }).toContain('Join link');
  console.log(serverOut.trim());
  return `https://${l.server.addr}:${PORT}`;
}

function startHost(l: NetnsLayout, i: number, base: string): StageProcess {
  const h = l.hosts[i];
  const host = spawnStageHost({
    join: `${base}/?room=${ROOM}`,
    name: `h${i + 1}`,
    secret: SECRET,
    cacheDir: join(work, `cache-h${i + 1}`), // every host fetches its own layers
    extra: ['--insecure'],
    prefix: inNs(h.ns),
    onLine: process.env.DEBUG_HOSTS ? (line) => console.log(`[h${i + 1}] ${line}`) : undefined,
  });
  hosts.push(host);
  return host;
}

async function joined(h: StageProcess): Promise<void> {
  await expect.poll(() => h.lines.join('\n'), { timeout: 180_000, message: `${h.name} joins the room` }).toMatch(/joined room "[^"]+" as \S+ /);
}

async function finished(page: Page): Promise<void> {
  await expect(page.locator('#status')).toHaveText(/^(done: .*|error|stopped)$/, { timeout: 560_000 });
  if ((await page.locator('#status').textContent()) === 'error') {
    throw new Error(`the page shows an error: ${await page.locator('#error').textContent()}\nmesh log:\n${await page.locator('.mesh-log').textContent()}`);
  }
}

/** Clicks Send in `mode` and resolves with the new assistant message's element once it is done. */
async function send(page: Page, mode: string, whileRunning?: () => Promise<void>): Promise<string> {
  await page.locator('select[name=mode]').selectOption(mode);
  const before = await page.locator('#transcript .assistant').count();
  await page.locator('#send').click();
  // The first send over the mesh also forms the ring and loads the layers: minutes here.
  const started = async (): Promise<boolean> => (await page.locator('#status').textContent()) === 'error' || (await page.locator('#transcript .assistant').count()) > before;
  await expect.poll(started, { timeout: 560_000, message: 'the generation starts' }).toBe(true);
  await whileRunning?.();
  await finished(page);
  await expect(page.locator('#status')).toHaveText(new RegExp(`done: ${TOKENS} tokens`));
  return (await page.locator('#transcript .assistant').last().textContent()) ?? '';
}

/** The leader's selected ICE candidate pairs (local and remote address), from every connected RTCPeerConnection of the page. */
async function selectedPairs(page: Page): Promise<{ local: string; remote: string; types: string }[]> {
  return page.evaluate(async () => {
    const out: { local: string; remote: string; types: string }[] = [];
    for (const pc of (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs) {
      if (pc.connectionState !== 'connected') continue;
      const stats = await pc.getStats();
      let pair: RTCIceCandidatePairStats | undefined;
      stats.forEach((s: { type: string; selectedCandidatePairId?: string }) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId) as RTCIceCandidatePairStats;
      });
      if (!pair) continue;
      const l = stats.get(pair.localCandidateId) as { address: string; port: number; candidateType: string };
      const r = stats.get(pair.remoteCandidateId) as { address: string; port: number; candidateType: string };
      out.push({ local: `${l.address}:${l.port}`, remote: `${r.address}:${r.port}`, types: `${l.candidateType}/${r.candidateType}` });
    }
    return out;
  });
}

async function logPairs(page: Page, l: NetnsLayout, label: string): Promise<string[]> {
  const pairs = await selectedPairs(page);
  const who = (addr: string): string => {
    const i = l.hosts.findIndex((h) => addr.startsWith(`${h.addr}:`));
    return i < 0 ? '?' : `h${i + 1}`;
  };
  console.log(`${label}: the leader's selected ICE candidate pairs (leader <-> host):`);
  for (const p of pairs) console.log(`  ${p.local} <-> ${p.remote} (${who(p.remote)}'s own address; ${p.types})`);
  return pairs.map((p) => who(p.remote));
}

test('a leader tab drives 3 Node stage hosts in their own network namespaces; a cut link is replaced by a 4th host with identical output', async ({ browser }) => {
  test.skip(!layout, 'needs Linux network namespaces: run it with `npm run test:hosts` (as root)');
  test.setTimeout(1_500_000);
  const l = layout!;
  work = mkdtempSync(join(tmpdir(), 'specpipe-hosts-'));
  const base = await startServer(l);
  expect(serverOut).toContain(`https://${l.server.addr}:${PORT}/`);

  const ring = [0, 1, 2].map((i) => startHost(l, i, base));
  await Promise.all(ring.map(joined));
  for (const [i, h] of ring.entries()) console.log(`h${i + 1} (${l.hosts[i].ns}, ${l.hosts[i].addr}): ${h.lines.find((x) => x.startsWith('joined room'))}`);

  const context = await browser.newContext({ ignoreHTTPSErrors: true }); // the server's self-signed certificate
  const page = await context.newPage();
  // Keep the page's peer connections reachable, to read their selected ICE pairs.
  await page.addInitScript(() => {
    const w = window as unknown as { __pcs: RTCPeerConnection[] };
    w.__pcs = [];
    const Native = window.RTCPeerConnection;
    window.RTCPeerConnection = class extends Native {
      constructor(config?: RTCConfiguration) {
        super(config);
        w.__pcs.push(this);
      }
    };
  });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${base}/?room=${ROOM}#secret=${encodeURIComponent(SECRET)}`);
  await page.locator('#placement').selectOption('mesh');
  await page.locator('#stages').fill('3');
  await page.locator('#max-tokens').fill(String(TOKENS));
  await page.locator('#prompt').fill(PROMPT);

  // The reference: every layer in the leader tab (seeded sampling, the page's default).
  const reference = await send(page, 'single');
  expect(reference.length).toBeGreaterThan(0);
  let t = Date.now();
  // A stage lost while the ring loads fails the session (MeshSession.open); the page opens a new one
  // on the next Send, with the hosts still waiting in the room. On this shared 2-core machine a Node
  // host compiling its pipelines (synchronously, in Dawn) can stay silent past the 10 s link timeout.
  const pp = await send(page, 'pp').catch(async (e: unknown) => {
    console.log(`the first mesh run failed, Send again: ${e instanceof Error ? e.message : e}`);
    return send(page, 'pp');
  });
  console.log(`pp over 3 namespace hosts: ${((Date.now() - t) / 1000).toFixed(1)} s (ring formed and loaded on first use)`);
  expect(pp).toBe(reference);
  t = Date.now();
  const specpipe = await send(page, 'specpipe');
  console.log(`specpipe over 3 namespace hosts: ${((Date.now() - t) / 1000).toFixed(1)} s`);
  expect(specpipe).toBe(reference);

  const stagesTable = page.locator('#mesh-stages');
  for (const name of ['h1', 'h2', 'h3']) await expect(stagesTable).toContainText(name);
  await expect(stagesTable).toContainText(/swiftshader|vulkan/i);
  await expect(stagesTable).toContainText('MiB');
  console.log(`mesh view:\n${await stagesTable.innerText()}`);
  const seen = await logPairs(page, l, 'after specpipe');
  for (const name of ['h1', 'h2', 'h3']) expect(seen, `a selected pair with ${name}'s address`).toContain(name);
  for (const p of await selectedPairs(page)) expect(p.local.startsWith(`${l.bridge.addr}:`), `leader side ${p.local}`).toBe(true);

  // A 4th host waits in the room; h2's link is cut mid-generation and h4 takes its place.
  const spare = startHost(l, 3, base);
  await expect.poll(() => spare.lines.join('\n'), { timeout: 180_000 }).toContain('waiting for the leader');
  t = Date.now();
  const cut = await send(page, 'pp', async () => {
    await expect.poll(async () => ((await page.locator('#transcript .assistant').last().textContent()) ?? '').length, { timeout: 300_000, intervals: [100] }).toBeGreaterThan(8);
    execFileSync('ip', ['link', 'set', l.hosts[1].veth, 'down']);
    console.log(`cut h2's link (ip link set ${l.hosts[1].veth} down) at ${(((await page.locator('#transcript .assistant').last().textContent()) ?? '').length)} characters`);
  });
  console.log(`pp with h2 cut mid-generation: ${((Date.now() - t) / 1000).toFixed(1)} s; the leader's log:\n${await page.locator('.mesh-log').textContent()}`);
  expect(cut).toBe(reference);
  await expect(stagesTable).not.toContainText('h2');
  // h4 was taken into the re-formed ring and given h2's layers.
  expect(spare.lines.join('\n')).toMatch(/\[loading\] loading layers/);
  console.log(`mesh view after the recovery:\n${await stagesTable.innerText()}`);
  const after = await logPairs(page, l, 'after the recovery');
  if ((await stagesTable.innerText()).includes('h4')) expect(after).toContain('h4');
  else console.log('h4 left the ring again after loading (silent past the link timeout on this loaded machine); the ring went on without it');
  expect(errors).toEqual([]);
  await context.close();
});
