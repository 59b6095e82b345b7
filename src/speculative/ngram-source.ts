// Prompt lookup / n-gram speculation: guess that text repeats. For a frontier node, take the last n
// tokens of (committed text + the node's path), find earlier occurrences of that n-gram in the
// committed text (prompt included) and propose the tokens that followed them, most frequent first.
// The longest n (maxN down to minN) with any occurrence wins. Needs no model.

import type { Candidate, FrontierNode, SourceBegin, SourceCommit, SpeculativeSource } from './source.ts';

export interface NgramOptions {
  /** Longest n-gram to match (default 3). */
  maxN?: number;
  /** Shortest n-gram to match (default 1). */
  minN?: number;
}

export class NgramSource implements SpeculativeSource {
  readonly name = 'ngram';
  private readonly maxN: number;
  private readonly minN: number;
  private text: number[] = [];
  /** index[n]: n-gram key -> follower token -> count */
  private index: Map<string, Map<number, number>>[] = [];

  constructor(opts: NgramOptions = {}) {
    this.maxN = opts.maxN ?? 3;
    this.minN = opts.minN ?? 1;
    if (this.minN < 1 || this.maxN < this.minN) throw new Error('NgramSource: need 1 <= minN <= maxN');
  }

  async begin(init: SourceBegin): Promise<void> {
    this.text = [];
    this.index = Array.from({ length: this.maxN + 1 }, () => new Map());
    for (const t of init.prompt) this.append(t);
  }

  async propose(frontier: readonly FrontierNode[], k: number): Promise<Candidate[][]> {
    return frontier.map((f) => this.lookup(this.tail(f), k));
  }

  async commit(e: SourceCommit): Promise<void> {
    this.append(e.token);
  }

  async end(): Promise<void> {}

  /** Committed text so far (prompt included). */
  get committedText(): readonly number[] {
    return this.text;
  }

  private tail(f: FrontierNode): number[] {
    const extra = f.path.length === 0 ? [] : [...f.path.slice(1).map((p) => p.token), f.token];
    const need = this.maxN - extra.length;
    const head = need > 0 ? this.text.slice(Math.max(0, this.text.length - need)) : [];
    return [...head, ...extra].slice(-this.maxN);
  }

  private lookup(tail: number[], k: number): Candidate[] {
    for (let n = Math.min(this.maxN, tail.length); n >= this.minN; n--) {
      const counts = this.index[n].get(key(tail.slice(tail.length - n)));
      if (!counts || counts.size === 0) continue;
      let total = 0;
      for (const c of counts.values()) total += c;
      return [...counts.entries()]
        .sort((a, b) => b[1] - a[1] || a[0] - b[0])
        .slice(0, k)
        .map(([token, c]) => ({ token, logprob: Math.log(c / total) }));
    }
    return [];
  }

  private append(t: number): void {
    const i = this.text.length;
    for (let n = this.minN; n <= this.maxN && n <= i; n++) {
      const kk = key(this.text.slice(i - n, i));
      let m = this.index[n].get(kk);
      if (!m) this.index[n].set(kk, (m = new Map()));
      m.set(t, (m.get(t) ?? 0) + 1);
    }
    this.text.push(t);
  }
}

function key(tokens: readonly number[]): string {
  return tokens.join(',');
}
