// Browser side of e2e/ring-pipeline.spec.ts: a tab is a mesh leader (MeshSession) or a stage
// (startStageNode). Playwright calls these exports through e2e/harness.ts; state lives here.
import { MeshSession, type MeshOpenOptions, type MeshRunReport, type MeshRunRequest, type MeshStatus } from '../../src/app/mesh-session.ts';
import { startStageNode, type StageNode, type StageStatus } from '../../src/app/stage-node.ts';
import { runLocal, type LocalRunReport, type LocalRunRequest } from '../../src/app/local-run.ts';
import { SignallingError } from '../../src/mesh/signal-client.ts';
import { encodeMessage, PROTOCOL_VERSION } from '../../src/mesh/protocol.ts';

// Fast loss detection for tests: pings every 250 ms, a silent peer is lost after 2 s.
const tuning = { pingIntervalMs: 250, timeoutMs: 2000 };

let session: Promise<MeshSession> | null = null;
let leaderStatus: MeshStatus | null = null;
let tokensSoFar = 0;
let stage: StageNode | null = null;
let stageStatus: StageStatus | null = null;

export type Outcome = { ok: true } | { error: string };

/** Leader: starts opening the session (it waits for the stage tabs); see leaderReady. */
export function leaderStart(o: Omit<MeshOpenOptions, 'onStatus' | 'tuning'>): void {
  session = MeshSession.open({ ...o, tuning, onStatus: (s) => (leaderStatus = s) });
  session.catch(() => undefined);
}

export async function leaderReady(): Promise<Outcome> {
  try {
    await need(session);
    return { ok: true };
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  }
}

export async function leaderGenerate(req: MeshRunRequest): Promise<MeshRunReport> {
  tokensSoFar = 0;
  return (await need(session)).generate(req, { onToken: () => tokensSoFar++ });
}

export function leaderTokens(): number {
  return tokensSoFar;
}

export function leaderStatusNow(): MeshStatus | null {
  return leaderStatus;
}

/** Reference: the same request in this tab, all layers local. */
export function single(req: LocalRunRequest): Promise<LocalRunReport> {
  return runLocal(req);
}

export async function stageStart(o: { room: string; secret?: string; name: string }): Promise<{ id: string } | { error: string; code: string }> {
  try {
    stage = await startStageNode({ ...o, tuning, onStatus: (s) => (stageStatus = s) });
    return { id: stage.id };
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e), code: e instanceof SignallingError ? e.code : '' };
  }
}

export function stageStatusNow(): StageStatus | null {
  return stageStatus;
}

/** Stage: sends the leader a message with the wrong protocol version. */
export async function stageSendMalformed(): Promise<void> {
  const s = need(stage);
  const bytes = encodeMessage({ type: 'credit', request: 1, processed: 1 });
  bytes[4] = PROTOCOL_VERSION + 1;
  await s.ring.link(s.ring.leader)!.sendUnchecked(bytes);
}

function need<T>(x: T | null): T {
  if (x === null) throw new Error('not started in this tab');
  return x;
}
