// The headless API leader's page (`npm start -- --leader headless`, src/cli/api-leader.ts): loads the
// model with its stages in this tab, or leads a ring of the room's stage tabs and hosts (placement
// 'mesh'), then serves the room's OpenAI-compatible API through the Engine (src/app/api-relay.ts).
// Built into dist/ (vite.config.ts), so it runs from the server it serves.
import { createEngine } from '../app/create-engine.ts';
import { loadOrDispose, type Engine } from '../app/engine.ts';
import { TAB_LINK_TUNING } from '../app/link-tuning.ts';
import { urlSource } from '../model/index.ts';
import { serveApi, type ApiRelay } from '../app/api-relay.ts';
import type { Mode } from '../speculative/scheduler.ts';
import { chatTemplateOf } from '../model/chat-template.ts';
import { errorMessage } from '../common/errors.ts';

/** What the command line asks for. */
export interface ApiLeaderArgs {
  room: string;
  secret?: string;
  /** The server's token for its own leader. */
  apiToken?: string;
  /** Model folders, resolved against this page. */
  modelUrl: string;
  /** null: no draft model (pp with several stages, else single). */
  draftUrl: string | null;
  /** 'tab': the stages in this tab; 'mesh': wait for this many stage tabs/hosts to join the room. */
  placement: 'tab' | 'mesh';
  stages: number;
}

/** The leader serves (its mode and model), or why it could not start. */
export type ApiLeaderOutcome = { ok: true; mode: Mode; model: string; stages: string[]; adapter: string } | { error: string };

declare global {
  interface Window {
    specpipeApiLeader?: { start(a: ApiLeaderArgs): Promise<ApiLeaderOutcome>; closed(): Promise<string> };
  }
}

let relay: ApiRelay | null = null;

async function start(a: ApiLeaderArgs): Promise<ApiLeaderOutcome> {
  try {
    const mode: Mode = a.draftUrl ? 'specpipe' : a.stages > 1 || a.placement === 'mesh' ? 'pp' : 'single';
    const modelUrl = new URL(a.modelUrl, location.href).href;
    const draftUrl = a.draftUrl ? new URL(a.draftUrl, location.href).href : null;
    // Stage tabs on a busy machine stall for seconds: the tabs' tolerant link timings.
    const engine: Engine =
      a.placement === 'mesh'
        ? createEngine({ placement: 'mesh', room: a.room, secret: a.secret, stages: a.stages, modelUrl, draftUrl: draftUrl ?? undefined, name: 'api leader', tuning: TAB_LINK_TUNING })
        : createEngine({ model: modelUrl, draft: draftUrl, stages: mode === 'single' ? 1 : a.stages });
    const info = await loadOrDispose(engine);
    const template = chatTemplateOf(await urlSource(modelUrl).readOptionalJson('tokenizer_config.json'));
    const model = new URL(a.modelUrl, location.href).pathname.split('/').filter(Boolean).pop() ?? 'model';
    relay = await serveApi({ room: a.room, secret: a.secret, apiToken: a.apiToken, engine, template, modelName: model, run: { mode, draft: a.draftUrl ? 'model' : 'none' }, log: (l) => console.log(l) });
    return { ok: true, mode, model, stages: info.stages, adapter: info.adapter };
  } catch (e) {
    return { error: errorMessage(e) };
  }
}

window.specpipeApiLeader = {
  start,
  closed: async () => (relay ? errorMessage(await relay.closed) : 'not started'),
};
