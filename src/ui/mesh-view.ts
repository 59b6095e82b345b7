// The mesh view: which stage (a tab or a Node stage host) holds which layers, its device, speed and
// memory (weights, KV slots, what it announced it may use), load progress, per-hop latency, and the
// leader's recent log.
import type { MeshStatus } from '../app/mesh-session.ts';
import { mib } from '../app/mesh-report.ts';
import { el } from './dom.ts';

const ms = (v: number | null): string => (v === null ? '–' : `${v.toFixed(1)} ms`);

export function renderMeshView(root: HTMLElement, s: MeshStatus): void {
  const stages = el(
    'table',
    { id: 'mesh-stages' },
    el('tr', {}, ...['stage', 'tab / host', 'layers', 'device', 'speed', 'weights', 'KV', 'memory', 'load'].map((h) => el('th', {}, h))),
    ...s.stages.map((st) =>
      el(
        'tr',
        {},
        el('td', {}, String(st.index)),
        el('td', {}, st.name || st.id),
        el('td', {}, st.role ?? '–'),
        el('td', {}, st.device || '–'),
        el('td', {}, st.gbps === null ? '–' : `${st.gbps.toFixed(2)} GB/s`),
        el('td', {}, st.loaded ? mib(st.weightBytes) : '–'),
        el('td', {}, mib(st.kvBytes)),
        el('td', {}, st.memoryBytes === null ? 'not announced' : mib(st.memoryBytes)),
        el('td', {}, st.loaded ? 'loaded' : st.load && st.load.total > 0 ? el('progress', { max: String(st.load.total), value: String(st.load.done) }) : '–'),
      ),
    ),
  );
  const hops = s.hops.length
    ? el('ul', { id: 'mesh-hops' }, ...s.hops.map((h) => el('li', {}, `${h.from} → ${h.to}: round trip p50 ${ms(h.rttP50Ms)}, p95 ${ms(h.rttP95Ms)} (${h.samples} pings)`)))
    : el('p', { class: 'hint' }, 'Per-hop latency appears after the first generation.');
  root.replaceChildren(
    el('p', { id: 'mesh-phase' }, `Room "${s.room}": ${s.phase}`),
    stages,
    hops,
    ...(s.error ? [el('p', { class: 'warn' }, s.error)] : []),
    el('pre', { class: 'mesh-log' }, s.log.slice(-6).join('\n')),
  );
}
