// `npm run bench:peers`: the engines it runs, its JSON shape, the agreement of the greedy
// continuations and the text table (pure: tests/cli-bench-peers.test.ts).
import type { KvShape, PeerEngineSpec } from '../headless/peers-run.ts';
import { percentile } from '../common/numerics.ts';

/** This project's engine: the reference the agreement is measured against. */
export const REFERENCE_ENGINE = 'specpipe-mesh webgpu';

/** Where the exports and the model are served from (URLs of the page host). */
export interface PeerFiles {
  modelUrl: string;
  onnxUrl: string;
  ggufF32Url: string;
  ggufF16Url: string;
  kv: KvShape;
}

/** One named engine configuration. */
export interface PeerEngine {
  name: string;
  spec: PeerEngineSpec;
}

const threadsName = (n: number): string => (n === 1 ? '1 thread' : `${n} threads`);

/**
 * Every engine of the bench, in table order. `threads` is what "all threads" means on this
 * machine (the browser's hardwareConcurrency).
 */
export function peerEngines(files: PeerFiles, threads: number): PeerEngine[] {
  const counts = threads > 1 ? [1, threads] : [1];
  return [
    { name: REFERENCE_ENGINE, spec: { kind: 'specpipe', backend: 'webgpu', modelUrl: files.modelUrl } },
    // Issue 17's CPU backend (src/cpu); its threaded variant is a slot until the backend has threads.
    { name: 'specpipe-mesh wasm 1 thread', spec: { kind: 'specpipe', backend: 'wasm', modelUrl: files.modelUrl } },
    ...(threads > 1 ? [{ name: `specpipe-mesh wasm ${threadsName(threads)}`, spec: { kind: 'specpipe', backend: 'wasm', threads, modelUrl: files.modelUrl } } satisfies PeerEngine] : []),
    ...counts.map((t): PeerEngine => ({ name: `onnxruntime-web wasm ${threadsName(t)}`, spec: { kind: 'ort', ep: 'wasm', threads: t, onnxUrl: files.onnxUrl, kv: files.kv } })),
    { name: 'onnxruntime-web webgpu', spec: { kind: 'ort', ep: 'webgpu', threads: 1, onnxUrl: files.onnxUrl, kv: files.kv } },
    ...(['f32', 'f16'] as const).flatMap((dtype) =>
      counts.map((t): PeerEngine => ({ name: `wllama ${dtype} ${threadsName(t)}`, spec: { kind: 'wllama', threads: t, ggufUrl: dtype === 'f32' ? files.ggufF32Url : files.ggufF16Url } })),
    ),
  ];
}

/** Keeps the engines whose name contains one of `filters` (all when there are none). */
export function selectEngines(engines: PeerEngine[], filters: string[]): PeerEngine[] {
  const chosen = filters.length === 0 ? engines : engines.filter((e) => filters.some((f) => e.name.includes(f)));
  if (chosen.length === 0) throw new Error(`--engines ${filters.join(',')}: matches none of ${engines.map((e) => e.name).join(', ')}`);
  return chosen;
}

/** One row of `results`: the four fields of the shape, then what else was measured. */
export interface PeerResult {
  engine: string;
  context: number;
  /** Decode time between tokens, ms; null when the engine failed. */
  msPerToken: number | null;
  tokens: number[];
  /** Median time between tokens, ms (steady state; less swayed by other load on the machine). */
  msPerTokenP50?: number;
  firstTokenMs?: number;
  loadMs?: number;
  /** What actually ran (threads granted, execution provider, adapter). */
  ran?: string;
  /** First index where `tokens` differs from the reference engine's at this context; null when equal. */
  firstDifference?: number | null;
  error?: string;
}

/** The bench's JSON: `{"conditions": {...}, "results": [...]}`. */
export interface PeersReport {
  conditions: Record<string, string | number | boolean | string[] | number[]>;
  results: PeerResult[];
}

/**
 * One row per engine and context from `rounds` interleaved sweeps (every engine once per round, so a
 * burst of load from other processes hits all engines alike): the median of the rounds' figures, the
 * tokens of the first round. A failure in any round fails the row; so do tokens that change between
 * rounds (greedy decoding must be deterministic).
 */
export function mergeRounds(rounds: PeerResult[][]): PeerResult[] {
  return rounds[0].map((first) => {
    const same = rounds.map((round) => round.find((r) => r.engine === first.engine && r.context === first.context));
    const failed = same.find((r) => !r || r.msPerToken === null);
    if (failed !== undefined) return { ...first, msPerToken: null, tokens: [], error: failed?.error ?? 'missing in a round' };
    const ok = same as (PeerResult & { msPerToken: number })[];
    const changed = ok.findIndex((r) => firstDifference(r.tokens, first.tokens) !== null);
    if (changed >= 0) return { ...first, msPerToken: null, tokens: first.tokens, error: `tokens differ between rounds 1 and ${changed + 1}` };
    const median = (vs: (number | undefined)[]): number | undefined => (vs.every((v) => v !== undefined) ? (percentile(vs as number[], 0.5) ?? undefined) : undefined);
    return {
      ...first,
      msPerToken: median(ok.map((r) => r.msPerToken)) ?? first.msPerToken,
      msPerTokenP50: median(ok.map((r) => r.msPerTokenP50)),
      firstTokenMs: median(ok.map((r) => r.firstTokenMs)),
      loadMs: median(ok.map((r) => r.loadMs)),
    };
  });
}

/**
 * First index where two greedy continuations differ (a shorter one differs where it ends); null
 * when they are equal.
 */
export function firstDifference(a: readonly number[], b: readonly number[]): number | null {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? null : n;
}

/** Sets `firstDifference` on every successful row against the reference engine's row of its context. */
export function withAgreement(results: PeerResult[]): PeerResult[] {
  return results.map((r) => {
    const ref = results.find((x) => x.engine === REFERENCE_ENGINE && x.context === r.context && x.msPerToken !== null);
    if (r.msPerToken === null || !ref) return r;
    return { ...r, firstDifference: firstDifference(r.tokens, ref.tokens) };
  });
}

/** The human-readable table: one row per engine, ms/token per context, agreement, what ran. */
export function formatPeers(report: PeersReport): string {
  const contexts = [...new Set(report.results.map((r) => r.context))];
  const engines = [...new Set(report.results.map((r) => r.engine))];
  const cell = (engine: string, context: number): string => {
    const r = report.results.find((x) => x.engine === engine && x.context === context);
    if (!r) return '-';
    if (r.msPerToken === null) return 'failed';
    return r.msPerTokenP50 === undefined ? r.msPerToken.toFixed(1) : `${r.msPerToken.toFixed(1)} / ${r.msPerTokenP50.toFixed(1)}`;
  };
  const agreement = (engine: string): string =>
    contexts
      .map((c) => {
        const r = report.results.find((x) => x.engine === engine && x.context === c);
        if (!r || r.msPerToken === null) return '-';
        if (r.firstDifference === undefined) return 'no reference';
        return r.firstDifference === null ? `${r.tokens.length}/${r.tokens.length}` : `differs at ${r.firstDifference}`;
      })
      .join(', ');
  const header = ['engine', ...contexts.map((c) => `ms/token @${c} (mean / p50)`), `same tokens as ${REFERENCE_ENGINE}`];
  const rows = engines.map((e) => [e, ...contexts.map((c) => cell(e, c)), agreement(e)]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const conditions = Object.entries(report.conditions).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : String(v)}`);
  const failures = report.results.filter((r) => r.error).map((r) => `${r.engine} @${r.context} failed: ${r.error}`);
  const ran = engines.map((e) => `${e}: ${report.results.find((r) => r.engine === e && r.ran)?.ran ?? '-'}`);
  return [line(header), ...rows.map(line), '', ...conditions, '', 'what ran:', ...ran, ...failures].join('\n');
}
