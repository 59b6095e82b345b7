import { generate, reservedSlots, type GenerateOptions, type GenerateResult, type Mode } from '../src/spec/scheduler.ts';
import { SimPipeline } from '../src/spec/sim-pipeline.ts';
import { toyTargetModel, type TargetModel } from '../src/spec/toy-lm.ts';
import { OracleSource } from '../src/spec/oracle-source.ts';
import type { SamplingSettings } from '../src/spec/sampling.ts';
import type { SpeculativeSource } from '../src/spec/source.ts';

export const VOCAB = 48;
export const EOS = 0;

export function makeTarget(seed = 1, eosBias = -2): TargetModel {
  return toyTargetModel({ vocabSize: VOCAB, context: 3, seed, sharpness: 6, eosToken: EOS, eosBias });
}

export interface RunSpec {
  mode: Mode;
  stages: number;
  target: TargetModel;
  prompt: number[];
  maxNewTokens: number;
  sampling: SamplingSettings;
  source?: SpeculativeSource | null;
  width?: number;
  eos?: boolean;
  extra?: Partial<GenerateOptions>;
  numSlots?: number;
}

/** Runs a generation on a fresh simulator, drains it, and checks the slot bookkeeping afterwards. */
export async function runSim(spec: RunSpec): Promise<{ result: GenerateResult; sim: SimPipeline }> {
  const numSlots = spec.numSlots ?? spec.prompt.length + spec.maxNewTokens + reservedSlots(spec.mode, spec.stages, { width: spec.width, ...spec.extra });
  const sim = new SimPipeline({ numStages: spec.stages, numSlots, target: spec.target });
  const result = await generate(sim, {
    mode: spec.mode,
    prompt: spec.prompt,
    maxNewTokens: spec.maxNewTokens,
    sampling: spec.sampling,
    source: spec.source ?? null,
    width: spec.width,
    eosTokens: spec.eos === false ? [] : [EOS],
    ...spec.extra,
  });
  sim.drain();
  return { result, sim };
}

export function oracle(target: TargetModel, sampling: SamplingSettings, p: number, seed = 7, pLater = 0.5): OracleSource {
  return new OracleSource({ target, vocabSize: VOCAB, sampling, p, seed, pLater });
}

/** Deterministic PRNG for test inputs (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomPrompt(r: () => number, len: number): number[] {
  return Array.from({ length: len }, () => 1 + Math.floor(r() * (VOCAB - 1)));
}
