// A mesh in headless Chromium for the command-line tools: a leader tab (MeshSession) plus N stage
// tabs spread over the host's browser processes, formed over WebRTC through the host's /signal.
import type { Page } from '@playwright/test';
import type { PageHost } from './page-host.ts';
import type { LeaderArgs, Outcome, StageArgs } from '../headless/mesh-page.ts';
import type { MeshRunReport } from '../app/mesh-types.ts';
import type { GenerationRequest } from '../app/engine.ts';
import { TAB_LINK_TUNING } from '../app/link-tuning.ts';

const MODULE = '/src/headless/mesh-page.ts';
type Tab = typeof import('../headless/mesh-page.ts');

export interface Mesh {
  leader: Page;
  stages: Page[];
  /** One generation on the leader (text streams through window.__specpipeStream if exposed). */
  generate(req: GenerationRequest): Promise<MeshRunReport>;
  /** Closes the stage tabs and the leader tab. */
  close(): Promise<void>;
}

/**
 * Opens the leader in `leader` (already at the host's page.html) and `o.stages` stage tabs (stage i
 * in browser (i + 1) mod browsers; one fewer with holdStage, the leader tab holding one), and waits
 * until the ring is formed and every stage loaded. Both sides use `o.tuning` (default
 * TAB_LINK_TUNING: every tab shares this machine's cores).
 */
export async function formMesh(host: PageHost, leader: Page, o: Omit<LeaderArgs, 'room' | 'name'>): Promise<Mesh> {
  const pageUrl = `${host.baseUrl}/src/headless/page.html`;
  const room = `cli-${process.pid}-${Date.now().toString(36)}`;
  const leaderArgs: LeaderArgs = { tuning: TAB_LINK_TUNING, ...o, room, name: 'leader' };
  await leader.evaluate(async ([m, a]) => ((await import(/* @vite-ignore */ m)) as Tab).leaderStart(a), [MODULE, leaderArgs] as const);
  const stages: Page[] = [];
  const close = async (): Promise<void> => {
    for (const p of [...stages, leader]) await p.close().catch(() => undefined);
  };
  try {
    for (let i = 0; i < o.stages - (o.holdStage ? 1 : 0); i++) {
      const p = await host.newPage((i + 1) % host.browsers.length);
      await p.goto(pageUrl);
      stages.push(p);
    }
    const joined = await Promise.all(
      stages.map((p, i) => p.evaluate(async ([m, a]) => ((await import(/* @vite-ignore */ m)) as Tab).stageStart(a), [MODULE, { room, name: `stage ${i + 1}`, tuning: leaderArgs.tuning } satisfies StageArgs] as const)),
    );
    for (const j of joined) if ('error' in j) throw new Error(`a stage tab could not join: ${j.error}`);
    const ready = (await leader.evaluate(async (m) => ((await import(/* @vite-ignore */ m)) as Tab).leaderReady(), MODULE)) as Outcome;
    if ('error' in ready) throw new Error(`the mesh did not come up: ${ready.error}`);
  } catch (e) {
    await close();
    throw e;
  }
  return {
    leader,
    stages,
    generate: (req) => leader.evaluate(async ([m, r]) => ((await import(/* @vite-ignore */ m)) as Tab).leaderGenerate(r), [MODULE, req] as const),
    close,
  };
}
