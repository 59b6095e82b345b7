// What the mesh API takes and gives (MeshSession in the leader tab): options, requests, status and
// reports. The chat page and the command line code against these.
import type { PlacedStage } from './recovery-plan.ts';
import type { LinkTuning } from '../mesh/peer.ts';
import type { PayloadDtype } from '../mesh/protocol.ts';
import type { GenerationReport, TokenEvent } from './engine.ts';
import type { DeviceEmulation } from '../common/device-emulation.ts';
import type { StageBackend } from '../pipeline/backend.ts';

/** Where the mesh is: forming the ring, loading layers, ready, generating, replacing a lost stage, closed or failed. */
export type MeshPhase = 'forming' | 'loading' | 'ready' | 'generating' | 'recovering' | 'closed' | 'failed';

/** One stage of the ring as the leader sees it: who, which layers, which device, how far loaded. */
export interface MeshStageView {
  id: string;
  name: string;
  /** Place in the ring (1 = first stage). */
  index: number;
  role: string | null;
  device: string;
  gbps: number | null;
  load: { done: number; total: number } | null;
  /** Bytes of weights the stage loaded (0 until it has). */
  weightBytes: number;
  /** Bytes of the KV slot pools its layers hold (the leader sizes them: slots x layers). */
  kvBytes: number;
  /** Memory the stage announced it may use (a Node host's --memory-gb), or null: not announced. */
  memoryBytes: number | null;
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

/** The mesh as the leader reports it after every change (the chat page's mesh view draws it). */
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

/** How the leader forms its mesh: the room, how many stages, the model, the wire and the split. */
export interface MeshOpenOptions {
  room: string;
  secret?: string;
  /** How many stages to wait for (this tab's own one included with holdStage). */
  stages: number;
  /** This tab also holds a stage (joins the ring like a stage tab, over a loopback link). */
  holdStage?: boolean;
  /**
   * A leader that reloaded (src/app/session-store.ts): take these stage tabs back, in this order with
   * these layers, when they are all in the room (else the layers are split afresh over `stages` tabs);
   * the first generation may then skip the first `keep` positions of its prompt, which the stages
   * still hold from the generation the reload cut (give 0 unless that prompt is exactly its text).
   */
  resume?: { ring: PlacedStage[]; keep: number };
  modelUrl: string;
  /** Draft model for specpipe/tree, loaded by the leader (in its own worker) on first use. */
  draftUrl?: string;
  /** What computes the draft model: 'webgpu' (default) or 'wasm' (the CPU backend). */
  draftBackend?: StageBackend;
  /** Simulated network delay per hop, ms (applied by the transport on every link). */
  hopDelayMs?: number;
  /**
   * Emulate dedicated devices (default off): every stage tab's level takes at least stageMs (sent to
   * the stages with their layers), the leader's draft forwards at least draftMs; reports count overruns.
   */
  emulation?: DeviceEmulation | null;
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

export interface MeshRunOptions {
  onToken?: (e: TokenEvent) => void;
  signal?: AbortSignal;
}

/** What one stage did during a generation. */
export interface StageWork {
  id: string;
  role: string | null;
  packets: number;
  rowsComputed: number;
  rowsDropped: number;
  busyMs: number;
  /** busyMs over the generation's wall time. */
  busyFraction: number;
  /** Levels that computed rows, and how many of them overran the emulated budget (0 without emulation). */
  levels: number;
  overruns: number;
  /** The stage's time per level (median level that computed rows, padding included), ms. */
  levelMsP50: number | null;
}

/** One recovery from a lost stage tab during a generation (partial recovery: only moved layers prefill). */
export interface RecoveryReport {
  /** Which stage tab was lost, and how. */
  lost: string;
  /** Tokens committed when it was lost. */
  atToken: number;
  /** Tokens committed before the loss that the final output does not begin with (0: nothing lost). */
  tokensLost: number;
  /** From noticing the loss to the next committed token, ms (null when none followed). */
  recoveryMs: number | null;
  /** Where the lost layers went, in words ('layers 2-3 -> spare tab c'), or that they were split afresh. */
  plan: string;
  /** Per stage of the re-formed ring: committed positions it served from what it kept, and those it computed again. */
  stages: { name: string; role: string; kept: number; prefilled: number; ms: number }[];
}

/** A generation's report on the mesh: per-hop round trips and per-stage work besides the usual. */
export interface MeshRunReport extends Omit<GenerationReport, 'logits'> {
  hops: HopLatency[];
  stageStats: StageWork[];
  /** Times the ring was re-formed during this generation. */
  recoveries: number;
  /** Per recovery: what was lost, what moved, how long until the next token, what each stage prefilled. */
  recoveryLog: RecoveryReport[];
  /** The ring's stages when the generation ended: who, which layers, device, weight and KV bytes. */
  ring: MeshStageView[];
  /** Level round trips leader -> ... -> leader. */
  ringTripP50Ms: number | null;
  ringTripP95Ms: number | null;
}
