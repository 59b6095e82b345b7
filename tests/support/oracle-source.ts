// A test source that knows the target model: its top guess is the target's actual token with
// probability p (decided by a hash of the node's position and recent tokens, so it is reproducible),
// otherwise a wrong token. Lets tests dial in a hit rate.

import { hash32, positionUniform, selectToken, type SamplingSettings } from '../../src/speculative/sampling.ts';
import type { Candidate, FrontierNode, SourceBegin, SourceCommit, SpeculativeSource } from '../../src/speculative/source.ts';
import type { TargetModel } from './toy-lm.ts';

export interface OracleOptions {
  target: TargetModel;
  vocabSize: number;
  sampling: SamplingSettings;
  /** Probability that the top candidate is the target's token. */
  p: number;
  seed?: number;
  /** When the top guess is wrong, probability that the right token is still among candidates 2..k. */
  pLater?: number;
}

export class OracleSource implements SpeculativeSource {
  readonly name = 'oracle';
  private text: number[] = [];
  calls = 0;

  constructor(private readonly o: OracleOptions) {}

  async begin(init: SourceBegin): Promise<void> {
    this.text = [...init.prompt];
  }

  async propose(frontier: readonly FrontierNode[], k: number): Promise<Candidate[][]> {
    this.calls++;
    return frontier.map((f) => {
      const seq = f.path.length === 0 ? this.text : [...this.text, ...f.path.slice(1).map((p) => p.token), f.token];
      const pos = f.position + 1;
      const truth = selectToken(this.o.target(seq), this.o.sampling, positionUniform(this.o.sampling.seed, pos));
      let h = hash32((this.o.seed ?? 7) + pos);
      for (let i = Math.max(0, seq.length - 4); i < seq.length; i++) h = hash32(h ^ (seq[i] + 0x632be5ab));
      const u1 = hash32(h ^ 0x1234567) / 4294967296;
      const u2 = hash32(h ^ 0x7654321) / 4294967296;
      let rank = -1;
      if (u1 < this.o.p) rank = 0;
      else if (k > 1 && u2 < (this.o.pLater ?? 0)) rank = 1 + (hash32(h ^ 0xabcdef) % (k - 1));
      const out: Candidate[] = [];
      let wrong = hash32(h ^ 0x55aa55aa) % this.o.vocabSize;
      for (let i = 0; i < k && out.length < Math.min(k, this.o.vocabSize); i++) {
        if (i === rank) out.push({ token: truth, logprob: -0.1 - i });
        else {
          while (wrong === truth || out.some((c) => c.token === wrong)) wrong = (wrong + 1) % this.o.vocabSize;
          out.push({ token: wrong, logprob: -0.1 - i });
        }
      }
      return out;
    });
  }

  async commit(e: SourceCommit): Promise<void> {
    this.text.push(e.token);
  }

  async end(): Promise<void> {}
}
