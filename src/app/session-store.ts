// What a leader tab keeps across a reload, per room: the settings, the conversation, the ring's
// membership (stage tabs in order with their layers) and a generation in progress (its request and
// the tokens committed so far). A reloaded leader (or a new tab of the same room) reads it back,
// takes the same stage tabs back with the same layers, and finishes the interrupted generation from
// its last committed token: sampling is keyed to absolute positions, so the tokens are the ones an
// uninterrupted run gives. Kept in IndexedDB (idb-keyval) in the page; the KeyValueStore interface
// lets Node tests use a Map.
import { createStore, del, get, set } from 'idb-keyval';
import type { GenerationRequest } from './engine.ts';
import type { PlacedStage } from './recovery-plan.ts';

/** Where saved sessions live: IndexedDB in the page (idbStore), a Map in tests (memoryStore). */
export interface KeyValueStore {
  get(key: string): Promise<unknown>;
  set(key: string, value: unknown): Promise<void>;
  del(key: string): Promise<void>;
}

/** One turn of the conversation as the page shows it. */
export interface SavedTurn {
  /** What the user sent. */
  prompt: string;
  /** What the model answered (so far, for the turn being generated). */
  output: string;
  /** The prompt went through the model's chat template (a chat turn, not a plain continuation). */
  chat: boolean;
}

/** A chat-template message (the conversation the next prompt is rendered from). */
export interface SavedMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** A generation that was running: its request, with the prompt as token ids, and what it committed. */
export interface SavedGeneration {
  request: GenerationRequest & { promptIds: number[] };
  committed: number[];
}

/** Everything a leader keeps for one room. */
export interface SavedSession {
  version: typeof VERSION;
  room: string;
  savedAt: number;
  /** The settings form's fields, by name. */
  settings: Record<string, string>;
  turns: SavedTurn[];
  history: SavedMessage[];
  /** The ring as last loaded: stage tabs (by their room id) in order, with their layers. */
  ring: PlacedStage[];
  running: SavedGeneration | null;
}

const VERSION = 1;
/** At most one write per this many ms while tokens stream in (a reload loses fewer; they are recomputed). */
const WRITE_EVERY_MS = 200;

/** IndexedDB, in a database of its own (the weight cache has another). */
export function idbStore(): KeyValueStore {
  const db = createStore('specpipe-sessions', 'sessions');
  return { get: (k) => get(k, db), set: (k, v) => set(k, v, db), del: (k) => del(k, db) };
}

/** In memory (tests; a page without IndexedDB keeps nothing across a reload). */
export function memoryStore(): KeyValueStore & { readonly map: Map<string, unknown> } {
  const map = new Map<string, unknown>();
  return {
    map,
    get: async (k) => structuredClone(map.get(k)),
    set: async (k, v) => void map.set(k, structuredClone(v)),
    del: async (k) => void map.delete(k),
  };
}

/** One room's saved session: read once, then changed in memory and written behind (coalesced). */
export class SessionStore {
  private state: SavedSession;
  private writing: Promise<void> | null = null;
  private dirty = false;
  private timer: ReturnType<typeof setTimeout> | null = null;

  private constructor(
    private readonly kv: KeyValueStore,
    private readonly key: string,
    state: SavedSession,
    /** What was saved before this tab opened the room (null: nothing, or an unreadable record). */
    readonly restored: SavedSession | null,
  ) {
    this.state = state;
  }

  /** Opens `room`'s record; a missing, older or malformed one counts as nothing saved. */
  static async open(kv: KeyValueStore, room: string): Promise<SessionStore> {
    const key = `room:${room}`;
    const saved = asSession(await kv.get(key), room);
    const fresh: SavedSession = { version: VERSION, room, savedAt: 0, settings: {}, turns: [], history: [], ring: [], running: null };
    return new SessionStore(kv, key, saved ? structuredClone(saved) : fresh, saved);
  }

  get session(): Readonly<SavedSession> {
    return this.state;
  }

  setSettings(settings: Record<string, string>): void {
    this.change((s) => (s.settings = { ...settings }));
  }

  setRing(ring: readonly PlacedStage[]): void {
    this.change((s) => (s.ring = ring.map((p) => structuredClone(p))));
  }

  /** A turn begins: it is shown, and its generation is running. */
  beginTurn(prompt: string, chat: boolean, request: SavedGeneration['request']): void {
    this.change((s) => {
      s.turns.push({ prompt, output: '', chat });
      s.running = { request: structuredClone(request), committed: [] };
    });
  }

  /** A token of the running generation was committed (`text`: its text, as shown). */
  token(id: number, text: string): void {
    this.change((s) => {
      s.running?.committed.push(id);
      const turn = s.turns[s.turns.length - 1];
      if (turn) turn.output += text;
    }, true);
  }

  /** The running generation ended (finished, stopped or failed); `messages` extend the conversation. */
  endTurn(messages: readonly SavedMessage[]): void {
    this.change((s) => {
      s.running = null;
      s.history.push(...messages);
    });
  }

  /** Forgets the room's conversation (the settings and the ring stay). */
  clearConversation(): void {
    this.change((s) => {
      s.turns = [];
      s.history = [];
      s.running = null;
    });
  }

  /** Resolves once everything changed so far is written. */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    while (this.writing || this.dirty) {
      this.kick();
      await this.writing;
    }
  }

  /** Changes the state; writes it now, or while tokens stream in at most every WRITE_EVERY_MS. */
  private change(fn: (s: SavedSession) => void, streaming = false): void {
    fn(this.state);
    this.state.savedAt = Date.now();
    this.dirty = true;
    if (!streaming) this.kick();
    else this.timer ??= setTimeout(() => {
      this.timer = null;
      this.kick();
    }, WRITE_EVERY_MS);
  }

  private kick(): void {
    if (this.writing || !this.dirty) return;
    this.dirty = false;
    this.writing = this.kv
      .set(this.key, structuredClone(this.state))
      .catch((e: unknown) => console.warn(`could not save the session: ${String(e)}`))
      .finally(() => {
        this.writing = null;
        // Changes made during the write: now, unless a streaming write is already scheduled.
        if (!this.timer) this.kick();
      });
  }
}

/** A stored value as a session of `room`, or null when it is not one (another version, damaged). */
function asSession(v: unknown, room: string): SavedSession | null {
  if (!v || typeof v !== 'object') return null;
  const s = v as Partial<SavedSession>;
  const ok =
    s.version === VERSION && s.room === room && typeof s.savedAt === 'number' && !!s.settings && typeof s.settings === 'object' &&
    Array.isArray(s.turns) && Array.isArray(s.history) && Array.isArray(s.ring) &&
    (s.running === null || (!!s.running && Array.isArray(s.running.committed) && Array.isArray(s.running.request?.promptIds)));
  return ok ? (s as SavedSession) : null;
}
