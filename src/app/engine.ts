// The one door to text generation: every caller (the chat page, the command line, the demo, the
// bench, library users) loads, generates and disposes through this interface, whether the model's
// stages sit in this tab (TabEngine) or in stage tabs and hosts of a mesh (MeshEngine).
import type { ModelSpec } from '../model/types.ts';
import type { TextTokenizer } from '../model/tokenizer.ts';
import type { PacketTrace } from '../pipeline/stage-runner.ts';
import type { SamplingSettings } from '../speculative/sampling.ts';
import type { GenerateMetrics, Mode, StopReason } from '../speculative/scheduler.ts';
import type { TbtBound } from '../speculative/metrics.ts';
import type { DeviceEmulation, OverrunCount } from '../common/device-emulation.ts';
import type { DraftKind } from './modes.ts';

/** What to generate. */
export interface GenerationRequest {
  /** Text, encoded with the model's tokenizer. Give this or `promptIds`. */
  prompt?: string;
  /** Token ids (for models without a tokenizer, or exact control). */
  promptIds?: number[];
  maxNewTokens: number;
  /** Temperature, top-k, top-p and the seed; the same seed gives the same text in every mode. */
  sampling: SamplingSettings;
  /** 'single' (one stage), 'pp' (plain pipeline), 'tree' (static token tree) or 'specpipe'. */
  mode: Mode;
  /** The speculative source of specpipe/tree (default: the draft model when one was given, else none). */
  draft?: DraftKind;
  /** Node budget per step W (specpipe) or the static tree's width (tree). */
  width?: number;
  /** Depth limit of the speculative tree. */
  depth?: number;
  /**
   * specpipe's dynamic tree: a guess beyond a step's best goes out only if its path probability is
   * at least this fraction of the best's (0: always W; default DEFAULT_BRANCH_RATIO).
   */
  branchRatio?: number;
}

/** One committed token, as it streams. */
export interface TokenEvent {
  token: number;
  /** 0-based index among the generated tokens. */
  index: number;
  /** The text this token adds ('' without a tokenizer, or while a multi-byte character is incomplete). */
  text: string;
  /** Whether the next token was already in flight when this one was committed (a speculation hit). */
  hit: boolean;
}

/**
 * Timings of one generation, ms. Time between tokens (TBT) has one definition everywhere
 * (src/speculative/metrics.ts): decode time, from the first generated token to the last, over the
 * tokens after the first.
 */
export interface GenerationTimings {
  loadMs: number;
  generateMs: number;
  ttftMs: number | null;
  /** First generated token to the last. */
  decodeMs: number | null;
  /** Mean time between tokens: decodeMs / (tokens - 1). */
  tbtMeanMs: number | null;
  tbtP50Ms: number | null;
  tbtP95Ms: number | null;
  /** Decode rate after the first token: 1000 / tbtMeanMs. */
  tokensPerSecond: number | null;
}

/**
 * The least mean TBT the mode's law allows with the stage time t and hop h measured in this run
 * (`law`: specpipe p t + (1-p) R, pipeline R, tree R / tokens per round; R = S t + (S+1) h), and
 * how close the run came.
 */
export interface RunBound extends TbtBound {
  /** bound TBT / measured mean TBT (1: at the bound). */
  efficiency: number | null;
}

/** Levels (or draft calls) run on an emulated device, how many overran, and their share. */
export interface OverrunStats extends OverrunCount {
  /** overruns / levels (null when none ran). */
  share: number | null;
}

/** Emulated dedicated devices during one generation: the settings and how often real compute overran them. */
export interface EmulationReport extends DeviceEmulation {
  /** Overruns over every emulated stage level and draft call (0..1). */
  overrunShare: number | null;
  /** Per stage, in ring order (empty when stages ran in real time, or did not report). */
  stages: OverrunStats[];
  /** The draft model's forwards (null when the draft ran in real time or was not used). */
  draft: OverrunStats | null;
  /** False when more than 5% overran: the figures then describe this shared machine, not dedicated devices. */
  representative: boolean;
}

/** What one generation produced, and how it went. */
export interface GenerationReport {
  tokens: number[];
  /** The generated text (null without a tokenizer). */
  text: string | null;
  promptIds: number[];
  stopReason: StopReason;
  /** Each stage's layers, in ring order ('layers 0-3 + head'). */
  stages: string[];
  /** The GPU adapter(s) the stages ran on. */
  adapter: string;
  /** Bytes of target weights on the GPU, all stages. */
  weightBytes: number;
  timings: GenerationTimings;
  metrics: GenerateMetrics;
  /** The mode's bound on mean TBT from this run's stage time and hops, with the efficiency reached (null when not measured). */
  bound: RunBound | null;
  /** Emulated dedicated devices (null: real compute on this machine). */
  emulation: EmulationReport | null;
  /** emulation.overrunShare, beside the timings: more than 0.05 flags figures that do not represent dedicated devices (null without emulation). */
  overrunShare: number | null;
  /** Busy (computing) time per stage, ms (stages in this tab; stage tabs report theirs in `stageStats`). */
  stageBusyMs: number[];
  /** Load-time notes about the model (e.g. tensors converted). */
  warnings: string[];
  /** Full logits of the first `dumpLogits` generated tokens, when asked (single / pp, in this tab). */
  logits?: number[][];
}

/** Per-call options of generate(). */
export interface GenerateCallOptions {
  /** Stops the generation: the stream ends and `report` resolves with stopReason 'abort'. */
  signal?: AbortSignal;
  /** Called for every committed token (the same events the stream yields). */
  onToken?: (e: TokenEvent) => void;
  /** Observes every level each stage in this tab computes (the chat page's pipeline picture; stage tabs do not report it). */
  onPacket?: (stage: number, trace: PacketTrace) => void;
  /** Also return the full logits of the first N generated tokens (single / pp, in this tab). */
  dumpLogits?: number;
}

/** A running generation: iterate it for tokens as they commit; `report` resolves at the end. */
export interface Generation<R extends GenerationReport = GenerationReport> extends AsyncIterable<TokenEvent> {
  readonly report: Promise<R>;
}

/** Bytes loaded so far of one part ('target', 'stage 2/4', 'draft', or a stage tab's name). */
export interface LoadProgress {
  part: string;
  done: number;
  total: number;
}

/** Options of load(): progress per part, and a signal to stop loading. */
export interface LoadOptions {
  onProgress?: (p: LoadProgress) => void;
  signal?: AbortSignal;
}

/** What a loaded engine holds. */
export interface EngineInfo {
  spec: ModelSpec;
  /** null when the model came without tokenizer.json (prompts must then be token ids). */
  tokenizer: TextTokenizer | null;
  stages: string[];
  adapter: string;
  weightBytes: number;
  loadMs: number;
}

/** Where an engine is in its life cycle. */
export type EnginePhase = 'idle' | 'loading' | 'ready' | 'generating' | 'failed' | 'closed';

/**
 * A language model ready to generate, wherever its stages are.
 *
 * Life cycle: load() once (with progress), then generate() any number of times, one at a time,
 * then dispose(). A lost GPU device or a failed mesh moves the engine to phase 'failed': later
 * calls reject with the error that caused it (a DeviceLostError, a StageLostError, ...).
 */
export interface Engine<R extends GenerationReport = GenerationReport> {
  readonly placement: 'tab' | 'mesh';
  readonly phase: EnginePhase;
  /** Set after load() resolves. */
  readonly info: EngineInfo | null;
  load(opts?: LoadOptions): Promise<EngineInfo>;
  generate(req: GenerationRequest, opts?: GenerateCallOptions): Generation<R>;
  dispose(): void;
}

/** Loads `engine`; if that fails, disposes it (nothing half-loaded stays on the GPU) and rethrows. */
export async function loadOrDispose<E extends Engine<GenerationReport>>(engine: E, opts?: LoadOptions): Promise<EngineInfo> {
  try {
    return await engine.load(opts);
  } catch (e) {
    engine.dispose();
    throw e;
  }
}

/**
 * Adapts a run that reports tokens through a callback to a Generation: events are queued for the
 * iterator (nothing is lost if the caller iterates late or not at all).
 */
export class TokenStream<R extends GenerationReport> implements Generation<R> {
  readonly report: Promise<R>;
  private readonly queue: TokenEvent[] = [];
  private finished = false;
  private failure: { error: unknown } | null = null;
  private wakers: (() => void)[] = [];

  constructor(run: (emit: (e: TokenEvent) => void) => Promise<R>) {
    const emit = (e: TokenEvent): void => {
      this.queue.push(e);
      this.notify();
    };
    // A run that throws at once fails the report like one that rejects later.
    this.report = new Promise<R>((resolve) => resolve(run(emit))).then(
      (r) => {
        this.finished = true;
        this.notify();
        return r;
      },
      (error: unknown) => {
        this.failure = { error };
        this.finished = true;
        this.notify();
        throw error;
      },
    );
    // A caller that only iterates learns of a failure from the iterator.
    this.report.catch(() => undefined);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<TokenEvent> {
    let next = 0;
    for (;;) {
      if (next < this.queue.length) {
        yield this.queue[next++];
        continue;
      }
      if (this.failure) throw this.failure.error;
      if (this.finished) return;
      await new Promise<void>((resolve) => this.wakers.push(resolve));
    }
  }

  private notify(): void {
    const wakers = this.wakers;
    this.wakers = [];
    for (const w of wakers) w();
  }
}
