// Room and secret from the page URL: ?room=NAME, secret in the fragment (#secret=S, never sent to
// the server) or ?secret=S; a stage tab is ?stage or ?role=stage.

const ROOM_CHARS = 'abcdefghijkmnpqrstuvwxyz23456789';

export interface RoomParams {
  room: string;
  secret: string | undefined;
  isStage: boolean;
}

export function roomParams(url: URL): RoomParams {
  const r = url.searchParams.get('room');
  let room: string;
  if (r && /^[A-Za-z0-9._-]{1,64}$/.test(r)) room = r;
  else {
    const bytes = crypto.getRandomValues(new Uint8Array(6));
    room = 'mesh-' + Array.from(bytes, (b) => ROOM_CHARS[b % ROOM_CHARS.length]).join('');
  }
  const fragment = new URLSearchParams(url.hash.replace(/^#/, ''));
  const secret = fragment.get('secret') ?? url.searchParams.get('secret') ?? undefined;
  return { room, secret, isStage: url.searchParams.has('stage') || url.searchParams.get('role') === 'stage' };
}

/** The stage-tab link for `room` (the secret, if any, stays in the fragment). */
export function joinLink(page: URL, room: string, secret?: string): string {
  const u = new URL('/', page);
  u.search = `?room=${encodeURIComponent(room)}&stage`;
  u.hash = secret ? `secret=${encodeURIComponent(secret)}` : '';
  return u.href;
}
