// The kernel correctness suite: which check of e2e/pages/kernels.ts runs with which argument, and
// what passes. Shared by e2e/kernels.spec.ts (checks run in headless Chromium) and
// e2e/node-gpu/node-gpu-main.ts (checks run in Node on the `webgpu` package, e.g. on a real GPU).
// Pure data and judging: this module imports nothing that needs a GPU or Vite.

export interface Check {
  name: string;
  maxErr: number;
  tol: number;
  ok: boolean;
}

export interface Verdict {
  /** Empty when the case passes; otherwise what failed (printed as JSON). */
  failures: unknown[];
  /** One or more lines worth printing whether or not the case passes. */
  log?: string;
}

export interface SuiteCase {
  title: string;
  /** Export of e2e/pages/kernels.ts to call. */
  fn: string;
  arg?: unknown;
  judge(result: unknown): Verdict;
}

function checks(r: unknown): Verdict {
  const cs = r as Check[];
  const ratio = (c: Check) => (c.tol ? c.maxErr / c.tol : c.maxErr);
  const worst = cs.reduce((a, c) => (ratio(c) > ratio(a) ? c : a), cs[0]);
  return { failures: cs.filter((c) => !c.ok), log: `${cs.length} checks, worst error/tolerance ${ratio(worst).toExponential(2)} (${worst.name})` };
}

interface StageCompare {
  name: string;
  maxErr: number;
  maxLogit: number;
  tokensEqual: boolean;
}

function stageVsReference(r: unknown, tol = 1e-3): Verdict {
  const xs = r as StageCompare[];
  return {
    failures: xs.filter((x) => !(x.maxErr < tol) || !x.tokensEqual),
    log: xs.map((x) => `${x.name}: max |logit err| ${x.maxErr.toExponential(2)} (max |logit| ${x.maxLogit.toFixed(2)})${x.tokensEqual ? '' : ' TOKENS DIFFER'}`).join('\n'),
  };
}

function noDiffering(r: unknown): Verdict {
  const x = r as { differing: number; maxErr: number };
  return { failures: x.differing === 0 ? [] : [x], log: `differing ${x.differing}, max |err| ${x.maxErr.toExponential(2)}` };
}

function tree(r: unknown, tol = 1e-3): Verdict {
  const x = r as { rows: number; differing: number; maxErr: number; refMaxErr: number };
  // Three root-to-leaf paths of three nodes.
  const ok = x.rows === 9 && x.differing === 0 && x.refMaxErr < tol;
  return { failures: ok ? [] : [x], log: JSON.stringify(x) };
}

const variants = { format: 'f16', gpuVariants: true };
/** Stage paths other than the adapter's default: unfused, f16 KV cache, split-K attention from 2 entries per split, f16 in the kernels. */
const paths = [
  { name: 'unfused (8 dispatches per layer)', opts: { fused: false } },
  { name: 'f16 KV cache', opts: { kvDtype: 'f16' }, tol: 1e-2 },
  { name: 'split-K attention', opts: { attentionSplit: 2 } },
  { name: 'f16 weights widened in the kernels, 64-thread matmul groups', opts: { widenF16: false, matmulWorkgroup: 64 } },
];

function quantBytes(r: unknown): Verdict {
  const xs = r as { format: string; weightBytes: number; projectionBytes: number; ratio: number }[];
  // Q4_0: 18 bytes per 32 weights (0.28x of f16), Q8_0: 34 (0.53x).
  const limit: Record<string, number> = { f16: 1, q8_0: 0.55, q4_0: 0.3 };
  return {
    failures: xs.filter((x) => !(x.ratio <= limit[x.format])),
    log: xs.map((x) => `${x.format}: projections ${x.projectionBytes} bytes (${x.ratio.toFixed(4)}x of f16), all weights ${x.weightBytes} bytes`).join('\n'),
  };
}

export const KERNEL_SUITE: SuiteCase[] = [
  { title: 'matmul (f32, f16; bias, residual, gated; odd shapes; 1..64 rows)', fn: 'testMatmul', judge: checks },
  { title: 'matmul with Q8_0 / Q4_0 blocks vs the CPU reference of the same blocks (bias, residual, gated; odd output sizes; 1, 3, 17, 64 rows)', fn: 'testMatmulQuant', judge: checks },
  { title: 'embedding, rmsnorm, rope + KV write', fn: 'testSmallKernels', judge: checks },
  { title: 'f16 widening (weights and block scales): every finite half, exact', fn: 'testHalfWidening', judge: checks },
  { title: 'broken WGSL: ShaderCompileError with file:line:column; every kernel variant compiles', fn: 'testShaderCompileErrors', judge: checks },
  { title: 'attention over committed + ancestor + own slots (GQA, long lists)', fn: 'testAttention', judge: checks },
  {
    title: 'sampling: argmax, temperature, top-k, top-p match the CPU reference',
    fn: 'testSampling',
    judge(r) {
      const x = r as { checked: number; skipped: number; mismatches: string[] };
      return {
        failures: [...x.mismatches, ...(x.checked > 100 ? [] : [`only ${x.checked} rows checked`])],
        log: `sampling: ${x.checked} rows checked, ${x.skipped} skipped as boundary cases`,
      };
    },
  },
  {
    title: 'matmul rows are bitwise batch-independent',
    fn: 'testMatmulBatchIndependence',
    judge(r) {
      const xs = r as { name: string; differing: number }[];
      return { failures: xs.filter((x) => x.differing > 0), log: `${xs.length} configurations` };
    },
  },
  ...(['f32', 'f16'] as const).flatMap((format): SuiteCase[] => [
    { title: `stage forward vs CPU reference (${format})`, fn: 'testStageVsReference', arg: { format }, judge: stageVsReference },
    { title: `stage batch independence: a row alone == inside 64 rows (${format})`, fn: 'testStageBatchIndependence', arg: { format }, judge: noDiffering },
    { title: `tree attention in one batch == each root-to-leaf path as a sequence (${format})`, fn: 'testTreeAttention', arg: { format }, judge: tree },
    { title: `stage split [0,2)+[2,4) == one stage [0,4) (${format})`, fn: 'testStageSplit', arg: { format }, judge: noDiffering },
  ]),
  ...(['q8_0', 'q4_0'] as const).flatMap((quant): SuiteCase[] => [
    { title: `stage forward with ${quant} projections vs CPU reference on the same blocks`, fn: 'testStageVsReference', arg: { format: 'f16', quant }, judge: stageVsReference },
    { title: `stage batch independence (${quant})`, fn: 'testStageBatchIndependence', arg: { format: 'f16', quant }, judge: noDiffering },
    { title: `GPU kernel variants: stage with ${quant} projections vs reference`, fn: 'testStageVsReference', arg: { ...variants, quant }, judge: stageVsReference },
  ]),
  { title: 'GPU weight bytes: Q4_0 projections <= 0.3x of f16, Q8_0 <= 0.55x', fn: 'testQuantBytes', judge: quantBytes },
  { title: 'top-k candidates on the GPU == logSoftmax + topKIndices on the CPU (ties, k 1..16, temperatures)', fn: 'testTopK', judge: checks },
  {
    title: 'dispatches: 5 per layer fused for any row count (6 with split-K), KV bytes halved in f16',
    fn: 'testDispatchCounts',
    judge(r) {
      const xs = r as { name: string; got: number; want: number }[];
      return { failures: xs.filter((x) => x.got !== x.want), log: xs.map((x) => `${x.name}: ${x.got}`).join('\n') };
    },
  },
  { title: 'stage candidates (GPU top-k after the head) vs the CPU on the same logits', fn: 'testStageCandidates', arg: { format: 'f16' }, judge: checks },
  { title: 'GPU kernel variants: stage candidates', fn: 'testStageCandidates', arg: variants, judge: checks },
  // f16 KV cache: K and V rounded to halves (relative error <= 2^-11), so logits within 1e-2 of the f32 reference here.
  ...paths.flatMap((p): SuiteCase[] => [
    { title: `stage forward vs CPU reference, ${p.name}${p.tol ? ` (tolerance ${p.tol})` : ''}`, fn: 'testStageVsReference', arg: { format: 'f16', opts: p.opts }, judge: (r) => stageVsReference(r, p.tol) },
    { title: `stage batch independence, ${p.name}`, fn: 'testStageBatchIndependence', arg: { format: 'f16', opts: p.opts }, judge: noDiffering },
    { title: `tree attention == root-to-leaf paths, ${p.name}`, fn: 'testTreeAttention', arg: { format: 'f16', opts: p.opts }, judge: (r) => tree(r, p.tol) },
  ]),
  { title: 'Qwen2-style stage (q/k/v bias, tied embeddings) vs CPU reference', fn: 'testStageVsReference', arg: { format: 'f16', qwen: true, tied: true }, judge: stageVsReference },
  { title: 'GPU kernel variants (GPU default lanes per output, workgroup attention): stage vs reference', fn: 'testStageVsReference', arg: variants, judge: stageVsReference },
  { title: 'GPU kernel variants: stage batch independence', fn: 'testStageBatchIndependence', arg: variants, judge: noDiffering },
  { title: 'GPU kernel variants: tree attention == root-to-leaf paths', fn: 'testTreeAttention', arg: variants, judge: tree },
];
