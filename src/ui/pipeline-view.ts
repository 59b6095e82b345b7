// The pipeline picture: which level (tree level / pipeline step) each stage computed, coloured by
// epoch (a miss starts a new epoch), plus the stream of hits and misses. Pure SVG: tested in Node.
import type { PacketTrace } from '../pipeline/stage-runner.ts';
import { rect, svgDoc, text } from './svg.ts';

export interface PipelineTrace {
  stages: number;
  packets: { stage: number; packet: PacketTrace }[];
  /** Committed tokens in order: hit = the next one was already in flight. */
  commits: boolean[];
}

const EPOCH_COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#b07aa1', '#76b7b2', '#edc948'];
const CELL = 22;
const LEFT = 64;

/** The last `columns` levels across all stages, and the last `2 * columns` commits. */
export function pipelineSvg(trace: PipelineTrace, columns = 24): string {
  const steps = [...new Set(trace.packets.map((p) => p.packet.step))].sort((a, b) => a - b).slice(-columns);
  const col = new Map(steps.map((s, i) => [s, i]));
  const width = LEFT + columns * CELL + 8;
  const gridBottom = 18 + trace.stages * CELL;
  const height = gridBottom + 50;
  let body = text(LEFT, 12, 'level (pipeline step) →', 'fill="#555"');
  for (let s = 0; s < trace.stages; s++) body += text(4, 18 + s * CELL + 15, `stage ${s + 1}`);
  for (const { stage, packet: p } of trace.packets) {
    const c = col.get(p.step);
    if (c === undefined) continue;
    const x = LEFT + c * CELL;
    const y = 18 + stage * CELL;
    const dead = p.rowsComputed === 0;
    const fill = dead ? '#ddd' : EPOCH_COLORS[p.epoch % EPOCH_COLORS.length];
    const tip = `<title>step ${p.step}, epoch ${p.epoch}: ${p.rowsComputed} rows computed, ${p.rowsDropped} dropped, ${(p.endMs - p.startMs).toFixed(1)} ms</title>`;
    body += rect(x + 1, y + 1, CELL - 2, CELL - 2, fill, `rx="3" data-step="${p.step}" data-stage="${stage}"`).replace('/>', `>${tip}</rect>`);
    body += text(x + CELL / 2, y + 15, dead ? '×' : p.rowsComputed, `text-anchor="middle" fill="${dead ? '#888' : '#fff'}"`);
  }
  const commits = trace.commits.slice(-2 * columns);
  body += text(4, gridBottom + 22, 'tokens');
  commits.forEach((hit, i) => {
    const cx = LEFT + i * (CELL / 2) + 5;
    body += `<circle cx="${cx}" cy="${gridBottom + 18}" r="4" fill="${hit ? '#59a14f' : '#e15759'}"><title>${hit ? 'hit' : 'miss'}</title></circle>`;
  });
  body += text(LEFT, gridBottom + 42, 'cell: rows computed (× = all dropped), colour: epoch · dot: green hit, red miss', 'fill="#555"');
  return svgDoc(width, height, body, 'pipeline picture');
}
