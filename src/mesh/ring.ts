// The ring: leader -> stage 1 -> ... -> stage N -> leader over WebRTC links, formed through the
// signalling room. The leader links to every stage (the first and last of those links are also
// ring hops; all of them carry leader<->stage "direct" traffic and the control messages that form
// the ring); each stage links to the next stage. Ring traffic travels on the ring lane and is only
// accepted from the previous node.
//
//   const signal = await SignalClient.connect({ room, secret, meta: { role: 'leader' } });
//   const ring = await Ring.lead(signal, { stages: 3 });       // or Ring.join(signal) on a stage
//   ring.onPrev((bytes, msg) => ...);  await ring.sendNext(encodeLevel(packet));

import { Emitter } from './emitter.ts';
import { LANE, Link, type LinkCloseEvent, type LinkStats, type LinkTuning } from './peer.ts';
import { decodeMessage, encodeMessage, type EncodeOptions, type MeshMessage, type MeshRole } from './protocol.ts';
import type { SignalClient } from './signal-client.ts';

export interface RingOptions extends LinkTuning {
  /** Shown to others in the hello message. */
  name?: string;
  /** Give up forming the ring after this long, ms. Default 60000. */
  formTimeoutMs?: number;
}

export interface LeadOptions extends RingOptions {
  /** How many stages to wait for (taken in join order), or their ids in ring order. */
  stages: number | string[];
}

export interface RingEvents extends Record<string, unknown> {
  /** A neighbour or linked tab closed, left the room, stopped answering, or misbehaved. */
  'peer-lost': LinkCloseEvent;
  /** The subset of peer-lost caused by a malformed message (either direction). */
  error: LinkCloseEvent;
}

export type PrevHandler = (bytes: Uint8Array, msg: MeshMessage) => void;
export type DirectHandler = (from: string, bytes: Uint8Array, msg: MeshMessage) => void;

export class RingError extends Error {
  override readonly name = 'RingError';
}

export class Ring extends Emitter<RingEvents> {
  readonly id: string;
  /** Ring order: [leader, stage 1, ..., stage N]; empty until formed. */
  order: string[] = [];
  /** This node's place in `order` (0 for the leader). */
  index = -1;
  /** Ring formation epoch (the leader counts up each time it forms a ring). */
  ringEpoch = 0;

  private readonly links = new Map<string, Link>();
  private readonly lost = new Set<string>();
  private prevHandlers: PrevHandler[] = [];
  private directHandlers: DirectHandler[] = [];
  private prevBacklog: [Uint8Array, MeshMessage][] = [];
  private directBacklog: [string, Uint8Array, MeshMessage][] = [];
  private controlWaiters: ((from: string, msg: MeshMessage) => void)[] = [];
  private onFirstAssign: { resolve: () => void; reject: (e: Error) => void } | null = null;
  private closed = false;
  private readonly unsubscribe: (() => void)[] = [];

  private constructor(
    private readonly signalling: SignalClient,
    readonly role: MeshRole,
    private readonly opts: RingOptions,
  ) {
    super();
    this.id = signalling.id;
    this.unsubscribe.push(
      signalling.on('signal', ({ from, data }) => this.onSignal(from, data)),
      signalling.on('peer-left', (id) => this.links.get(id)?.close('closed', `${id} left the signalling room`)),
    );
  }

  get prev(): string {
    return this.order.length ? this.order[(this.index - 1 + this.order.length) % this.order.length] : '';
  }
  get next(): string {
    return this.order.length ? this.order[(this.index + 1) % this.order.length] : '';
  }
  get leader(): string {
    return this.order[0] ?? '';
  }

  /**
   * Leader: waits for the stages to join the room, links to each, assigns ring positions, waits
   * until every stage has linked to its neighbours. Rejects with RingError on timeout or a loss.
   */
  static async lead(signalling: SignalClient, opts: LeadOptions): Promise<Ring> {
    const ring = new Ring(signalling, 'leader', opts);
    try {
      await withTimeout(ring.formAsLeader(opts.stages), opts.formTimeoutMs ?? 60_000, 'forming the ring');
    } catch (e) {
      ring.close('ring formation failed');
      throw e;
    }
    return ring;
  }

  /** Stage: waits for the leader's link and assignment, links to its neighbours, reports ready. */
  static async join(signalling: SignalClient, opts: RingOptions = {}): Promise<Ring> {
    const ring = new Ring(signalling, 'stage', opts);
    try {
      await withTimeout(ring.formAsStage(), opts.formTimeoutMs ?? 60_000, 'joining the ring');
    } catch (e) {
      ring.close('ring formation failed');
      throw e;
    }
    return ring;
  }

  /** Sends an encoded message to the next node of the ring. */
  sendNext(bytes: Uint8Array): Promise<void> {
    return this.requireLink(this.next).send(bytes, LANE.ring);
  }

  /** Encodes and sends a message to the next node. */
  sendNextMessage(msg: MeshMessage, opts?: EncodeOptions): Promise<void> {
    return this.requireLink(this.next).sendUnchecked(encodeMessage(msg, opts), LANE.ring);
  }

  /** Ring messages from the previous node, in order (those that arrived before the first handler are replayed). */
  onPrev(fn: PrevHandler): () => void {
    this.prevHandlers.push(fn);
    for (const [b, m] of this.prevBacklog.splice(0)) fn(b, m);
    return () => (this.prevHandlers = this.prevHandlers.filter((h) => h !== fn));
  }

  /** Leader -> a stage, or a stage -> the leader, on the direct lane (e.g. RequestConfig). */
  sendDirect(peer: string, bytes: Uint8Array): Promise<void> {
    if (this.role === 'stage' && peer !== this.leader) throw new RingError('a stage has a direct link to the leader only');
    return this.requireLink(peer).send(bytes, LANE.direct);
  }

  onDirect(fn: DirectHandler): () => void {
    this.directHandlers.push(fn);
    for (const [f, b, m] of this.directBacklog.splice(0)) fn(f, b, m);
    return () => (this.directHandlers = this.directHandlers.filter((h) => h !== fn));
  }

  /** Per-link statistics (round trips p50/p95 from pings, bytes, queue). */
  stats(): LinkStats[] {
    return [...this.links.values()].map((l) => l.stats());
  }

  /** Sets the simulated per-hop delay on every link, now and later (a stage takes the leader's setting). */
  setHopDelay(ms: number): void {
    this.opts.hopDelayMs = ms;
    for (const l of this.links.values()) l.setHopDelay(ms);
  }

  resetStats(): void {
    for (const l of this.links.values()) l.resetStats();
  }

  /** The link to a peer (for tests and diagnostics). */
  link(peer: string): Link | undefined {
    return this.links.get(peer);
  }

  /** Says goodbye on every link and leaves the signalling room. */
  close(reason = 'closed'): void {
    if (this.closed) return;
    this.closed = true;
    for (const off of this.unsubscribe) off();
    for (const l of this.links.values()) void l.bye(reason);
  }

  // ------------------------------------------------------------------ formation

  /**
   * Leader: forms a new ring (next epoch) after a loss, with `stages` stages (in join order, skipping
   * tabs whose link failed) or the given ids. Live links are reused. Ring traffic of the old ring
   * still in flight may arrive; tag it with your own epochs.
   */
  async reform(stages: number | string[], timeoutMs = this.opts.formTimeoutMs ?? 60_000): Promise<void> {
    if (this.role !== 'leader') throw new RingError('only the leader re-forms the ring');
    await withTimeout(this.formAsLeader(stages), timeoutMs, 're-forming the ring');
  }

  private async formAsLeader(stages: number | string[]): Promise<void> {
    const ids = await this.waitForStages(stages);
    this.ringEpoch++;
    this.order = [this.id, ...ids];
    this.index = 0;
    await Promise.all(ids.map((id) => this.connect(id).opened));
    const ready = new Set<string>();
    const allReady = this.waitControl((from, msg) => {
      if (msg.type === 'ready' && msg.ring === this.ringEpoch && ids.includes(from)) ready.add(from);
      return ready.size === ids.length;
    });
    for (let i = 1; i < this.order.length; i++) {
      const link = this.requireLink(this.order[i]);
      await link.sendMessage(
        {
          type: 'assign',
          ring: this.ringEpoch,
          index: i,
          count: this.order.length,
          prev: this.order[i - 1],
          next: this.order[(i + 1) % this.order.length],
        },
        LANE.control,
      );
    }
    await allReady;
  }

  private waitForStages(stages: number | string[]): Promise<string[]> {
    const pick = (): string[] | null => {
      const present = [...this.signalling.peers.values()];
      if (Array.isArray(stages)) return stages.every((id) => this.signalling.peers.has(id)) ? stages : null;
      const found = present.filter((p) => p.meta.role === 'stage' && !this.lost.has(p.id)).map((p) => p.id);
      return found.length >= stages ? found.slice(0, stages) : null;
    };
    return new Promise((resolve) => {
      const now = pick();
      if (now) return resolve(now);
      const off = this.signalling.on('peer-joined', () => {
        const got = pick();
        if (got) {
          off();
          resolve(got);
        }
      });
    });
  }

  private formAsStage(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.onFirstAssign = { resolve, reject };
    });
  }

  /** Stage: takes (re)assignments from the leader for the whole life of the ring. */
  private onAssign(from: string, a: Extract<MeshMessage, { type: 'assign' }>): void {
    if (this.role !== 'stage' || a.ring <= this.ringEpoch) return;
    if (this.signalling.peers.get(from)?.meta.role === 'stage') return; // only the leader assigns
    const first = this.onFirstAssign;
    this.onFirstAssign = null;
    this.applyAssign(from, a).then(
      () => first?.resolve(),
      (e: unknown) => {
        const err = e instanceof Error ? e : new Error(String(e));
        if (first) first.reject(err);
        else console.error(`ring ${a.ring}: ${err.message}`);
      },
    );
  }

  private async applyAssign(leaderId: string, a: Extract<MeshMessage, { type: 'assign' }>): Promise<void> {
    this.ringEpoch = a.ring;
    this.index = a.index;
    // Stages know the leader and their neighbours; the rest of the order stays ''.
    const order = new Array<string>(a.count).fill('');
    order[0] = leaderId;
    order[a.index] = this.id;
    order[(a.index - 1 + a.count) % a.count] = a.prev;
    order[(a.index + 1) % a.count] = a.next;
    if ((a.index === 1 && a.prev !== leaderId) || (a.index === a.count - 1 && a.next !== leaderId)) {
      throw new RingError(`inconsistent assignment from ${leaderId}`);
    }
    this.order = order;
    // Stage i initiates the link to stage i+1; the leader already linked to us.
    if (a.next !== leaderId) this.connect(a.next);
    const wait = async (id: string): Promise<void> => {
      for (;;) {
        const l = this.links.get(id);
        if (l && l.state !== 'closed') return l.opened;
        if (this.ringEpoch !== a.ring) throw new RingError(`ring ${a.ring} superseded`);
        await sleep(20);
      }
    };
    await Promise.all([wait(a.prev), wait(a.next)]);
    if (this.ringEpoch === a.ring) await this.requireLink(leaderId).sendMessage({ type: 'ready', ring: a.ring }, LANE.control);
  }

  /** Resolves once `accept` returns true for a control message (hello/assign/ready) from any link. */
  private waitControl(accept: (from: string, msg: MeshMessage) => boolean): Promise<void> {
    return new Promise((resolve) => {
      const w = (from: string, msg: MeshMessage): void => {
        if (accept(from, msg)) {
          this.controlWaiters = this.controlWaiters.filter((x) => x !== w);
          resolve();
        }
      };
      this.controlWaiters.push(w);
    });
  }

  // ------------------------------------------------------------------ links

  private connect(remote: string): Link {
    const link = this.links.get(remote);
    return link && link.state !== 'closed' ? link : this.addLink(remote, true);
  }

  private onSignal(from: string, data: Record<string, unknown>): void {
    if (this.closed) return;
    let link = this.links.get(from);
    if (!link || link.state === 'closed') {
      if (!(data.type === 'offer')) return; // stray candidate of a dead link, or glare: ignore
      link = this.addLink(from, false);
    }
    link.signal(data);
  }

  private addLink(remote: string, initiator: boolean): Link {
    const link = new Link({
      ...this.opts,
      remote,
      initiator,
      iceServers: this.signalling.iceServers,
      sendSignal: (data) => this.signalling.signal(remote, data),
    });
    this.links.set(remote, link);
    this.lost.delete(remote);
    link.on('open', () => {
      void link.sendMessage({ type: 'hello', role: this.role, peer: this.id, name: this.opts.name ?? '' }, LANE.control).catch(() => {});
    });
    link.on('message', ({ lane, bytes, msg }) => {
      if (lane === LANE.control) {
        if (msg.type === 'assign') this.onAssign(remote, msg);
        for (const w of [...this.controlWaiters]) w(remote, msg);
      } else if (lane === LANE.ring) {
        if (remote !== this.prev) {
          // Left over from an earlier ring (re-formed since) or a confused peer: drop it.
          console.warn(`ring ${this.ringEpoch}: dropped a ${msg.type} from ${remote}, which is not the previous node (${this.prev || 'none yet'})`);
          return;
        }
        if (this.prevHandlers.length) for (const h of this.prevHandlers) h(bytes, msg);
        else this.prevBacklog.push([bytes, msg]);
      } else {
        if (this.directHandlers.length) for (const h of this.directHandlers) h(remote, bytes, msg);
        else this.directBacklog.push([remote, bytes, msg]);
      }
    });
    link.on('close', (ev) => {
      if (this.links.get(remote) === link && !this.lost.has(remote)) {
        this.lost.add(remote);
        if (ev.kind === 'local' && this.closed) return;
        this.emit('peer-lost', ev);
        if (ev.kind === 'protocol' || ev.kind === 'remote-error') this.emit('error', ev);
      }
    });
    return link;
  }

  private requireLink(peer: string): Link {
    const link = this.links.get(peer);
    if (!peer || !link) throw new RingError(`no link to ${peer || '(no such neighbour)'}`);
    return link;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new RingError(`timed out after ${ms} ms ${what}`)), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e: unknown) => (clearTimeout(t), reject(e instanceof Error ? e : new Error(String(e)))),
    );
  });
}

/** Decodes bytes received from the ring (re-exported for callers that only hold bytes). */
export { decodeMessage };
