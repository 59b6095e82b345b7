// The leader's saved session (src/app/session-store.ts) over an in-memory store: what a reload reads
// back is what was shown and committed; streamed tokens are written behind, coalesced; a record of
// another room, an older version or a damaged one counts as nothing saved.
import { describe, expect, it, vi } from 'vitest';
import { memoryStore, SessionStore, type KeyValueStore } from '../src/app/session-store.ts';

const GREEDY = { temperature: 0, topK: 0, topP: 1, seed: 0 };
const request = { promptIds: [5, 6, 7], maxNewTokens: 8, sampling: GREEDY, mode: 'pp' as const };
const ring = [
  { id: 'a', role: { layers: { start: 0, end: 4 }, embed: true, head: false } },
  { id: 'b', role: { layers: { start: 4, end: 8 }, embed: false, head: true } },
];

describe('SessionStore', () => {
  it('a reload reads back settings, ring, conversation and the running generation with its committed tokens', async () => {
    const kv = memoryStore();
    const s = await SessionStore.open(kv, 'r1');
    expect(s.restored).toBeNull();
    s.setSettings({ mode: 'pp', stages: '2' });
    s.setRing(ring);
    s.beginTurn('Hello', true, request);
    for (const [id, text] of [[11, ' wor'], [12, 'ld']] as const) s.token(id, text);
    await s.flush();
    const again = await SessionStore.open(kv, 'r1');
    expect(again.restored).toMatchObject({ settings: { mode: 'pp', stages: '2' }, ring, turns: [{ prompt: 'Hello', output: ' world', chat: true }], running: { request, committed: [11, 12] } });
    again.endTurn([{ role: 'user', content: 'Hello' }, { role: 'assistant', content: ' world' }]);
    await again.flush();
    const third = await SessionStore.open(kv, 'r1');
    expect(third.restored?.running).toBeNull();
    expect(third.restored?.history).toHaveLength(2);
    third.clearConversation();
    await third.flush();
    expect((await SessionStore.open(kv, 'r1')).restored).toMatchObject({ turns: [], history: [], ring, settings: { stages: '2' } });
    // Rooms are separate.
    expect((await SessionStore.open(kv, 'r2')).restored).toBeNull();
  });

  it('streamed tokens are written behind: one write for a burst, none lost at flush', async () => {
    vi.useFakeTimers();
    try {
      const inner = memoryStore();
      const writes: unknown[] = [];
      const kv: KeyValueStore = { ...inner, set: (k, v) => (writes.push(v), inner.set(k, v)) };
      const s = await SessionStore.open(kv, 'r');
      s.beginTurn('p', false, request);
      await vi.advanceTimersByTimeAsync(0);
      const before = writes.length;
      for (let i = 0; i < 50; i++) s.token(i, 'x');
      expect(writes.length).toBe(before); // nothing yet: the burst waits for the timer
      await vi.advanceTimersByTimeAsync(250);
      expect(writes.length).toBe(before + 1);
      s.token(50, 'y');
      await s.flush();
      expect(writes.length).toBe(before + 2);
      expect((await SessionStore.open(inner, 'r')).restored?.running?.committed).toHaveLength(51);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a record of another version, another room or a damaged one is ignored', async () => {
    const kv = memoryStore();
    const good = await SessionStore.open(kv, 'r');
    good.setRing(ring);
    await good.flush();
    const record = kv.map.get('room:r') as Record<string, unknown>;
    for (const bad of [{ ...record, version: 0 }, { ...record, room: 'other' }, { ...record, turns: 'x' }, { ...record, running: { committed: [] } }, 'text', null]) {
      kv.map.set('room:r', bad);
      expect((await SessionStore.open(kv, 'r')).restored).toBeNull();
    }
  });

  it('a failing store does not throw into the page; it says so', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    const kv: KeyValueStore = { get: async () => undefined, set: async () => Promise.reject(new Error('quota')), del: async () => undefined };
    const s = await SessionStore.open(kv, 'r');
    s.setSettings({ a: '1' });
    await s.flush();
    expect(warn).toHaveBeenCalledWith(expect.stringContaining('quota'));
    warn.mockRestore();
  });
});
