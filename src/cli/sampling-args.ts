// --temperature/--top-k/--top-p/--seed for the demo and bench commands (greedy unless --temperature).
import { num, type Args } from '../common/args.ts';
import type { SamplingSettings } from '../speculative/sampling.ts';

export const SAMPLING_ARGS = ['temperature', 'top-k', 'top-p', 'seed'];

export function samplingFromArgs(args: Args): SamplingSettings {
  const seed = num(args, 'seed', 0);
  if (!args.has('temperature')) return { temperature: 0, topK: 0, topP: 1, seed };
  return { temperature: num(args, 'temperature', 1), topK: num(args, 'top-k', 0), topP: num(args, 'top-p', 1), seed };
}
