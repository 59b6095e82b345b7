// The chat page's mesh: a MeshSession over stage tabs in this room, opened when first needed and
// re-opened when the model, stage count or hop delay changes.
import { MeshSession, type MeshStatus } from '../app/mesh-session.ts';
import type { RoomParams } from './room.ts';
import { TAB_LINK_TUNING } from '../app/link-tuning.ts';

export interface MeshRequest {
  modelUrl: string;
  draftUrl: string | null;
  stages: number;
  hopDelayMs: number;
  context: number;
  onStatus: (s: MeshStatus) => void;
  signal: AbortSignal;
}

export class MeshBackend {
  private current: { key: string; session: MeshSession } | null = null;

  constructor(private readonly room: RoomParams) {}

  /** The open session for `req`; waits (abortable) until enough stage tabs have joined and loaded. */
  async ensure(req: MeshRequest): Promise<MeshSession> {
    const key = [req.modelUrl, req.draftUrl, req.stages, req.hopDelayMs, req.context].join('\n');
    if (this.current?.key === key && this.current.session.status.phase !== 'failed' && this.current.session.status.phase !== 'closed') return this.current.session;
    this.close();
    const opening = MeshSession.open({
      room: this.room.room,
      secret: this.room.secret,
      stages: req.stages,
      modelUrl: req.modelUrl,
      draftUrl: req.draftUrl ?? undefined,
      hopDelayMs: req.hopDelayMs,
      maxContext: req.context,
      name: 'leader',
      tuning: TAB_LINK_TUNING,
      onStatus: req.onStatus,
    });
    // open() has no signal: on stop, stop waiting and close the session if it opens later.
    const aborted = new Promise<never>((_, reject) => {
      const stop = (): void => reject(new DOMException('stopped while waiting for stage tabs', 'AbortError'));
      if (req.signal.aborted) stop();
      req.signal.addEventListener('abort', stop, { once: true });
    });
    try {
      const session = await Promise.race([opening, aborted]);
      this.current = { key, session };
      return session;
    } catch (e) {
      opening.then((s) => s.close()).catch(() => undefined);
      throw e;
    }
  }

  close(): void {
    this.current?.session.close();
    this.current = null;
  }
}
