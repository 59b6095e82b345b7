// The kernel suite (e2e/pages/kernel-suite.ts) and the kernel benchmark (src/gpu/kernel-bench.ts)
// in Node, on WebGPU from the `webgpu` package (Dawn; Vulkan on Linux), so on whatever Vulkan driver
// the machine has: SwiftShader here, a real GPU elsewhere. The checks and the benchmark are the very
// code the browser pages run; only navigator.gpu comes from Dawn instead of Chromium.
//
// Loaded by e2e/node-gpu/node-gpu.ts (through Vite, for the shaders' `?raw` imports), or bundled by
// `npm run gpu:node -- bundle DIR` into DIR/node-gpu.mjs, which runs with a bare `node` and
// DIR/node_modules/webgpu (copied beside it): `node DIR/node-gpu.mjs info test bench [options]`.
import { pathToFileURL } from 'node:url';
import { writeFileSync } from 'node:fs';
import { installWebGpu } from '../../src/cli/dawn.ts';
import { parseArgs, flag, str, rejectUnknown, type Args } from '../../src/common/args.ts';
import { benchOptions, formatBench, BENCH_ARGS } from '../../src/cli/bench-report.ts';
import { KERNEL_SUITE } from '../pages/kernel-suite.ts';
import * as kernelChecks from '../pages/kernels.ts';
import { benchKernels, type BenchResult } from '../../src/gpu/kernel-bench.ts';

export const USAGE = `usage: node-gpu [info] [test] [bench] [--json FILE] [--only TEXT] [--dawn FLAG,FLAG] [bench options: --${BENCH_ARGS.join(' --')}]
  info   adapter, driver, features and limits
  test   the kernel correctness suite (e2e/pages/kernel-suite.ts), exit code 1 if a case fails
  bench  the kernel benchmark (matvec vs copy bandwidth, whole-stage forwards)
Vulkan: the loader's VK_DRIVER_FILES / VK_ICD_FILENAMES pick the driver.`;

export interface CaseResult {
  title: string;
  ok: boolean;
  ms: number;
  log?: string;
  failures: unknown[];
  error?: string;
  result?: unknown;
}

export interface NodeGpuReport {
  date: string;
  node: string;
  dawnFlags: string[];
  adapter?: unknown;
  tests?: { passed: number; failed: number; cases: CaseResult[] };
  bench?: BenchResult;
}

async function adapterInfo(): Promise<Record<string, unknown>> {
  const a = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!a) throw new Error('WebGPU: no adapter (is a Vulkan driver installed and found? see VK_DRIVER_FILES)');
  const i = a.info as GPUAdapterInfo & Record<string, unknown>;
  const info: Record<string, unknown> = {};
  for (const k of ['vendor', 'architecture', 'device', 'description', 'subgroupMinSize', 'subgroupMaxSize', 'isFallbackAdapter']) info[k] = i[k];
  const limits: Record<string, number> = {};
  for (const k of ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupsPerDimension', 'maxStorageBuffersPerShaderStage']) {
    limits[k] = (a.limits as unknown as Record<string, number>)[k];
  }
  return { info, features: [...a.features].sort(), limits };
}

async function runSuite(only: string | undefined): Promise<NonNullable<NodeGpuReport['tests']>> {
  const fns = kernelChecks as unknown as Record<string, (arg: unknown) => Promise<unknown>>;
  const cases: CaseResult[] = [];
  for (const c of KERNEL_SUITE) {
    if (only && !c.title.includes(only)) continue;
    const t0 = performance.now();
    let r: CaseResult;
    try {
      const result = await fns[c.fn](c.arg);
      const v = c.judge(result);
      r = { title: c.title, ok: v.failures.length === 0, ms: performance.now() - t0, log: v.log, failures: v.failures, result };
    } catch (e) {
      r = { title: c.title, ok: false, ms: performance.now() - t0, failures: [], error: e instanceof Error ? (e.stack ?? e.message) : String(e) };
    }
    cases.push(r);
    console.log(`${r.ok ? 'PASS' : 'FAIL'} ${c.title} (${(r.ms / 1000).toFixed(1)} s)`);
    if (r.log) console.log('  ' + r.log.split('\n').join('\n  '));
    if (r.error) console.log('  error: ' + r.error);
    if (r.failures.length) console.log('  failures: ' + JSON.stringify(r.failures.slice(0, 20), null, 1).split('\n').join('\n  '));
  }
  const passed = cases.filter((c) => c.ok).length;
  const failed = cases.length - passed;
  console.log(`${passed} passed, ${failed} failed`);
  return { passed, failed, cases };
}

export async function main(argv: string[]): Promise<number> {
  const commands: string[] = [];
  while (argv.length && !argv[0].startsWith('--')) commands.push(argv.shift()!);
  let args: Args;
  try {
    args = parseArgs(argv);
    rejectUnknown(args, ['json', 'only', 'dawn', 'help', ...BENCH_ARGS]);
    for (const c of commands) if (!['info', 'test', 'bench'].includes(c)) throw new Error(`unknown command ${c}`);
  } catch (e) {
    console.error(`${e instanceof Error ? e.message : e}\n${USAGE}`);
    return 2;
  }
  if (flag(args, 'help') || !commands.length) {
    console.log(USAGE);
    return commands.length ? 0 : 2;
  }
  const dawnFlags = args.has('dawn') ? str(args, 'dawn').split(',') : [];
  installWebGpu(dawnFlags);
  const report: NodeGpuReport = { date: new Date().toISOString(), node: process.version, dawnFlags };
  const save = () => {
    if (args.has('json')) writeFileSync(str(args, 'json'), JSON.stringify(report, null, 1) + '\n');
  };
  let code = 0;
  report.adapter = await adapterInfo();
  if (commands.includes('info')) console.log(JSON.stringify(report.adapter, null, 1));
  else console.log(`adapter: ${JSON.stringify((report.adapter as { info: unknown }).info)}`);
  save();
  if (commands.includes('test')) {
    report.tests = await runSuite(args.has('only') ? str(args, 'only') : undefined);
    if (report.tests.failed) code = 1;
    save();
  }
  if (commands.includes('bench')) {
    report.bench = await benchKernels(benchOptions(args));
    console.log(formatBench(report.bench));
    save();
  }
  return code;
}

// Run when this file (bundled) is the program.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(e instanceof Error ? (e.stack ?? e.message) : e);
      process.exit(1);
    },
  );
}
