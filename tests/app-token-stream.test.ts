// TokenStream: the Generation every engine returns (tokens as an async iterable + a report).
import { describe, expect, it } from 'vitest';
import { TokenStream, type GenerationReport, type TokenEvent } from '../src/app/engine.ts';

const ev = (i: number): TokenEvent => ({ token: 10 + i, index: i, text: `t${i}`, hit: i % 2 === 0 });
const report = (tokens: number[]): GenerationReport => ({ tokens } as unknown as GenerationReport);

async function collect(it: AsyncIterable<TokenEvent>): Promise<number[]> {
  const out: number[] = [];
  for await (const e of it) out.push(e.token);
  return out;
}

describe('TokenStream', () => {
  it('yields every token in order to each iterator, also ones emitted before it started, then ends', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const s = new TokenStream(async (emit) => {
      emit(ev(0));
      await gate;
      emit(ev(1));
      emit(ev(2));
      return report([10, 11, 12]);
    });
    const a = collect(s);
    const b = collect(s);
    release();
    expect(await a).toEqual([10, 11, 12]);
    expect(await b).toEqual([10, 11, 12]);
    expect((await s.report).tokens).toEqual([10, 11, 12]);
  });

  it('rethrows a failure to the iterator after the tokens that came before it, and rejects the report', async () => {
    const s = new TokenStream(async (emit) => {
      emit(ev(0));
      await Promise.resolve();
      throw new Error('stage lost');
    });
    const seen: number[] = [];
    await expect(
      (async () => {
        for await (const e of s) seen.push(e.token);
      })(),
    ).rejects.toThrow('stage lost');
    expect(seen).toEqual([10]);
    await expect(s.report).rejects.toThrow('stage lost');
  });

  it('turns a synchronous throw of the run into a rejected report', async () => {
    const s = new TokenStream<GenerationReport>(() => {
      throw new Error('call load() first');
    });
    await expect(s.report).rejects.toThrow('call load() first');
    await expect(collect(s)).rejects.toThrow('call load() first');
  });
});
