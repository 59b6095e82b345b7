// The chat page's mesh: a mesh engine over stage tabs and hosts in this room, loaded when first
// needed and re-created when the model, stage count or hop delay changes.
import { createEngine } from '../app/create-engine.ts';
import type { MeshEngine } from '../app/mesh-engine.ts';
import type { MeshOpenOptions, MeshStatus } from '../app/mesh-types.ts';
import { loadOrDispose } from '../app/engine.ts';
import { TAB_LINK_TUNING } from '../app/link-tuning.ts';
import type { RoomParams } from './room.ts';
import { costText, type DeviceEmulation } from '../common/device-emulation.ts';

export interface MeshRequest {
  modelUrl: string;
  draftUrl: string | null;
  stages: number;
  hopDelayMs: number;
  context: number;
  /** Emulated dedicated devices (null: real compute). */
  emulation: DeviceEmulation | null;
  onStatus: (s: MeshStatus) => void;
  signal: AbortSignal;
  /** A reloaded leader's saved ring and resumable positions (see MeshOpenOptions.resume); not part of the engine's key. */
  resume?: MeshOpenOptions['resume'];
}

export class MeshBackend {
  private current: { key: string; engine: MeshEngine } | null = null;

  constructor(private readonly room: RoomParams) {}

  /** The loaded engine for `req`; waits (abortable) until enough stages have joined and loaded. */
  async ensure(req: MeshRequest): Promise<MeshEngine> {
    const key = [req.modelUrl, req.draftUrl, req.stages, req.hopDelayMs, req.context, costText(req.emulation?.stageMs ?? null), costText(req.emulation?.draftMs ?? null)].join('\n');
    const phase = this.current?.engine.phase;
    if (this.current?.key === key && phase !== 'failed' && phase !== 'closed') return this.current.engine;
    this.close();
    const engine = createEngine({
      placement: 'mesh',
      room: this.room.room,
      secret: this.room.secret,
      stages: req.stages,
      modelUrl: req.modelUrl,
      draftUrl: req.draftUrl ?? undefined,
      hopDelayMs: req.hopDelayMs,
      emulation: req.emulation,
      maxContext: req.context,
      name: 'leader',
      tuning: TAB_LINK_TUNING,
      onStatus: req.onStatus,
      resume: req.resume,
    });
    await loadOrDispose(engine, { signal: req.signal });
    this.current = { key, engine };
    return engine;
  }

  close(): void {
    this.current?.engine.dispose();
    this.current = null;
  }
}
