// Options and text table of the kernel benchmark (`npm run bench:kernels`, `npm run gpu:node -- bench`).
import type { BenchResult, BenchOptions } from '../gpu/kernel-bench.ts';
import { flag, num, numList, type Args } from '../common/args.ts';

export const BENCH_ARGS = ['size', 'rows', 'lanes', 'seconds', 'reps', 'no-subgroups', 'no-stage', 'no-decode', 'contexts'];

export function benchOptions(args: Args): BenchOptions {
  return {
    size: num(args, 'size', 2048),
    rows: numList(args, 'rows') ?? [1, 4, 16],
    lanes: numList(args, 'lanes'),
    seconds: num(args, 'seconds', 0.4),
    reps: num(args, 'reps', 5),
    noSubgroups: flag(args, 'no-subgroups'),
    stage: !flag(args, 'no-stage'),
    decode: !flag(args, 'no-decode'),
    contexts: numList(args, 'contexts'),
  };
}

export function formatBench(r: BenchResult): string {
  const lines: string[] = [];
  lines.push(`adapter: ${r.adapter.description}  features: ${Object.entries(r.adapter.features).filter(([, v]) => v).map(([k]) => k).join(', ')}`);
  lines.push(`matrix ${r.size}x${r.size}; ${r.method}`);
  lines.push(`${'kernel'.padEnd(44)} ${'ms'.padStart(9)} ${'GB/s'.padStart(8)} ${'vs copy'.padStart(8)}`);
  lines.push(`${r.copy.kernel.padEnd(44)} ${r.copy.ms.toFixed(3).padStart(9)} ${r.copy.gbps.toFixed(2).padStart(8)} ${'1.00'.padStart(8)}`);
  for (const m of r.matvec) {
    const name = `matvec ${m.format} R=${m.rows} lanes=${m.lanes}${m.subgroups ? ' subgroups' : ''}`;
    lines.push(`${name.padEnd(44)} ${m.ms.toFixed(3).padStart(9)} ${m.gbps.toFixed(2).padStart(8)} ${(m.ratio ?? 0).toFixed(2).padStart(8)}`);
  }
  if (r.stage.length) {
    lines.push('', `whole-stage forward (embed + layers + head + token), ${r.stage[0].model}, ${r.stage[0].context} committed tokens:`);
    for (const s of r.stage) {
      const prof = (s.profile ?? []).map((p) => `${p.step} ${p.ms.toFixed(1)}`).join(', ');
      lines.push(`  ${s.format} R=${String(s.rows).padEnd(3)} ${s.ms.toFixed(1).padStart(8)} ms/forward   [ms per step kind, one submit each: ${prof}]`);
    }
  }
  if (r.gemvCopyRatio !== undefined) lines.push('', `1-row f32 matvec / copy: ${r.gemvCopyRatio.toFixed(2)}`);
  if (r.decode) {
    lines.push('', `decode, one row after 64 tokens, ${r.decode.model}; ${r.decode.rounds} interleaved rounds:`);
    for (const p of r.decode.paths) {
      lines.push(
        `  ${p.path.padEnd(60)} median ${p.ms.toFixed(2).padStart(7)} ms x${p.speedup.toFixed(2)}, fastest ${p.minMs.toFixed(2).padStart(7)} ms x${p.minSpeedup.toFixed(2)}; ${p.dispatchesPerLayer} dispatches/layer, ${p.dispatches} in all; KV ${p.kvBytes} bytes`,
      );
    }
  }
  if (r.attention?.length) {
    lines.push('', 'attention, one row (8 heads / 4 KV heads, head size 32): plain vs split-K (+ reduce):');
    for (const a of r.attention) {
      lines.push(`  context ${String(a.context).padStart(5)} ${a.variant} KV ${a.kvDtype}: plain ${a.plainMs.toFixed(3)} ms, split ${a.splitMs.toFixed(3)} ms (${a.splits} splits)`);
    }
  }
  return lines.join('\n');
}
