// `npm run bench:kernels [-- --json] [--size 2048] [--rows 1,4,16] [--lanes 1] [--seconds 0.4] [--no-stage]`
// Measures, in headless Chromium on the current WebGPU adapter, the matrix-vector kernel's achieved
// bandwidth (weight bytes read / time) for f32 and f16 weights next to a vec4 copy kernel's
// (read + write bytes / time).
import { parseArgs, flag, num, numList, rejectUnknown } from './args.ts';
import { startPageHost } from './page-host.ts';
import type { BenchResult, BenchOptions } from '../../e2e/pages/kernels-bench.ts';

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  rejectUnknown(args, ['json', 'size', 'rows', 'lanes', 'seconds', 'reps', 'no-subgroups', 'no-stage']);
  const opts: BenchOptions = {
    size: num(args, 'size', 2048),
    rows: numList(args, 'rows') ?? [1, 4, 16],
    lanes: numList(args, 'lanes'),
    seconds: num(args, 'seconds', 0.4),
    reps: num(args, 'reps', 5),
    noSubgroups: flag(args, 'no-subgroups'),
    stage: !flag(args, 'no-stage'),
  };
  const host = await startPageHost({ quiet: true });
  let result: BenchResult;
  try {
    const page = await host.newPage();
    await page.goto(`${host.baseUrl}/e2e/harness.html`);
    result = (await page.evaluate(async (o) => {
      const mod = (await import(/* @vite-ignore */ '/e2e/pages/kernels-bench.ts' as string)) as {
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
  const r = result;
  console.log(`adapter: ${r.adapter.description}  features: ${Object.entries(r.adapter.features).filter(([, v]) => v).map(([k]) => k).join(', ')}`);
  console.log(`matrix ${r.size}x${r.size}; ${r.method}`);
  console.log(`${'kernel'.padEnd(44)} ${'ms'.padStart(9)} ${'GB/s'.padStart(8)} ${'vs copy'.padStart(8)}`);
  console.log(`${r.copy.kernel.padEnd(44)} ${r.copy.ms.toFixed(3).padStart(9)} ${r.copy.gbps.toFixed(2).padStart(8)} ${'1.00'.padStart(8)}`);
  for (const m of r.matvec) {
    const name = `matvec ${m.format} R=${m.rows} lanes=${m.lanes}${m.subgroups ? ' subgroups' : ''}`;
    console.log(`${name.padEnd(44)} ${m.ms.toFixed(3).padStart(9)} ${m.gbps.toFixed(2).padStart(8)} ${(m.ratio ?? 0).toFixed(2).padStart(8)}`);
  }
  if (r.stage.length) {
    console.log(`\nwhole-stage forward (embed + layers + head + token), ${r.stage[0].model}, ${r.stage[0].context} committed tokens:`);
    for (const s of r.stage) {
      const prof = (s.profile ?? []).map((p) => `${p.step} ${p.ms.toFixed(1)}`).join(', ');
      console.log(`  ${s.format} R=${String(s.rows).padEnd(3)} ${s.ms.toFixed(1).padStart(8)} ms/forward   [ms per step kind, one submit each: ${prof}]`);
    }
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
