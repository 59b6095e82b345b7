// Browser side of e2e/ring-pipeline.spec.ts: the CLI's mesh tab (src/headless/mesh-page.ts) with quick
// loss detection, plus a single-tab reference run and a bad-message sender.
import * as tab from '../../src/headless/mesh-page.ts';
import { runLocal, type LocalRunRequest } from '../../src/headless/local-run.ts';
import type { GenerationReport } from '../../src/app/engine.ts';
import { encodeMessage, PROTOCOL_VERSION } from '../../src/mesh/protocol.ts';

export type { Outcome } from '../../src/headless/mesh-page.ts';
export { leaderReady, leaderGenerate, leaderTokens, leaderStatusNow, stageStatusNow } from '../../src/headless/mesh-page.ts';

// Pings every 250 ms; a silent peer is lost after 4 s (a tab busy uploading weights on 2 shared
// cores can miss a 2 s deadline).
const tuning = { pingIntervalMs: 250, timeoutMs: 4000 };

/** `timeoutMs` overrides the 4 s (a ring of Node hosts, which answer no ping while Dawn compiles their pipelines). */
export function leaderStart(o: Omit<tab.LeaderArgs, 'tuning'> & { timeoutMs?: number }): void {
  const { timeoutMs, ...args } = o;
  tab.leaderStart({ ...args, tuning: { ...tuning, timeoutMs: timeoutMs ?? tuning.timeoutMs } });
}

export function stageStart(o: Omit<tab.StageArgs, 'tuning'>): ReturnType<typeof tab.stageStart> {
  return tab.stageStart({ ...o, tuning });
}

/** Reference: the same request in this tab, all layers local. */
export function single(req: LocalRunRequest): Promise<GenerationReport> {
  return runLocal(req);
}

/** Blocks this tab's main thread for `ms` (a hung tab: it stops answering pings). */
export function stageBlock(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

/** Stage: sends the leader a message with the wrong protocol version. */
export async function stageSendMalformed(): Promise<void> {
  const ring = tab.stageNode().ring;
  const bytes = encodeMessage({ type: 'credit', request: 1, processed: 1 });
  bytes[4] = PROTOCOL_VERSION + 1;
  await ring.link(ring.leader)!.sendUnchecked(bytes);
}

// Event-loop stalls of this tab over 500 ms (printed when a ring does not come up: a loaded machine).
const stalls: { at: number; ms: number }[] = [];
let lastTick = performance.now();
setInterval(() => {
  const now = performance.now();
  if (now - lastTick > 500) stalls.push({ at: Math.round(now), ms: Math.round(now - lastTick) });
  lastTick = now;
}, 100);
export function stallsNow(): { at: number; ms: number }[] {
  return stalls;
}
