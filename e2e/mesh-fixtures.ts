// What the mesh specs share: the ring page module, the models they run, greedy sampling, and the
// tiny-llama fixture's reference tokens.
import { readFileSync } from 'node:fs';

export const RING_PAGE = '/e2e/pages/ring.ts';
export const GREEDY = { temperature: 0, topK: 0, topP: 1, seed: 0 };
export const DEMO = '/models/demo-target/';
export const DRAFT = '/models/demo-draft/';
export const TINY = '/fixtures/tiny-llama/';
export const tiny = JSON.parse(readFileSync('public/fixtures/tiny-llama/reference.json', 'utf8')) as { promptIds: number[]; greedyTokens: number[] };
