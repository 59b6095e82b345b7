// The leader's loop. One function drives every mode over any Pipeline:
//   specpipe  a new tree level every pipeline step (whenever stage 1 has credit); the verdict of the
//             previous commits travels with it; a miss starts a new epoch and re-injects x alone.
//             The source proposes each level while the previous one is in flight (off the
//             critical path), and the width adapts to its confidence (minBranchRatio).
//   pp        no speculation: one row per trip around the ring.
//   single    pp; meant for a one-stage pipeline (all layers in one tab).
//   tree      SpecInfer/PipeInfer-style rounds: the source builds a static tree of depth D and width
//             K, the whole tree goes through the pipeline as one level, the accepted prefix plus the
//             target's next token are committed, repeat.
// Lossless by construction: the token at position n is always the last stage's choice from the
// target's logits with positionUniform(seed, n); a speculative source only changes when it is known.

import type { LevelPacket, Pipeline, ResultPacket, RowMeta } from '../pipeline/contract.ts';
import { specpipeBound, tbtSummary, tokensPerStep } from './metrics.ts';
import { GREEDY, positionUniform, type SamplingSettings } from './sampling.ts';
import { SlotAllocator } from './slots.ts';
import type { FrontierNode, SourceNode, SpeculativeSource } from './source.ts';
import { TokenTree, type Candidate, type TreeNode } from './tree.ts';

/** Decoding modes: SpecPipe, plain pipeline parallelism, static tree speculation, one stage. */
export type Mode = 'specpipe' | 'pp' | 'tree' | 'single';

export interface GenerateOptions {
  mode: Mode;
  /** Prompt token ids (at least one). */
  prompt: readonly number[];
  maxNewTokens: number;
  /** Generation stops when one of these is committed (it is not included in `tokens`). */
  eosTokens?: readonly number[];
  /** Default greedy, seed 0. */
  sampling?: SamplingSettings;
  /** Request id on the wire (default 1). */
  request?: number;
  /** specpipe / tree: the speculative source. Without one they behave like pp. */
  source?: SpeculativeSource | null;
  /** specpipe: node budget W per step (rows per level). Default 1 (a chain). */
  width?: number;
  /** Candidates per frontier node the tree considers (k). Default: width (specpipe) / treeWidth (tree). */
  candidatesPerNode?: number;
  /**
   * specpipe: the dynamic tree. A step's best guess always goes out; each further one (up to W) only
   * if its path probability is at least this fraction of the best's, so a confident draft makes a
   * chain and an unsure one spends the width. 0 (default): always W.
   */
  minBranchRatio?: number;
  /** specpipe: deepest speculation below the root. Default numStages (deeper never pays off). */
  maxDepth?: number;
  /** tree: depth D of the static tree (default 4). */
  treeDepth?: number;
  /** tree: nodes per tree level K (default 2). */
  treeWidth?: number;
  /** Prompt rows per prefill level (default 64). */
  prefillChunk?: number;
  /**
   * Called for every emitted token, in order. `hit`: the token was an in-flight child of the root
   * (specpipe/tree), so the token after it is already on its way (live views show hits/misses).
   */
  onToken?: (token: number, index: number, hit: boolean) => void;
  signal?: AbortSignal;
  /** Clock in ms (default performance.now). */
  now?: () => number;
}

/** Why a generation ended: end-of-sequence token, length limit, or abort. */
export type StopReason = 'eos' | 'length' | 'abort';

/** How a generation went: timings, hits and misses, tokens per step against the bound, draft cost. */
export interface GenerateMetrics {
  mode: Mode;
  stages: number;
  promptTokens: number;
  /** Committed target tokens, the EOS that stopped generation included. */
  committedTokens: number;
  /** Prompt start to first committed token. */
  ttftMs: number | null;
  /** First emitted token to the last (metrics.ts: the one definition of decode speed). */
  decodeMs: number | null;
  /** Mean time between emitted tokens: decodeMs / (tokens - 1). */
  tbtMeanMs: number | null;
  /** Percentiles of the time between consecutive emitted tokens. */
  tbtP50Ms: number | null;
  tbtP95Ms: number | null;
  totalMs: number;
  /**
   * Pipeline steps: counted by the pipeline's step clock, or measured time over its step time
   * (Pipeline.stepTimeMs); null when it has neither. All, and prompt start to first token.
   */
  steps: number | null;
  stepsToFirstToken: number | null;
  /**
   * Committed tokens after the first / steps from the first to the last commit: on a step clock
   * (the simulator) exact; on a ring this run's own measured step over the mean TBT (the bench
   * measures every mode against pp's step instead).
   */
  tokensPerStep: number | null;
  /**
   * Over committed tokens but the one that ended generation: hits (the target token was an alive
   * in-flight child of the root, which becomes the next root; tree mode: an accepted tree token)
   * and misses. A hit makes the next token one step away, a miss S steps.
   */
  hits: number;
  misses: number;
  hitRate: number | null;
  /** 1 / (p + (1-p) S): tokens per step SpecPipe should reach with hit rate p (pp: p = 0; null for tree, whose law is per round). */
  boundTokensPerStep: number | null;
  /** S / (p + (1-p) S): the matching speedup over PP (null for tree). */
  boundSpeedupOverPp: number | null;
  levelsSent: number;
  rowsSent: number;
  /** Rows whose result came back for a node that had died meanwhile (wasted stage work). */
  staleResults: number;
  /** Epochs started (misses, and tree rounds). */
  epochs: number;
  /** tree mode: rounds and tokens committed per round. */
  treeRounds: number;
  tokensPerRound: number | null;
  draftCalls: number;
  draftMs: number;
  /**
   * specpipe: time stage 1 had room for a level while the leader waited for the draft, in total and
   * per level sent: the draft's time on the critical path, or more (with a level queued at stage 1,
   * part of such a wait overlaps its compute; after a miss the new root's children wait for the draft
   * while stage 1 computes the root). The draft proposes the next level while the current one is in
   * flight, so this stays small when a draft call is shorter than a pipeline step.
   */
  draftWaitMs: number;
  draftWaitPerLevelMs: number | null;
}

export interface GenerateResult {
  /** Emitted tokens (without EOS). */
  tokens: number[];
  stopReason: StopReason;
  metrics: GenerateMetrics;
}

/** KV slots a generation needs beyond its text: the in-flight tree, as generate() reserves them. */
export function reservedSlots(mode: Mode, numStages: number, opts: Pick<GenerateOptions, 'width' | 'maxDepth' | 'treeDepth' | 'treeWidth'> = {}): number {
  if (mode === 'specpipe') return (opts.maxDepth ?? numStages) * (opts.width ?? 1) + 2;
  if (mode === 'tree') return (opts.treeDepth ?? 4) * (opts.treeWidth ?? 2) + 2;
  return 2;
}

function emptyMetrics(mode: Mode, stages: number, promptTokens: number): GenerateMetrics {
  return {
    mode, stages, promptTokens, committedTokens: 0, ttftMs: null, decodeMs: null, tbtMeanMs: null, tbtP50Ms: null, tbtP95Ms: null, totalMs: 0,
    steps: null, stepsToFirstToken: null, tokensPerStep: null, hits: 0, misses: 0, hitRate: null,
    boundTokensPerStep: null, boundSpeedupOverPp: null, levelsSent: 0, rowsSent: 0, staleResults: 0, epochs: 0,
    treeRounds: 0, tokensPerRound: null, draftCalls: 0, draftMs: 0, draftWaitMs: 0, draftWaitPerLevelMs: null,
  };
}

function abortError(): Error {
  const e = new Error('generation aborted');
  e.name = 'AbortError';
  return e;
}

/** Runs one generation over `pipeline`. Never throws on abort: returns stopReason 'abort'. */
export async function generate(pipeline: Pipeline, o: GenerateOptions): Promise<GenerateResult> {
  const n = o.prompt.length;
  if (n < 1) throw new Error('generate: empty prompt');
  const S = pipeline.numStages;
  const mode = o.mode;
  const sampling = o.sampling ?? GREEDY;
  const request = o.request ?? 1;
  const now = o.now ?? (() => performance.now());
  const source = mode === 'specpipe' || mode === 'tree' ? (o.source ?? null) : null;
  const W = Math.max(1, Math.floor(o.width ?? 1));
  const D = Math.max(1, Math.floor(o.treeDepth ?? 4));
  const K = Math.max(1, Math.floor(o.treeWidth ?? 2));
  const k = Math.max(1, Math.floor(o.candidatesPerNode ?? (mode === 'tree' ? K : W)));
  const maxDepth = Math.max(1, Math.floor(o.maxDepth ?? S));
  const chunk = Math.max(1, Math.floor(o.prefillChunk ?? 64));
  const reserve = reservedSlots(mode, S, { width: W, maxDepth, treeDepth: D, treeWidth: K });
  const maxLen = Math.min(n + Math.max(0, o.maxNewTokens), pipeline.numSlots - reserve);
  if (o.maxNewTokens <= 0) return { tokens: [], stopReason: 'length', metrics: emptyMetrics(mode, S, n) };
  if (n >= pipeline.numSlots - reserve) throw new Error(`generate: prompt of ${n} tokens does not fit ${pipeline.numSlots} KV slots with ${reserve} reserved`);
  const eos = new Set(o.eosTokens ?? []);
  const t0 = now();
  const step0 = pipeline.stepCount();

  const m = emptyMetrics(mode, S, n);
  const tokens: number[] = [];
  let stop: StopReason | null = null;

  const alloc = new SlotAllocator(pipeline.numSlots);
  const tree = new TokenTree({ allocator: alloc, eosTokens: o.eosTokens, maxDepth: mode === 'tree' ? D : maxDepth, maxPosition: maxLen - 2, idBase: n });
  const promptSlots = o.prompt.map(() => alloc.alloc()!);
  tree.reset(o.prompt[n - 1], n - 1, promptSlots[n - 1]);
  const rootOfPrompt = tree.root;
  rootOfPrompt.injected = true; // with the last prefill level, which goes out before anything else

  await pipeline.begin({ request, temperature: sampling.temperature, topK: sampling.topK, topP: sampling.topP });
  if (source) await source.begin({ request, prompt: o.prompt, slots: promptSlots, signal: o.signal });

  const inbox: ResultPacket[] = [];
  const unsubscribe = pipeline.onResult((r) => {
    if (r.request === request) inbox.push(r);
  });
  const results = new Map<number, number>();
  let inFlight = 0;
  let levelStep = 0;
  let lastEpochSent = -1;
  const commitTimes: number[] = [];
  const commitSteps: number[] = [];
  const emitTimes: number[] = [];

  const send = (rows: RowMeta[]): void => {
    const verdict = alloc.hasPending || tree.epoch !== lastEpochSent ? alloc.takeVerdict(tree.epoch) : null;
    lastEpochSent = tree.epoch;
    const level: LevelPacket = { request, step: levelStep++, epoch: tree.epoch, verdict, rows, hidden: null, logitsRows: [] };
    pipeline.send(level);
    inFlight++;
    m.levelsSent++;
    m.rowsSent += rows.length;
  };
  const rowOf = (node: TreeNode): RowMeta => {
    node.injected = true;
    return { node: node.id, token: node.token, position: node.position, slot: node.slot, ancestors: tree.ancestorSlots(node), uniform: positionUniform(sampling.seed, node.position + 1) };
  };
  const view = (node: TreeNode): SourceNode => ({ node: node.id, token: node.token, position: node.position, slot: node.slot });
  const frontierView = (node: TreeNode): FrontierNode => {
    const path = tree.path(node);
    path.pop();
    return { ...view(node), path: path.map(view) };
  };
  // Every call into the source runs in the order the scheduler issues it (the draft's KV mirrors the
  // tree), but the scheduler only waits for a proposal when it needs one: commits are queued.
  let sourceChain: Promise<void> = Promise.resolve();
  let sourceError: unknown = null;
  const onSource = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = sourceChain.then(fn);
    sourceChain = p.then(
      () => undefined,
      (e: unknown) => {
        sourceError ??= e;
      },
    );
    return p;
  };
  const askSource = (frontier: TreeNode[]): Promise<Candidate[][]> => {
    const views = frontier.map(frontierView);
    return onSource(async () => {
      const t = now();
      const c = await source!.propose(views, k, o.signal);
      m.draftCalls++;
      m.draftMs += now() - t;
      return c;
    });
  };
  const propose = async (frontier: TreeNode[], budget: number): Promise<TreeNode[]> => {
    const cands = frontier.length ? await askSource(frontier) : [];
    return tree.expand(frontier, cands, budget, k);
  };

  // specpipe: the next level's proposal, started as soon as the current frontier is known (the
  // predicted verdict: nothing pruned) and used for whichever of its nodes are still alive.
  interface Ahead {
    nodes: TreeNode[];
    candidates: Candidate[][] | null;
    done: boolean;
    settled: Promise<void>;
  }
  let ahead = null as Ahead | null; // (a cast: closures reassign it, so no narrowing to null)
  const asked = new Set<number>();
  const proposeAhead = (): void => {
    if (ahead && !ahead.nodes.some((n) => n.alive)) ahead = null; // a miss killed them all: its result is of no use
    if (ahead) return;
    const nodes = tree.frontier().filter((f) => !asked.has(f.id));
    if (!nodes.length) return;
    for (const f of nodes) asked.add(f.id);
    const a: Ahead = { nodes, candidates: null, done: false, settled: Promise.resolve() };
    a.settled = askSource(nodes).then(
      (c) => {
        a.candidates = c;
      },
      () => undefined, // sourceError holds it
    ).finally(() => {
      a.done = true;
    });
    ahead = a;
  };
  /** The best level available now: the ready proposal's children, else leaves' leftover candidates. */
  const nextLevel = (budget: number): TreeNode[] => {
    const frontier: TreeNode[] = [];
    const cands: Candidate[][] = [];
    if (ahead?.candidates) {
      const a = ahead;
      ahead = null;
      a.nodes.forEach((n, i) => {
        if (!n.alive) return;
        frontier.push(n);
        cands.push(a.candidates![i]);
      });
    }
    return tree.expand(frontier, cands, budget, k, o.minBranchRatio ?? 0);
  };

  // prefill levels: rows in causal order; a row's ancestors are the earlier rows of its level, and
  // the previous level's slots are committed by the verdict that travels with the next level.
  const prefill: RowMeta[][] = [];
  for (let start = 0; start < n; start += chunk) {
    const rows: RowMeta[] = [];
    for (let i = start; i < Math.min(n, start + chunk); i++) {
      rows.push({ node: i === n - 1 ? rootOfPrompt.id : i, token: o.prompt[i], position: i, slot: promptSlots[i], ancestors: promptSlots.slice(start, i), uniform: positionUniform(sampling.seed, i + 1) });
    }
    prefill.push(rows);
  }
  const sendPrefill = (): void => {
    const rows = prefill.shift()!;
    send(rows);
    for (const r of rows) if (r.slot !== rootOfPrompt.slot) alloc.commit(r.slot);
  };

  const absorb = (): void => {
    for (const r of inbox.splice(0)) {
      inFlight--;
      r.nodes.forEach((id, i) => {
        const node = tree.get(id);
        if (node && node.injected) results.set(id, r.tokens[i]);
        else if (id >= n) m.staleResults++;
      });
    }
  };

  const commitReady = (): void => {
    while (!stop) {
      const x = results.get(tree.root.id);
      if (x === undefined) return;
      results.delete(tree.root.id);
      const out = tree.commit(x);
      for (const d of out.deadNodes) results.delete(d);
      if (!out.hit) m.epochs++;
      m.committedTokens++;
      commitTimes.push(now());
      commitSteps.push(pipeline.stepCount() ?? 0);
      if (eos.has(x)) stop = 'eos';
      else {
        tokens.push(x);
        emitTimes.push(commitTimes[commitTimes.length - 1]);
        o.onToken?.(x, tokens.length - 1, out.hit);
        if (tokens.length >= o.maxNewTokens || out.position >= maxLen - 1) stop = 'length';
      }
      // A commit's hit decides how long the NEXT token takes (its root is already in flight or
      // not), so the commit that ends generation is not counted.
      if (!stop) {
        if (out.hit) m.hits++;
        else m.misses++;
      }
      if (source) {
        const event = { token: x, position: out.position, hit: out.hit, root: view(out.root), committedSlot: out.committedSlot, releasedSlots: out.releasedSlots, epoch: out.epoch };
        onSource(() => source.commit(event)).catch(() => undefined); // sourceError holds it
      }
    }
  };

  // A step-clocked pipeline (the simulator) models an instant draft: wait for the draft alone, or
  // its clock would run while the draft thinks. A real one also wakes on results and credit.
  const clocked = step0 !== null;
  const settledOrNextTask = async (p: Promise<void>): Promise<void> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([p, new Promise<void>((resolve) => (timer = setTimeout(resolve, 0)))]);
    clearTimeout(timer);
  };
  const waitForDraftOrProgress = async (a: Ahead): Promise<void> => {
    const draft = a.settled;
    await settledOrNextTask(draft);
    if (a.done) return;
    if (clocked) return draft;
    const wake = new AbortController();
    const stopWaiting = (): void => wake.abort();
    o.signal?.addEventListener('abort', stopWaiting, { once: true });
    void draft.then(stopWaiting);
    try {
      await pipeline.waitForProgress(wake.signal);
    } finally {
      o.signal?.removeEventListener('abort', stopWaiting);
    }
  };
  try {
    for (;;) {
      if (sourceError) throw sourceError;
      if (o.signal?.aborted) stop = 'abort';
      absorb();
      commitReady();
      if (o.signal?.aborted) stop = 'abort';
      if (stop) break;
      let sent = false;
      let draftBound = false;
      while (!stop && pipeline.credit() > 0) {
        if (prefill.length) {
          sendPrefill();
          sent = true;
          continue;
        }
        const root = tree.root;
        if (mode === 'tree' && source) {
          if (inFlight > 0) break; // one round at a time: the whole tree is one level
          const rows: TreeNode[] = root.injected ? [] : [root];
          for (let d = 0; d < D; d++) {
            if (!tree.canGrow()) break;
            rows.push(...(await propose(tree.frontier(), K)));
            if (o.signal?.aborted) throw abortError();
          }
          if (!rows.length) break; // nothing to verify: wait for the root's result
          send(rows.map(rowOf));
          m.treeRounds++;
          sent = true;
          continue;
        }
        if (!root.injected) {
          send([rowOf(root)]);
          sent = true;
          continue;
        }
        if (mode === 'specpipe' && source) {
          // The tree below the root holds at most maxDepth * W guesses (what reservedSlots counts):
          // beyond that the best leaves are at the depth limit and only long shots remain.
          const room = maxDepth * W - (tree.size - 1);
          if (room <= 0 || !tree.canGrow()) break;
          if (ahead && !ahead.candidates) {
            // A draft that finishes right away (or a simulated one) is worth the wait of a task.
            const t = now();
            await settledOrNextTask(ahead.settled);
            m.draftWaitMs += now() - t;
          }
          const level = nextLevel(Math.min(W, room));
          proposeAhead();
          if (!level.length) {
            draftBound = ahead !== null; // stage 1 has credit and waits for the draft
            break;
          }
          send(level.map(rowOf));
          proposeAhead();
          sent = true;
          continue;
        }
        break;
      }
      if (mode === 'specpipe' && source) proposeAhead();
      // A stall: stage 1 has room, nothing is in flight or pending, and still nothing to send. (With
      // no credit, a result can arrive before stage 1's credit report on a ring: wait for it.)
      if (!sent && inFlight === 0 && !results.has(tree.root.id) && !draftBound && pipeline.credit() > 0) throw new Error('generate: stalled (nothing in flight, nothing to send)');
      // results that arrived while the source was thinking are handled without waiting
      if (inbox.length > 0) continue;
      if (draftBound && ahead) {
        const t = now();
        await waitForDraftOrProgress(ahead);
        m.draftWaitMs += now() - t;
      } else await pipeline.waitForProgress(o.signal);
    }
  } catch (e) {
    if (!(e instanceof Error && e.name === 'AbortError')) {
      unsubscribe();
      throw e;
    }
    stop = 'abort';
  }

  // Drop the tree: the root's slot is committed if its row went out, everything else is released;
  // an empty level carries that verdict to every stage.
  tree.finish();
  send([]);
  unsubscribe();
  if (source) {
    await sourceChain;
    await source.end();
  }

  const end = now();
  m.totalMs = end - t0;
  if (commitTimes.length) m.ttftMs = commitTimes[0] - t0;
  const tbt = tbtSummary(emitTimes);
  m.decodeMs = tbt.decodeMs;
  m.tbtMeanMs = tbt.meanMs;
  m.tbtP50Ms = tbt.p50Ms;
  m.tbtP95Ms = tbt.p95Ms;
  const stepNow = pipeline.stepCount();
  if (stepNow !== null && step0 !== null) {
    m.steps = stepNow - step0;
    if (commitSteps.length) m.stepsToFirstToken = commitSteps[0] - step0;
    const span = commitSteps.length > 1 ? commitSteps[commitSteps.length - 1] - commitSteps[0] : 0;
    if (span > 0) m.tokensPerStep = (commitSteps.length - 1) / span;
  } else {
    const stepMs = pipeline.stepTimeMs?.() ?? null;
    if (stepMs) {
      m.steps = m.totalMs / stepMs;
      if (m.ttftMs !== null) m.stepsToFirstToken = m.ttftMs / stepMs;
      m.tokensPerStep = tokensPerStep(stepMs, m.tbtMeanMs);
    }
  }
  if (m.hits + m.misses > 0) {
    const p = m.hits / (m.hits + m.misses);
    m.hitRate = p;
    if (mode !== 'tree') {
      const b = specpipeBound(p, S);
      m.boundTokensPerStep = b.tokensPerStep;
      m.boundSpeedupOverPp = b.speedupOverPp;
    }
  }
  if (m.treeRounds > 0) m.tokensPerRound = m.committedTokens / m.treeRounds;
  if (mode === 'specpipe' && source && m.levelsSent > 0) m.draftWaitPerLevelMs = m.draftWaitMs / m.levelsSent;
  return { tokens, stopReason: stop ?? 'length', metrics: m };
}
