// A mesh for the command-line tools: a leader tab (MeshSession) in headless Chromium plus N stages,
// each a stage tab (spread over the host's browser processes) or a Node stage host process
// (`npm run stage`, --stage-hosts), formed over WebRTC through the host's /signal.
import type { Page } from '@playwright/test';
import type { PageHost } from './page-host.ts';
import type { LeaderArgs, Outcome, StageArgs } from '../headless/mesh-page.ts';
import type { BackendChoice } from '../pipeline/backend.ts';
import type { MeshRunReport } from '../app/mesh-types.ts';
import type { GenerationRequest } from '../app/engine.ts';
import { TAB_LINK_TUNING } from '../app/link-tuning.ts';
import { failWhenAnyExits, isNodeStage, spawnStageHost, type StageHosts, type StageProcess } from './stage-processes.ts';

const MODULE = '/src/headless/mesh-page.ts';
type Tab = typeof import('../headless/mesh-page.ts');

export interface Mesh {
  leader: Page;
  /** The stage tabs. */
  stages: Page[];
  /** The Node stage host processes. */
  nodeHosts: StageProcess[];
  /** The room the mesh formed in. */
  room: string;
  /** One generation on the leader (text streams through window.__specpipeStream if exposed). */
  generate(req: GenerationRequest): Promise<MeshRunReport>;
  /**
   * Opens one more stage tab in the room (in browser `browserIndex`), added to `stages`; resolves once
   * it waits there, a spare the leader takes when a stage is lost.
   */
  addStageTab(name: string, browserIndex: number): Promise<Page>;
  /** Closes the stage tabs and the leader tab, and ends the Node stage hosts (their process groups). */
  close(): Promise<void>;
}

/**
 * How long the leader and the tabs wait for a silent Node stage host: Dawn compiles each pipeline
 * synchronously on the host's JavaScript thread, so a host building its stage answers no ping for
 * the whole compilation (5-10 s measured on a loaded 2-core machine, past TAB_LINK_TUNING's 10 s).
 * Back to TAB_LINK_TUNING once src/gpu creates pipelines with createComputePipelineAsync in Node.
 */
const NODE_HOST_LINK_TUNING = { timeoutMs: 30_000 };

/**
 * Opens the leader in `leader` (already at the host's page.html) and `o.stages` stages (one fewer
 * with holdStage, the leader tab holding one): with `stageHosts` 'tabs' (default) stage tabs, stage i
 * in browser (i + 1) mod browsers; 'node' Node stage hosts joining the host's room; 'mixed' both,
 * alternating. Waits until the ring is formed and every stage loaded; a Node host that exits first
 * fails it with its output. The leader and the tabs use `o.tuning` (default TAB_LINK_TUNING: every
 * stage shares this machine's cores; NODE_HOST_LINK_TUNING when there are Node hosts).
 */
export async function formMesh(host: PageHost, leader: Page, o: Omit<LeaderArgs, 'room' | 'name'> & { stageHosts?: StageHosts; instrument?: () => void; backend?: BackendChoice }): Promise<Mesh> {
  const pageUrl = `${host.baseUrl}/src/headless/page.html`;
  const room = `cli-${process.pid}-${Date.now().toString(36)}`;
  // `instrument` runs in every stage tab before its page (the soak's GPU buffer count).
  const { stageHosts = 'tabs', instrument, backend, ...meshArgs } = o;
  // What computes every stage (tab or Node host): default webgpu.
  const stageArgs = (name: string): StageArgs => ({ room, name, tuning: leaderArgs.tuning, ...(backend ? { backend } : {}) });
  const leaderArgs: LeaderArgs = { tuning: stageHosts === 'tabs' ? TAB_LINK_TUNING : NODE_HOST_LINK_TUNING, ...meshArgs, room, name: 'leader' };
  await leader.evaluate(async ([m, a]) => ((await import(/* @vite-ignore */ m)) as Tab).leaderStart(a), [MODULE, leaderArgs] as const);
  const stages: Page[] = [];
  const nodeHosts: StageProcess[] = [];
  const openStageTab = async (browserIndex: number): Promise<Page> => {
    const p = await host.newPage(browserIndex);
    if (instrument) await p.addInitScript(instrument);
    await p.goto(pageUrl);
    stages.push(p);
    return p;
  };
  const close = async (): Promise<void> => {
    for (const p of [...stages, leader]) await p.close().catch(() => undefined);
    await Promise.all(nodeHosts.map((h) => h.stop()));
  };
  try {
    const tabNames: string[] = [];
    for (let i = 0; i < o.stages - (o.holdStage ? 1 : 0); i++) {
      if (isNodeStage(stageHosts, i)) {
        nodeHosts.push(spawnStageHost({ join: `${host.baseUrl}/?room=${room}`, name: `node ${i + 1}`, extra: backend ? ['--backend', backend] : [] }));
        continue;
      }
      await openStageTab((i + 1) % host.browsers.length);
      tabNames.push(`stage ${i + 1}`);
    }
    const hostExit = failWhenAnyExits(nodeHosts);
    hostExit.catch(() => undefined);
    const joined = await Promise.race([
      Promise.all(
        stages.map((p, i) => p.evaluate(async ([m, a]) => ((await import(/* @vite-ignore */ m)) as Tab).stageStart(a), [MODULE, stageArgs(tabNames[i])] as const)),
      ),
      hostExit,
    ]);
    for (const j of joined) if ('error' in j) throw new Error(`a stage tab could not join: ${j.error}`);
    const ready = (await Promise.race([leader.evaluate(async (m) => ((await import(/* @vite-ignore */ m)) as Tab).leaderReady(), MODULE), hostExit])) as Outcome;
    if ('error' in ready) throw new Error(`the mesh did not come up: ${ready.error}`);
  } catch (e) {
    await close();
    throw e;
  }
  return {
    leader,
    stages,
    nodeHosts,
    room,
    async addStageTab(name, browserIndex) {
      const p = await openStageTab(browserIndex);
      // stageStart settles only when a ring takes this tab: not awaited.
      void p.evaluate(async ([m, a]) => ((await import(/* @vite-ignore */ m)) as Tab).stageStart(a), [MODULE, stageArgs(name)] as const).catch(() => undefined);
      for (;;) {
        const s = await p.evaluate(async (m) => ((await import(/* @vite-ignore */ m)) as Tab).stageStatusNow(), MODULE);
        if (s?.phase === 'waiting') return p;
        if (s?.phase === 'failed') throw new Error(`stage tab ${name} could not join: ${s.message}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    generate: (req) => leader.evaluate(async ([m, r]) => ((await import(/* @vite-ignore */ m)) as Tab).leaderGenerate(r), [MODULE, req] as const),
    close,
  };
}
