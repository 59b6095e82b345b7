// A stage tab (/?room=NAME&stage): lends this tab's GPU to a leader's ring and shows its status.
import { startStageNode, type StageStatus } from '../app/stage-node.ts';
import { el } from './dom.ts';
import { errorMessage } from '../common/errors.ts';
import { TAB_LINK_TUNING } from '../app/link-tuning.ts';

function render(root: HTMLElement, s: StageStatus): void {
  const load = s.load && s.load.total > 0 ? el('progress', { max: String(s.load.total), value: String(s.load.done) }) : null;
  const rows: [string, string][] = [
    ['phase', s.phase],
    ['place in the ring', s.index > 0 ? `stage ${s.index}` : '–'],
    ['layers', s.role ?? '–'],
    ['device', s.device || '–'],
    ['measured speed', s.gbps === null ? '–' : `${s.gbps.toFixed(2)} GB/s (weights read per second)`],
    ['load', s.load ? `${(s.load.done / 2 ** 20).toFixed(1)} / ${(s.load.total / 2 ** 20).toFixed(1)} MiB` : '–'],
    ['id', s.id || '–'],
  ];
  root.replaceChildren(
    el('dl', { id: 'stage-status', 'data-phase': s.phase }, ...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])),
    ...(load ? [load] : []),
    el('p', { class: s.phase === 'failed' || s.phase === 'leader-gone' ? 'warn' : 'hint', id: 'stage-message' }, s.message),
  );
}

export function startStageView(root: HTMLElement, room: string, secret: string | undefined): void {
  document.title = `stage · ${room} · SpecPipe mesh`;
  const status = el('section', { class: 'panel', id: 'stage-panel' });
  root.replaceChildren(
    el('header', {}, el('h1', {}, 'SpecPipe mesh: stage tab'), el('p', {}, `Room "${room}". This tab measures its speed, joins the ring when the leader (the chat page) forms it, loads the layers it is given and runs them on every level that passes. Keep it open (it may stay in the background).`)),
    status,
  );
  startStageNode({ room, secret, tuning: TAB_LINK_TUNING, name: navigator.userAgent.includes('Mobile') ? 'phone' : 'tab', onStatus: (s) => render(status, s) })
    .then((node) => addEventListener('pagehide', () => node.close()))
    .catch((e: unknown) => status.replaceChildren(el('p', { class: 'warn', id: 'stage-message' }, `This tab could not join: ${errorMessage(e)}`)));
}
