import { describe, expect, it } from 'vitest';
import { buildSafetensors, parseSafetensors, parseShardIndex, SafetensorsError } from '../src/model/safetensors.ts';
import { ModelFormatError } from '../src/common/errors.ts';

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

/** A file with a hand-written header (no validation on the way in). */
function rawFile(header: unknown, dataBytes: number): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  return out;
}

describe('safetensors header', () => {
  it('parses a good file with metadata and absolute offsets', () => {
    const file = buildSafetensors(
      [
        { name: 'b', dtype: 'F32', shape: [2, 2], data: f32Bytes([1, 2, 3, 4]) },
        { name: 'a', dtype: 'F16', shape: [3], data: new Uint8Array(6) },
      ],
      { format: 'pt' },
    );
    const h = parseSafetensors('m.safetensors', file);
    expect(h.metadata).toEqual({ format: 'pt' });
    expect((8 + h.headerLength) % 8).toBe(0);
    const a = h.tensors.get('a');
    const b = h.tensors.get('b');
    expect(a).toMatchObject({ dtype: 'F16', shape: [3], start: h.dataStart, end: h.dataStart + 6 });
    expect(b).toMatchObject({ dtype: 'F32', shape: [2, 2], start: h.dataStart + 6, end: h.dataStart + 22 });
    expect([...new Float32Array(file.slice(b!.start, b!.end).buffer)]).toEqual([1, 2, 3, 4]);
  });

  it('accepts scalars and empty tensors', () => {
    const h = parseSafetensors('m', rawFile({ s: { dtype: 'F32', shape: [], data_offsets: [0, 4] }, e: { dtype: 'F32', shape: [0, 3], data_offsets: [4, 4] } }, 4));
    expect(h.tensors.size).toBe(2);
  });

  const bad: [string, Uint8Array, RegExp][] = [
    ['a file shorter than 8 bytes', new Uint8Array(5), /m\.safetensors: file is 5 bytes, too short/],
    ['a header length longer than the file', (() => { const f = rawFile({}, 0); new DataView(f.buffer).setBigUint64(0, 1000n, true); return f; })(), /header length 1000 is longer than the file/],
    ['a huge header length', (() => { const f = rawFile({}, 0); new DataView(f.buffer).setBigUint64(0, 2n ** 60n, true); return f; })(), /header length \d+ is longer/],
    ['bad JSON', (() => { const f = rawFile({ x: 1 }, 0); f[9] = 0x7b; f[10] = 0x7b; return f; })(), /header is not valid JSON/],
    ['a JSON array header', rawFile([1, 2], 0), /not a JSON object/],
    ['a truncated file (offsets past the end)', rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 12), /tensor "w": data_offsets \[0, 16\] run past the end of the data \(12 bytes; file truncated\?\)/],
    ['offsets that do not match shape x dtype', rawFile({ w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } }, 16), /tensor "w": data_offsets \[0, 12\] hold 12 bytes but F32 \[2,2\] needs 16/],
    ['reversed offsets', rawFile({ w: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }, 16), /tensor "w": data_offsets \[8, 4\] are reversed/],
    ['overlapping tensors', rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12), /tensors "a" and "b" overlap/],
    ['an unknown dtype', rawFile({ w: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }, 16), /tensor "w": unknown dtype "F128"/],
    ['a negative shape', rawFile({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4), /tensor "w": shape \[-1\]/],
    ['a missing data_offsets', rawFile({ w: { dtype: 'F32', shape: [1] } }, 4), /tensor "w": data_offsets undefined/],
    ['non-string metadata', rawFile({ __metadata__: { a: 1 } }, 0), /__metadata__\.a is not a string/],
  ];
  for (const [what, file, message] of bad) {
    it(`rejects ${what}`, () => {
      expect(() => parseSafetensors('m.safetensors', file)).toThrow(SafetensorsError);
      expect(() => parseSafetensors('m.safetensors', file)).toThrow(ModelFormatError);
      expect(() => parseSafetensors('m.safetensors', file)).toThrow(message);
    });
  }

  it('parses a shard index and rejects paths that escape the folder', () => {
    const m = parseShardIndex({ metadata: { total_size: 8 }, weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } });
    expect(m.get('b')).toBe('model-00002-of-00002.safetensors');
    expect(() => parseShardIndex({ weight_map: { a: '../secret' } })).toThrow(/not a plain file name/);
    expect(() => parseShardIndex({})).toThrow(/no "weight_map"/);
  });
});
