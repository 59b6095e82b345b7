// What the mesh API takes and gives (MeshSession in the leader tab): options, requests, status and
// reports. The chat page and the command line code against these.
import type { LinkTuning } from '../mesh/peer.ts';
import type { PayloadDtype } from '../mesh/protocol.ts';
import type { Mode } from '../speculative/scheduler.ts';
import type { SamplingSettings } from '../speculative/sampling.ts';
import type { DraftKind } from './local-engine.ts';
import type { LocalRunReport } from './generation.ts';

export type MeshPhase = 'forming' | 'loading' | 'ready' | 'generating' | 'recovering' | 'closed' | 'failed';

export interface MeshStageView {
  id: string;
  name: string;
  /** Place in the ring (1 = first stage). */
  index: number;
  role: string | null;
  device: string;
  gbps: number | null;
  load: { done: number; total: number } | null;
  weightBytes: number;
  loaded: boolean;
}

/** Round trips of pings on the link that carries one hop of the ring (one way is about half). */
export interface HopLatency {
  from: string;
  to: string;
  rttP50Ms: number | null;
  rttP95Ms: number | null;
  samples: number;
}

export interface MeshStatus {
  phase: MeshPhase;
  room: string;
  stages: MeshStageView[];
  /** From the last generation (leader -> stage 1 -> ... -> leader). */
  hops: HopLatency[];
  /** Recent events in words, oldest first. */
  log: string[];
  /** The last error (a malformed message, a lost tab, a failed load), or null. */
  error: string | null;
}

export interface MeshOpenOptions {
  room: string;
  secret?: string;
  /** How many stages to wait for (this tab's own one included with holdStage). */
  stages: number;
  /** This tab also holds a stage (joins the ring like a stage tab, over a loopback link). */
  holdStage?: boolean;
  modelUrl: string;
  /** Draft model for specpipe/tree, loaded in the leader tab on first use. */
  draftUrl?: string;
  /** Simulated network delay per hop, ms (applied by the transport on every link). */
  hopDelayMs?: number;
  /** Hidden states on the wire: 'f32' (exact, default) or 'f16' (half the bytes). */
  wire?: PayloadDtype;
  /** 'speed' (default): layers in proportion to each tab's benchmark; 'equal': even split. */
  split?: 'speed' | 'equal';
  /** Longest text (prompt + generated) a request may reach; default min(model maximum, 1024). */
  maxContext?: number;
  name?: string;
  signalUrl?: string;
  /** Link timings (ping period, silence timeout). */
  tuning?: Omit<LinkTuning, 'hopDelayMs'>;
  /** How long open() waits for enough stage tabs to join, ms (default 10 minutes). */
  waitMs?: number;
  /** Aborting stops open() (an AbortError) and closes the session. */
  signal?: AbortSignal;
  onStatus?: (s: MeshStatus) => void;
}

export interface MeshRunRequest {
  prompt?: string;
  promptIds?: number[];
  maxNewTokens: number;
  sampling: SamplingSettings;
  mode: Mode;
  /** specpipe/tree source (default: the draft model when draftUrl was given, else none). */
  draft?: DraftKind;
  width?: number;
  depth?: number;
}

export interface MeshRunOptions {
  /**
   * Every committed token, with the text so far (null without a tokenizer) and whether the next
   * token was already in flight (a hit: see GenerateOptions.onToken).
   */
  onToken?: (token: number, text: string | null, hit: boolean) => void;
  signal?: AbortSignal;
}

export interface StageWork {
  id: string;
  role: string | null;
  packets: number;
  rowsComputed: number;
  rowsDropped: number;
  busyMs: number;
  /** busyMs over the generation's wall time. */
  busyFraction: number;
}

export interface MeshRunReport extends Omit<LocalRunReport, 'logits'> {
  hops: HopLatency[];
  stageStats: StageWork[];
  /** Times the ring was re-formed during this generation. */
  recoveries: number;
  /** Level round trips leader -> ... -> leader. */
  ringTripP50Ms: number | null;
  ringTripP95Ms: number | null;
}
