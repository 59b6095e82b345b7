// Deterministic toy language models for tests and the simulator: logits are a hash of the last few
// tokens, so the "target model" needs no weights and every run reproduces exactly.

import { hash32, positionUniform, selectToken, type SamplingSettings } from '../../src/speculative/sampling.ts';

/** A target model as the simulator sees it: logits for the token after `prefix`. */
export type TargetModel = (prefix: readonly number[]) => Float32Array;

export interface ToyLmOptions {
  vocabSize: number;
  /** How many trailing tokens the logits depend on (default 3). */
  context?: number;
  seed?: number;
  /** Spread of the logits (default 6): larger = more peaked. */
  sharpness?: number;
  /** Token that ends generation, and a bias added to its logit (default -2). */
  eosToken?: number | null;
  eosBias?: number;
}

export function toyTargetModel(opts: ToyLmOptions): TargetModel {
  const V = opts.vocabSize;
  const ctx = opts.context ?? 3;
  const seed = hash32(opts.seed ?? 1);
  const sharp = opts.sharpness ?? 6;
  const eos = opts.eosToken ?? null;
  const eosBias = opts.eosBias ?? -2;
  return (prefix) => {
    let h = seed;
    for (let i = Math.max(0, prefix.length - ctx); i < prefix.length; i++) h = hash32((h ^ prefix[i]) + 0x9e3779b9);
    h = hash32(h + Math.min(prefix.length, ctx));
    const out = new Float32Array(V);
    for (let v = 0; v < V; v++) {
      const r = hash32(h ^ Math.imul(v + 1, 0x85ebca6b)) / 4294967296;
      out[v] = sharp * r * r;
    }
    if (eos !== null) out[eos] += eosBias;
    return out;
  };
}

/**
 * The single-tab reference: plain autoregressive decoding with the target model, no pipeline. The
 * token at position n is selectToken(target(text[0..n)), settings, positionUniform(seed, n)).
 * Stops after maxNewTokens or on an EOS token (not included in the output).
 */
export function referenceGenerate(target: TargetModel, prompt: readonly number[], maxNewTokens: number, sampling: SamplingSettings, eosTokens: readonly number[] = []): { tokens: number[]; stop: 'eos' | 'length' } {
  const text = [...prompt];
  const out: number[] = [];
  const eos = new Set(eosTokens);
  while (out.length < maxNewTokens) {
    const x = selectToken(target(text), sampling, positionUniform(sampling.seed, text.length));
    if (eos.has(x)) return { tokens: out, stop: 'eos' };
    out.push(x);
    text.push(x);
  }
  return { tokens: out, stop: 'length' };
}
