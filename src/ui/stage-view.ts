// A stage tab (/?room=NAME&stage): lends this tab's GPU to a leader's ring and shows its own status.
import { el } from './dom.ts';

export function startStageView(root: HTMLElement, room: string): void {
  document.title = `stage · ${room} · SpecPipe mesh`;
  root.replaceChildren(
    el('h1', {}, 'SpecPipe mesh: stage tab'),
    el('p', {}, `Room: ${room}. A stage tab holds a range of the model's layers for the leader tab (the chat page) and passes hidden states along the ring.`),
    el('p', { class: 'warn', id: 'mesh-unavailable' }, 'Mesh not available yet in this build: this tab cannot take layers. Open the chat page without "&stage" to run every stage in one tab.'),
  );
}
