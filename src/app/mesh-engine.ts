// The Engine over a mesh: this tab leads a room (ring of stage tabs and hosts), holds the prompt,
// the token tree and the draft; the stages hold the layers. A thin face on MeshSession.
import { BadRequestError } from '../common/errors.ts';
import { MeshSession } from './mesh-session.ts';
import type { PlacedStage } from './recovery-plan.ts';
import type { MeshOpenOptions, MeshPhase, MeshRunReport, MeshStatus } from './mesh-types.ts';
import { TokenStream, type Engine, type EngineInfo, type EnginePhase, type GenerateCallOptions, type Generation, type GenerationRequest, type LoadOptions } from './engine.ts';

/** The mesh to lead: room, secret, stage count, model and draft URLs, wire format, split. */
export type MeshEngineOptions = Omit<MeshOpenOptions, 'signal'>;

const PHASES: Record<MeshPhase, EnginePhase> = {
  forming: 'loading',
  loading: 'loading',
  ready: 'ready',
  generating: 'generating',
  // A lost stage is being replaced (a running generation goes on afterwards).
  recovering: 'loading',
  failed: 'failed',
  closed: 'closed',
};

/** The Engine over a mesh of stage tabs and hosts, led from this tab. */
export class MeshEngine implements Engine<MeshRunReport> {
  readonly placement = 'mesh';
  private session: MeshSession | null = null;
  private loading = false;
  private closed = false;
  /** The mesh as last reported (stages, hops, log, error); null before load(). */
  status: MeshStatus | null = null;
  info: EngineInfo | null = null;

  constructor(private readonly opts: MeshEngineOptions) {}

  get phase(): EnginePhase {
    if (this.closed) return 'closed';
    if (!this.status) return this.loading ? 'loading' : 'idle';
    return PHASES[this.status.phase];
  }

  /** Joins the room as leader, waits for the stages, assigns and loads their layers. */
  async load(o: LoadOptions = {}): Promise<EngineInfo> {
    if (this.loading || this.session || this.closed) throw new BadRequestError('load() was already called on this engine');
    this.loading = true;
    const session = await MeshSession.open({
      ...this.opts,
      signal: o.signal,
      onStatus: (s) => {
        this.status = s;
        for (const st of s.stages) if (st.load) o.onProgress?.({ part: st.name, ...st.load });
        this.opts.onStatus?.(s);
      },
    }).finally(() => (this.loading = false));
    if (this.closed) {
      session.close();
      throw new DOMException('the engine was disposed while loading', 'AbortError');
    }
    this.session = session;
    this.status = session.status;
    this.info = session.info;
    return this.info;
  }

  generate(req: GenerationRequest, o: GenerateCallOptions = {}): Generation<MeshRunReport> {
    return new TokenStream((emit) => {
      if (!this.session) throw new BadRequestError(this.closed ? 'the engine was disposed' : 'call load() first');
      if (o.dumpLogits) throw new BadRequestError('logits can be dumped only with every stage in this tab');
      return this.session.generate(req, {
        signal: o.signal,
        onToken: (e) => {
          emit(e);
          o.onToken?.(e);
        },
      });
    });
  }

  /** The ring as loaded: stage tabs in order with their layers (empty before load). */
  get layout(): PlacedStage[] {
    return this.session?.layout ?? [];
  }

    dispose(): void {
    this.closed = true;
    this.session?.close();
  }
}
