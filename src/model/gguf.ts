// A GGUF file (llama.cpp's format) as a model source. The header and tensor index are read with
// @huggingface/gguf over the source's own Range reads (never the tensor data), and the file is
// presented as the Hugging Face folder the rest of src/model reads: config.json,
// generation_config.json, tokenizer.json and tokenizer_config.json are written from the metadata,
// and the tensors are indexed under their Hugging Face names, with their GGML type and whether
// their rows carry llama.cpp's q/k permutation (undone by weights.ts as each stage loads them).
import { gguf as parseGguf, type GGUFTensorInfo, type MetadataValue } from '@huggingface/gguf';
import { ModelSourceError, urlSource, type FileStat, type ModelSource, type UrlSourceOptions } from './source.ts';
import type { TensorInfo } from './safetensors.ts';
import { GGML_TYPES, ggmlTypeOf, type GgmlType } from './ggml-blocks.ts';
import { BadRequestError, ModelFormatError } from '../common/errors.ts';
import { once } from '../common/once.ts';
import { chooseWeightCache, weightCacheKey, type WeightCacheChoice } from './cache.ts';

/** A GGUF file is malformed, or holds an architecture, tokenizer or tensor type we do not run. */
export class GgufError extends ModelFormatError {
  override name = 'GgufError';
}

/** A tensor of a GGUF file, indexed under its Hugging Face name. */
export interface GgufTensorInfo extends TensorInfo {
  /** How GGUF stores it. */
  ggml: GgmlType;
  /** Heads whose rows llama.cpp permuted (llama's attn_q / attn_k), or null. */
  permutedHeads: number | null;
}

/** True for an index entry that comes from a GGUF file. */
export function isGgufTensor(t: TensorInfo): t is GgufTensorInfo {
  return 'ggml' in t;
}

/** True for a GGUF tensor stored in blocks (Q8_0, Q4_K ...: its dtype is 'U8', raw bytes). */
export function isGgufBlocks(t: TensorInfo): t is GgufTensorInfo {
  return isGgufTensor(t) && t.dtype === 'U8';
}

/** What readGguf found: the metadata and the tensors (Hugging Face names), checked against the file size. */
export interface GgufModel {
  file: string;
  stat: FileStat;
  metadata: ReadonlyMap<string, MetadataValue>;
  tensors: Map<string, GgufTensorInfo>;
  /** The architecture as llama.cpp names it ('llama', 'qwen2'). */
  arch: string;
}

/** GGUF architecture -> the Hugging Face class whose computation is the same. */
const ARCHS: Record<string, string> = { llama: 'LlamaForCausalLM', qwen2: 'Qwen2ForCausalLM' };

/** llama.cpp's tensor names -> Hugging Face's (per layer: `blk.N.` -> `model.layers.N.`). */
const GLOBAL_NAMES: Record<string, string> = {
  'token_embd.weight': 'model.embed_tokens.weight',
  'output_norm.weight': 'model.norm.weight',
  'output.weight': 'lm_head.weight',
};
const LAYER_NAMES: Record<string, string> = {
  'attn_norm.weight': 'input_layernorm.weight',
  'attn_q.weight': 'self_attn.q_proj.weight',
  'attn_k.weight': 'self_attn.k_proj.weight',
  'attn_v.weight': 'self_attn.v_proj.weight',
  'attn_q.bias': 'self_attn.q_proj.bias',
  'attn_k.bias': 'self_attn.k_proj.bias',
  'attn_v.bias': 'self_attn.v_proj.bias',
  'attn_output.weight': 'self_attn.o_proj.weight',
  'ffn_norm.weight': 'post_attention_layernorm.weight',
  'ffn_gate.weight': 'mlp.gate_proj.weight',
  'ffn_up.weight': 'mlp.up_proj.weight',
  'ffn_down.weight': 'mlp.down_proj.weight',
};

/** The Hugging Face name of a GGUF tensor, or null for one the runtime does not use (rope_freqs ...). */
function hfTensorName(ggufName: string): string | null {
  if (ggufName in GLOBAL_NAMES) return GLOBAL_NAMES[ggufName];
  const m = /^blk\.(\d+)\.(.+)$/.exec(ggufName);
  return m && m[2] in LAYER_NAMES ? `model.layers.${m[1]}.${LAYER_NAMES[m[2]]}` : null;
}

type Parsed = Awaited<ReturnType<typeof parseGguf>>;

/**
 * @huggingface/gguf's parse of `file`. Its reader asks for 2 MB chunks through a `fetch`; ours
 * answers each from `header` (bytes [0, data start) from the cache: the parser never reads past
 * them) or from `source.readRange`, keeping what it read in `read`.
 */
async function parseWith(source: ModelSource, file: string, size: number, header: Uint8Array | null, read: Uint8Array[], signal?: AbortSignal): Promise<Parsed> {
  const rangeFetch = async (_input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const range = /bytes=(\d+)-(\d+)/.exec(new Headers(init?.headers).get('Range') ?? '');
    if (!range) throw new GgufError(`${file}: the GGUF reader asked for no byte range`);
    const start = Math.min(Number(range[1]), size);
    const end = Math.min(Number(range[2]) + 1, size);
    let bytes: Uint8Array<ArrayBuffer>;
    if (header) {
      bytes = header.slice(Math.min(start, header.byteLength), Math.min(end, header.byteLength));
    } else {
      bytes = await source.readRange(file, start, end, signal);
      read.push(bytes);
    }
    return new Response(bytes, { status: 206, headers: { 'Content-Range': `bytes ${start}-${Math.max(start, end - 1)}/${size}` } });
  };
  try {
    // The reader wants an http(s) URI in Node; it only hands it back to rangeFetch.
    return await parseGguf(`https://gguf.invalid/${encodeURIComponent(file)}`, { fetch: rangeFetch as typeof fetch });
  } catch (e) {
    if (e instanceof ModelSourceError || signal?.aborted) throw e;
    throw new GgufError(`${file}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Reads the header and tensor index of `file` with @huggingface/gguf over `source`'s Range reads
 * (URLs, picked files and Node directories alike; no tensor byte is read here). The header's bytes
 * are kept in the weight cache (`cache`, as loads take it; keyed by URL + size + etag), so a reload
 * reads none of the file again; a cached header that does not parse is a miss.
 */
export async function readGguf(source: ModelSource, file: string, opts: { signal?: AbortSignal; cache?: WeightCacheChoice } = {}): Promise<GgufModel> {
  const { signal } = opts;
  const stat = await source.stat(file, signal);
  const url = source.cacheKey(file);
  const cache = url === null ? null : chooseWeightCache(opts.cache, (m) => source.warnings.push(m));
  const key = url === null ? '' : weightCacheKey(url, stat, '__gguf_header__');
  const [cached] = cache ? await cache.getMany([{ key, bytes: -1 }]) : [null];
  const read: Uint8Array[] = [];
  let parsed: Parsed | null = null;
  if (cached) parsed = await parseWith(source, file, stat.size, cached, read, signal).catch(() => null);
  if (!parsed) {
    parsed = await parseWith(source, file, stat.size, null, read, signal);
    if (cache) {
      // The chunks were read in order from byte 0; keep [0, data start).
      const header = new Uint8Array(Math.min(Number(parsed.tensorDataOffset), read.reduce((a, b) => a + b.byteLength, 0)));
      let at = 0;
      for (const b of read) {
        if (at >= header.byteLength) break;
        header.set(b.subarray(0, header.byteLength - at), at);
        at += b.byteLength;
      }
      await cache.putMany([{ key, data: header }]);
    }
  }
  if (!parsed.littleEndian) throw new GgufError(`${file}: big-endian GGUF files are not supported`);
  const metadata = new Map<string, MetadataValue>(Object.entries(parsed.metadata as Record<string, MetadataValue>));
  const arch = metadata.get('general.architecture');
  if (typeof arch !== 'string' || !(arch in ARCHS)) {
    throw new GgufError(`${file}: architecture ${JSON.stringify(arch)} is not supported (supported: ${Object.keys(ARCHS).join(', ')})`);
  }
  if (Number(metadata.get(`${arch}.expert_count`) ?? 0) > 0) throw new GgufError(`${file}: mixture-of-experts models (${arch}.expert_count) are not supported`);
  const heads = Number(metadata.get(`${arch}.attention.head_count`));
  const kvHeads = Number(metadata.get(`${arch}.attention.head_count_kv`) ?? heads);
  const dataStart = Number(parsed.tensorDataOffset);
  const tensors = new Map<string, GgufTensorInfo>();
  const unknown: string[] = [];
  for (const t of parsed.tensorInfos) {
    const name = hfTensorName(t.name);
    if (name === null) unknown.push(t.name);
    else tensors.set(name, tensorInfo(t, name, file, dataStart, stat.size, arch === 'llama' ? { q: heads, k: kvHeads } : null));
  }
  // A tensor we would ignore changes the computation (Llama 3.1's rope_freqs scales RoPE, q/k norms ...).
  if (unknown.includes('rope_freqs.weight')) throw new GgufError(`${file}: RoPE frequency factors (rope_freqs.weight, Llama 3.1-style scaling) are not supported`);
  if (unknown.length > 0) throw new GgufError(`${file}: tensors this runtime does not know how to use: ${unknown.slice(0, 5).join(', ')}${unknown.length > 5 ? ` and ${unknown.length - 5} more` : ''}`);
  return { file, stat, metadata, tensors, arch };
}

function tensorInfo(t: GGUFTensorInfo, name: string, file: string, dataStart: number, fileSize: number, permute: { q: number; k: number } | null): GgufTensorInfo {
  const type = ggmlTypeOf(t.dtype);
  if (type === null) {
    const supported = Object.keys(GGML_TYPES).join(', ');
    throw new GgufError(`${file}: tensor ${t.name} has GGML type ${t.dtype}, which this runtime does not read (supported: ${supported})`);
  }
  // GGML lists dimensions innermost first; Hugging Face's shape is [out, in].
  const shape = t.shape.map(Number).reverse();
  const count = shape.reduce((a, b) => a * b, 1);
  const { values, bytes } = GGML_TYPES[type];
  if (count % values !== 0 || shape[shape.length - 1] % values !== 0) {
    throw new GgufError(`${file}: tensor ${t.name} [${shape.join(', ')}] is not whole ${type} blocks`);
  }
  const start = dataStart + Number(t.offset);
  const end = start + (count / values) * bytes;
  if (end > fileSize) throw new GgufError(`${file}: tensor ${t.name} ends at byte ${end}, past the end of the ${fileSize}-byte file (truncated?)`);
  const dtype = type === 'F32' || type === 'F16' || type === 'BF16' ? type : 'U8';
  const heads = permute && /attn_q\.(weight|bias)$/.test(t.name) ? permute.q : permute && /attn_k\.(weight|bias)$/.test(t.name) ? permute.k : null;
  return { name, file, dtype, shape, start, end, ggml: type, permutedHeads: heads };
}

function num(meta: ReadonlyMap<string, MetadataValue>, key: string, file: string, fallback?: number): number {
  const v = meta.get(key);
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number' && typeof v !== 'bigint') throw new GgufError(`${file}: metadata ${key} is missing or not a number`);
  return Number(v);
}

function strings(meta: ReadonlyMap<string, MetadataValue>, key: string, file: string): string[] {
  const v = meta.get(key);
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new GgufError(`${file}: metadata ${key} is missing or not a list of strings`);
  return v as string[];
}

/** config.json and generation_config.json as the Hugging Face checkpoint would have them. */
function ggufConfig(g: GgufModel): { config: Record<string, unknown>; generation: Record<string, unknown> } {
  const { metadata: m, arch, file } = g;
  const key = (k: string): string => `${arch}.${k}`;
  const hidden = num(m, key('embedding_length'), file);
  const heads = num(m, key('attention.head_count'), file);
  const headDim = num(m, key('attention.key_length'), file, hidden / heads);
  if (num(m, key('attention.value_length'), file, headDim) !== headDim) throw new GgufError(`${file}: key_length != value_length is not supported`);
  if (num(m, key('rope.dimension_count'), file, headDim) !== headDim) throw new GgufError(`${file}: RoPE on part of each head (rope.dimension_count) is not supported`);
  const scaling = m.get(key('rope.scaling.type'));
  if (scaling !== undefined && scaling !== 'none') throw new GgufError(`${file}: rope scaling ${JSON.stringify(scaling)} is not supported (only unscaled RoPE)`);
  const optionalId = (k: string): number | undefined => (m.has(k) ? num(m, k, file) : undefined);
  const bos = optionalId('tokenizer.ggml.bos_token_id');
  // llama.cpp ends generation on eos, eot (end of turn) and eom (end of message).
  const eos = ['eos', 'eot', 'eom'].map((k) => optionalId(`tokenizer.ggml.${k}_token_id`)).filter((id) => id !== undefined);
  const config: Record<string, unknown> = {
    architectures: [ARCHS[arch]],
    hidden_size: hidden,
    intermediate_size: num(m, key('feed_forward_length'), file),
    num_hidden_layers: num(m, key('block_count'), file),
    num_attention_heads: heads,
    num_key_value_heads: num(m, key('attention.head_count_kv'), file, heads),
    head_dim: headDim,
    // llama.cpp takes the vocabulary size from token_embd when the metadata has none.
    vocab_size: num(m, key('vocab_size'), file, g.tensors.get('model.embed_tokens.weight')?.shape[0]),
    max_position_embeddings: num(m, key('context_length'), file),
    rope_theta: num(m, key('rope.freq_base'), file, 10000),
    rms_norm_eps: num(m, key('attention.layer_norm_rms_epsilon'), file),
    tie_word_embeddings: !g.tensors.has('lm_head.weight'),
    attention_bias: g.tensors.has('model.layers.0.self_attn.q_proj.bias'),
    hidden_act: 'silu',
    bos_token_id: bos ?? null,
    eos_token_id: eos,
  };
  return { config, generation: { bos_token_id: bos ?? null, eos_token_id: eos } };
}

/**
 * tokenizer.ggml.pre -> the pre-tokenizer of the Hugging Face tokenizer.json it came from (the
 * regexes of llama.cpp's llama-vocab.cpp for these names; tests cross-check with llama.cpp itself):
 * GPT-2's ByteLevel regex, or a Split on Llama 3's / Qwen2's regex before a plain ByteLevel.
 */
const SPLIT_REGEX: Record<string, string> = {
  'llama-bpe': "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  qwen2: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};
const PRE_TOKENIZERS = ['gpt-2', 'default', ...Object.keys(SPLIT_REGEX)];

function preTokenizer(pre: string): Record<string, unknown> {
  const byteLevel = (useRegex: boolean) => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: useRegex });
  if (!(pre in SPLIT_REGEX)) return byteLevel(true);
  return { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: SPLIT_REGEX[pre] }, behavior: 'Isolated', invert: false }, byteLevel(false)] };
}

// llama_token_type: 3 control (special), 4 user-defined (added but not special).
const TOKEN_CONTROL = 3;
const TOKEN_USER_DEFINED = 4;

/**
 * tokenizer.json and tokenizer_config.json from the tokenizer.ggml.* metadata, for byte-level BPE
 * ("gpt2") vocabularies with GPT-2's pre-tokenizer; `null` when the file has no tokenizer.
 */
function ggufTokenizer(g: GgufModel): { tokenizer: Record<string, unknown>; config: Record<string, unknown> } | null {
  const { metadata: m, file } = g;
  const model = m.get('tokenizer.ggml.model');
  if (model === undefined || model === 'no_vocab') return null;
  if (model !== 'gpt2') throw new GgufError(`${file}: tokenizer.ggml.model ${JSON.stringify(model)} is not supported (only "gpt2", byte-level BPE)`);
  const pre = m.get('tokenizer.ggml.pre') ?? 'default';
  if (typeof pre !== 'string' || !PRE_TOKENIZERS.includes(pre)) {
    throw new GgufError(`${file}: tokenizer.ggml.pre ${JSON.stringify(pre)} is not supported (supported: ${PRE_TOKENIZERS.join(', ')})`);
  }
  const tokens = strings(m, 'tokenizer.ggml.tokens', file);
  const merges = strings(m, 'tokenizer.ggml.merges', file);
  const typesValue = m.get('tokenizer.ggml.token_type');
  const types = Array.isArray(typesValue) ? typesValue.map(Number) : [];
  const vocab: Record<string, number> = {};
  const added: Record<string, unknown>[] = [];
  tokens.forEach((t, id) => {
    vocab[t] = id;
    if (types[id] === TOKEN_CONTROL || types[id] === TOKEN_USER_DEFINED) {
      added.push({ id, content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: types[id] === TOKEN_CONTROL });
    }
  });
  const tokenOf = (k: string): string | null => (m.has(k) ? (tokens[num(m, k, file)] ?? null) : null);
  const bos = tokenOf('tokenizer.ggml.bos_token_id');
  const addBos = m.get('tokenizer.ggml.add_bos_token') === true && bos !== null;
  const bosId = addBos ? num(m, 'tokenizer.ggml.bos_token_id', file) : -1;
  const tokenizer = {
    version: '1.0',
    added_tokens: added,
    // Qwen2's tokenizer.json normalizes to NFC.
    normalizer: pre === 'qwen2' ? { type: 'NFC' } : null,
    pre_tokenizer: preTokenizer(pre),
    post_processor: addBos
      ? {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
          special_tokens: { [bos]: { id: bos, ids: [bosId], tokens: [bos] } },
        }
      : null,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
  const config: Record<string, unknown> = { bos_token: bos, eos_token: tokenOf('tokenizer.ggml.eos_token_id'), add_bos_token: addBos };
  const template = m.get('tokenizer.chat_template');
  if (typeof template === 'string') config.chat_template = template;
  return { tokenizer, config };
}

/** The files a GGUF source answers for the Hugging Face layout. */
const VIRTUAL_FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json'] as const;

/** The GGUF model behind sources made by ggufSource. */
const ggufOf = new WeakMap<ModelSource, (signal?: AbortSignal) => Promise<GgufModel>>();

/** The parsed GGUF file behind `source`, or null when it is not a GGUF source. */
export function ggufModelOf(source: ModelSource, signal?: AbortSignal): Promise<GgufModel> | null {
  return ggufOf.get(source)?.(signal) ?? null;
}

/**
 * The GGUF file `file` of `inner` as a Hugging Face-layout source: the JSON files are written from
 * its metadata (read once; the header is kept in `cache`, see readGguf), the tensor bytes are
 * `inner`'s (same file name, same cache keys).
 */
export function ggufSource(inner: ModelSource, file: string, cache: WeightCacheChoice = true): ModelSource {
  const parsed = new Map<string, Promise<GgufModel>>();
  const model = (signal?: AbortSignal): Promise<GgufModel> => once(parsed, file, () => readGguf(inner, file, { signal, cache }));
  const files = new Map<string, Promise<Record<string, unknown> | null>>();
  const json = (name: string, signal?: AbortSignal): Promise<Record<string, unknown> | null> =>
    once(files, name, async () => {
      const g = await model(signal);
      if (name === 'config.json' || name === 'generation_config.json') {
        const { config, generation } = ggufConfig(g);
        return name === 'config.json' ? config : generation;
      }
      const tok = ggufTokenizer(g);
      return tok && (name === 'tokenizer.json' ? tok.tokenizer : tok.config);
    });
  const isVirtual = (name: string): boolean => (VIRTUAL_FILES as readonly string[]).includes(name);
  const source: ModelSource = {
    description: `${inner.description}${inner.description.endsWith('/') ? '' : '/'}${file}`,
    warnings: inner.warnings,
    cacheKey: (f) => inner.cacheKey(f),
    stat: (f, signal) => inner.stat(f, signal),
    readRange: (f, start, end, signal) => inner.readRange(f, start, end, signal),
    async readOptionalJson(name, signal) {
      return isVirtual(name) ? json(name, signal) : null;
    },
    async readJson(name, signal) {
      const v = isVirtual(name) ? await json(name, signal) : null;
      if (v === null) throw new ModelSourceError(`${file}: a GGUF file has no ${name}`);
      return v;
    },
    async readText(name, signal) {
      return JSON.stringify(await this.readJson(name, signal));
    },
  };
  ggufOf.set(source, model);
  return source;
}

/** True for a model location that names a GGUF file (a path or URL ending in .gguf, query aside). */
export function isGgufLocation(location: string): boolean {
  return /\.gguf$/i.test(location.split(/[?#]/)[0]);
}

/**
 * The source for a model URL: a Hugging Face folder (urlSource), or, for a URL of a .gguf file,
 * that file as a folder (ggufSource over urlSource of its directory, its header kept in `cache`).
 */
export function modelSource(url: string, options: UrlSourceOptions & { cache?: WeightCacheChoice } = {}): ModelSource {
  if (!isGgufLocation(url)) return urlSource(url, options);
  const path = url.split(/[?#]/)[0];
  const cut = path.lastIndexOf('/');
  if (cut < 0) throw new BadRequestError(`model URL ${JSON.stringify(url)}: cannot tell the directory of the GGUF file`);
  return ggufSource(urlSource(path.slice(0, cut + 1), options), decodeURIComponent(path.slice(cut + 1)), options.cache);
}
