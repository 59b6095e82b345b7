// Browser side of a mesh driven from Node (the generate CLI, e2e/ring-pipeline.spec.ts): one tab is
// the leader (a mesh Engine) or a stage (startStageNode). Node calls these exports with
// page.evaluate; the state of this tab's node lives in the module.
import { createEngine } from '../app/create-engine.ts';
import type { MeshEngine, MeshEngineOptions } from '../app/mesh-engine.ts';
import type { MeshRunReport, MeshStatus } from '../app/mesh-types.ts';
import type { GenerationRequest } from '../app/engine.ts';
import { startStageNode, type StageNode, type StageNodeOptions, type StageStatus } from '../app/stage-node.ts';
import { SignallingError } from '../mesh/signal-client.ts';
import { errorMessage } from '../common/errors.ts';

let leader: { engine: MeshEngine; loaded: Promise<unknown> } | null = null;
let leaderStatus: MeshStatus | null = null;
let tokensSoFar = 0;
let stage: StageNode | null = null;
let stageStatus: StageStatus | null = null;

export type Outcome = { ok: true } | { error: string };
export type LeaderArgs = Omit<MeshEngineOptions, 'onStatus'>;
export type StageArgs = Omit<StageNodeOptions, 'onStatus'>;

declare global {
  interface Window {
    __specpipeStream?: (text: string) => void;
  }
}

/** Leader: starts opening the session (it waits for the stage tabs); leaderReady tells how it went. */
export function leaderStart(o: LeaderArgs): void {
  const engine = createEngine({ placement: 'mesh', ...o, onStatus: (s) => (leaderStatus = s) });
  const loaded = engine.load();
  loaded.catch(() => undefined);
  leader = { engine, loaded };
}

export async function leaderReady(): Promise<Outcome> {
  try {
    await need(leader).loaded;
    return { ok: true };
  } catch (e) {
    return { error: errorMessage(e) };
  }
}

/** Leader: one generation; streams text through window.__specpipeStream when the host exposed it. */
export async function leaderGenerate(req: GenerationRequest): Promise<MeshRunReport> {
  tokensSoFar = 0;
  const { engine, loaded } = need(leader);
  await loaded;
  return engine.generate(req, {
    onToken: (t) => {
      tokensSoFar++;
      if (t.text) window.__specpipeStream?.(t.text);
    },
  }).report;
}

/** Leader: tokens committed so far in the running generation. */
export function leaderTokens(): number {
  return tokensSoFar;
}

export function leaderStatusNow(): MeshStatus | null {
  return leaderStatus;
}

/** Stage: joins the room and the ring; resolves once the ring is formed (or with the refusal). */
export async function stageStart(o: StageArgs): Promise<{ id: string } | { error: string; code: string }> {
  try {
    stage = await startStageNode({ ...o, onStatus: (s) => (stageStatus = s) });
    return { id: stage.id };
  } catch (e) {
    return { error: errorMessage(e), code: e instanceof SignallingError ? e.reason : '' };
  }
}

export function stageStatusNow(): StageStatus | null {
  return stageStatus;
}

/** This tab's stage node (tests reach its ring). */
export function stageNode(): StageNode {
  return need(stage);
}

function need<T>(x: T | null): T {
  if (x === null) throw new Error('not started in this tab');
  return x;
}
