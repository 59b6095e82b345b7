// createEngine(): one call for either placement of the model's stages.
import { TabEngine, type TabEngineOptions } from './tab-engine.ts';
import { MeshEngine, type MeshEngineOptions } from './mesh-engine.ts';

/** Every stage in this tab. */
export type TabPlacement = { placement?: 'tab' } & TabEngineOptions;
/** This tab leads a mesh of stage tabs and hosts in a room. */
export type MeshPlacement = { placement: 'mesh' } & MeshEngineOptions;

/**
 * An engine for a model, not yet loaded: call `load()` (with progress), then `generate()`.
 *
 * ```ts
 * const engine = createEngine({ model: '/models/demo-target/', draft: '/models/demo-draft/' });
 * await engine.load({ onProgress: (p) => console.log(p.part, p.done, p.total) });
 * const run = engine.generate({ prompt: 'The whale', maxNewTokens: 32, mode: 'specpipe', sampling: { temperature: 0.8, topK: 0, topP: 0.95, seed: 1 } });
 * for await (const t of run) console.log(t.text);
 * console.log((await run.report).timings);
 * engine.dispose();
 * ```
 */
export function createEngine(o: MeshPlacement): MeshEngine;
export function createEngine(o: TabPlacement): TabEngine;
export function createEngine(o: TabPlacement | MeshPlacement): TabEngine | MeshEngine {
  if (o.placement === 'mesh') {
    const { placement: _, ...rest } = o;
    return new MeshEngine(rest);
  }
  const { placement: _, ...rest } = o;
  return new TabEngine(rest);
}
