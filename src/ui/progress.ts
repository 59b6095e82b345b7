// Load progress bars, one per part being loaded ("stage 1/4", "draft").
import { el } from './dom.ts';

export class ProgressBars {
  private readonly bars = new Map<string, { bar: HTMLProgressElement; label: HTMLSpanElement }>();

  constructor(private readonly root: HTMLElement) {}

  clear(): void {
    this.bars.clear();
    this.root.replaceChildren();
  }

  update(part: string, done: number, total: number): void {
    let entry = this.bars.get(part);
    if (!entry) {
      const bar = el('progress', { max: '1', value: '0' });
      const label = el('span');
      this.root.append(el('div', { class: 'progress-row' }, el('span', { class: 'progress-part' }, part), bar, label));
      entry = { bar, label };
      this.bars.set(part, entry);
    }
    entry.bar.value = total > 0 ? done / total : 1;
    entry.label.textContent = `${(done / 2 ** 20).toFixed(1)} / ${(total / 2 ** 20).toFixed(1)} MiB`;
  }
}
