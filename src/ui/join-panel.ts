// The join panel: the link (and QR code) other laptops open to become stage tabs of this room.
import { renderSVG } from 'uqr';
import { el } from './dom.ts';

const ROOM_CHARS = 'abcdefghijkmnpqrstuvwxyz23456789';

/** The room from ?room=, or a fresh random one. */
export function roomFromUrl(url: URL): string {
  const r = url.searchParams.get('room');
  if (r && /^[A-Za-z0-9._-]{1,64}$/.test(r)) return r;
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return 'mesh-' + Array.from(bytes, (b) => ROOM_CHARS[b % ROOM_CHARS.length]).join('');
}

/** The stage-tab link for `room` (the room secret, if any, stays in the fragment: never sent to the server). */
export function joinLink(page: URL, room: string): string {
  const u = new URL('/', page);
  u.searchParams.set('room', room);
  u.searchParams.set('stage', '');
  u.hash = page.hash;
  return u.href.replace('stage=', 'stage');
}

export function renderJoinPanel(root: HTMLElement, link: string, meshAvailable: boolean): void {
  const qr = el('div', { class: 'qr' });
  qr.innerHTML = renderSVG(link, { pixelSize: 4, border: 2 });
  const a = el('a', { href: link, target: '_blank', id: 'join-link' }, link);
  root.replaceChildren(
    el('p', {}, 'Open this link on other laptops of the LAN (or in other tabs) to add stages:'),
    a,
    qr,
    meshAvailable
      ? el('p', {}, 'Stage tabs that join appear in the mesh view below.')
      : el('p', { class: 'warn', id: 'mesh-unavailable' }, 'Mesh not available yet in this build: stage tabs cannot take layers, so every stage runs inside this tab ("stages in this tab").'),
  );
}
