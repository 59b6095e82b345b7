import { describe, expect, it } from 'vitest';
import { createTokenizer, loadTokenizer } from '../src/model/tokenizer.ts';
import { fileSource } from '../src/model/source.ts';
import { ModelFormatError } from '../src/common/errors.ts';

/** GPT-2's byte -> printable character map used by byte-level BPE. */
function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const map: string[] = [];
  bs.forEach((b, i) => (map[b] = String.fromCodePoint(cs[i])));
  return map;
}

/** A tiny byte-level BPE tokenizer in Hugging Face's tokenizer.json format. */
function tinyTokenizerJson(): object {
  const vocab: Record<string, number> = { '<s>': 0, '</s>': 1 };
  for (const ch of bytesToUnicode()) vocab[ch] = Object.keys(vocab).length;
  const merges = ['h e', 'l l', 'he ll', 'hell o', 'Ġ w', 'Ġw o'];
  for (const m of merges) vocab[m.replace(' ', '')] = Object.keys(vocab).length;
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<s>'), special(1, '</s>')],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [0], tokens: ['<s>'] } },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges },
  };
}

/** A Llama-2/Mistral style SentencePiece BPE: Metaspace "▁", byte fallback tokens, Strip decoder. */
function sentencePieceJson(): object {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = Object.keys(vocab).length;
  for (const piece of ['▁', 'h', 'e', 'l', 'o', 'w', 'r', 'd', 'he', 'll', 'hell', 'hello', '▁hello', 'wo', '▁wo', '▁world', 'or', 'ld', 'orld', 'world']) vocab[piece] = Object.keys(vocab).length;
  const merges = ['h e', 'l l', 'he ll', 'hell o', '▁ hello', 'w o', '▁ wo', 'o r', 'l d', 'or ld', 'wo rld', '▁wo rld', 'w orld', '▁ world'];
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }],
    },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges },
  };
}

const config = { bos_token: '<s>', eos_token: { content: '</s>' }, clean_up_tokenization_spaces: false };

describe('tokenizer', () => {
  const tok = createTokenizer(tinyTokenizerJson(), config);

  it('encodes with merges and BOS, decodes back', () => {
    const ids = tok.encode('hello world');
    expect(ids[0]).toBe(0);
    expect(tok.idToToken(ids[1])).toBe('hello');
    expect(tok.idToToken(ids[2])).toBe('Ġwo');
    expect(tok.encode('hello', { addSpecialTokens: false })).toEqual([tok.tokenToId('hello')]);
    expect(tok.decode(ids)).toBe('hello world');
    expect(tok.decode([...ids, 1], { skipSpecialTokens: false })).toBe('<s>hello world</s>');
    expect(tok.bosTokenId).toBe(0);
    expect(tok.eosTokenId).toBe(1);
  });

  it('streams text, holding back incomplete UTF-8 characters', () => {
    const text = 'héllo wörld 世界!';
    const ids = tok.encode(text, { addSpecialTokens: false });
    const stream = tok.stream();
    const pieces = ids.map((id) => stream.push(id));
    expect(pieces.join('')).toBe(text);
    expect(stream.text).toBe(text);
    expect(pieces.some((p) => p === '')).toBe(true); // bytes of é / 世 arrive one token at a time
    expect(pieces.every((p) => !p.includes('\uFFFD'))).toBe(true);
  });

  it('loads from a model source, and is null without tokenizer.json', async () => {
    const source = fileSource({ 'tokenizer.json': new Blob([JSON.stringify(tinyTokenizerJson())]), 'tokenizer_config.json': new Blob([JSON.stringify(config)]) });
    const loaded = await loadTokenizer(source);
    expect(loaded?.decode(loaded.encode('hello'))).toBe('hello');
    expect(await loadTokenizer(fileSource({}))).toBeNull();
  });

  it('rejects a file that is not a tokenizer', () => {
    expect(() => createTokenizer({ foo: 1 })).toThrow(/not a Hugging Face tokenizers file/);
    expect(() => createTokenizer({ foo: 1 })).toThrow(ModelFormatError);
  });

  it('streams a SentencePiece tokenizer: leading spaces kept, byte-fallback characters held until complete', () => {
    const sp = createTokenizer(sentencePieceJson(), { bos_token: '<s>', eos_token: '</s>' });
    const ids = sp.encode('hello world é hello');
    expect(ids[0]).toBe(1);
    expect(sp.idToToken(ids[1])).toBe('▁hello');
    expect(sp.decode(ids)).toBe('hello world é hello');
    const stream = sp.stream();
    const pieces = ids.map((id) => stream.push(id));
    expect(pieces.join('')).toBe('hello world é hello');
    expect(pieces.some((p) => p.startsWith(' w'))).toBe(true); // the space before a word is not lost mid-stream
    expect(pieces.every((p) => !p.includes('\uFFFD'))).toBe(true);
  });
});
