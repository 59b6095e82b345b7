// The join panel: the link (and QR code) other laptops open to become stage tabs of this room.
import { renderSVG } from 'uqr';
import { el } from './dom.ts';

export function renderJoinPanel(root: HTMLElement, link: string): void {
  const qr = el('div', { class: 'qr' });
  qr.innerHTML = renderSVG(link, { pixelSize: 4, border: 2 });
  root.replaceChildren(
    el('p', {}, 'Open this link on other laptops of the LAN (or in other tabs) to add stage tabs, then choose "stage tabs (mesh)" under Settings:'),
    el('a', { href: link, target: '_blank', id: 'join-link' }, link),
    qr,
  );
}
