// `npm run bench:kernels [-- --json] [--size 2048] [--rows 1,4,16] [--lanes 1] [--seconds 0.4] [--no-stage] [--no-decode] [--contexts 64,1024,4096]`
// Measures, in headless Chromium on the current WebGPU adapter (`npm run gpu:node -- bench` runs the
// same code in Node on any Vulkan adapter), the matrix-vector kernel's achieved
// bandwidth (weight bytes read / time) for f32 and f16 weights next to a vec4 copy kernel's
// (read + write bytes / time), the decode paths side by side (dispatches per layer, the path before
// issue 13 next to the fused default) and attention plain vs split-K at several contexts.
import { parseArgs, flag, rejectUnknown } from '../common/args.ts';
import { startPageHost } from './page-host.ts';
import { formatBench, benchOptions, BENCH_ARGS } from './bench-report.ts';
import type { BenchResult } from '../gpu/kernel-bench.ts';

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  rejectUnknown(args, ['json', ...BENCH_ARGS]);
  const opts = benchOptions(args);
  const host = await startPageHost({ quiet: true });
  let result: BenchResult;
  try {
    const page = await host.newPage();
    await page.goto(`${host.baseUrl}/e2e/harness.html`);
    result = (await page.evaluate(async (o) => {
      const mod = (await import(/* @vite-ignore */ '/src/gpu/kernel-bench.ts' as string)) as {
        benchKernels(o: unknown): Promise<unknown>;
      };
      return mod.benchKernels(o);
    }, opts)) as BenchResult;
  } finally {
    await host.close();
  }
  if (flag(args, 'json')) {
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  console.log(formatBench(result));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
