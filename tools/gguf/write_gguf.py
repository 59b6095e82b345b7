#!/usr/bin/env python3
"""Writes a Hugging Face-layout llama-family model folder (config.json, model.safetensors or its
shards, tokenizer.json, tokenizer_config.json) as one GGUF v3 file, following the GGUF spec
(ggml/docs/gguf.md) and llama.cpp's conventions (convert_hf_to_gguf.py, gguf-py) so that llama.cpp
and wllama run the file: llama.* / qwen2.* metadata, a "gpt2" BPE tokenizer, tensor names
token_embd / blk.N.attn_q / ... / output, and q_proj / k_proj rows permuted for llama's RoPE.

  /usr/bin/python3 tools/gguf/write_gguf.py public/models/demo-target /tmp/demo-target-q8_0.gguf --type q8_0

--type: f32 | f16 | bf16 | q8_0 | q4_0 | q4_k (Q4_K projections, attn_v and ffn_down in Q6_K,
the way llama.cpp's Q4_K_M keeps some of them) | q6_k.
Norms (and biases) stay F32. token_embd and output stay F16 unless --quantize-embeddings (so a
q8_0 / q4_0 file holds the same blocks as the runtime's --quant q8_0 / q4_0, which keeps them
dense). A matrix whose rows cannot be cut into blocks of the type falls back to Q8_0 (if the row
length is a multiple of 32) or F16, as convert_hf_to_gguf.py falls back, and the script says so.
Needs numpy only.
"""
import argparse
import json
import os
import re
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ggml_blocks as G  # noqa: E402

ALIGNMENT = 32
NOTES = set()  # fallback messages already printed (one per kind of tensor)
# GGUF metadata value types (gguf.md)
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
# llama_ftype (general.file_type)
FILE_TYPE = {'f32': 0, 'f16': 1, 'q4_0': 2, 'q8_0': 7, 'q4_k': 15, 'q6_k': 18, 'bf16': 32}
MAIN_TYPE = {'f32': 'F32', 'f16': 'F16', 'bf16': 'BF16', 'q8_0': 'Q8_0', 'q4_0': 'Q4_0', 'q4_k': 'Q4_K', 'q6_k': 'Q6_K'}
# llama_token_type
TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED = 1, 3, 4, 5

ARCH = {'LlamaForCausalLM': 'llama', 'MistralForCausalLM': 'llama', 'Qwen2ForCausalLM': 'qwen2'}
LAYER_NAMES = {
    'input_layernorm.weight': 'attn_norm.weight',
    'self_attn.q_proj.weight': 'attn_q.weight',
    'self_attn.k_proj.weight': 'attn_k.weight',
    'self_attn.v_proj.weight': 'attn_v.weight',
    'self_attn.q_proj.bias': 'attn_q.bias',
    'self_attn.k_proj.bias': 'attn_k.bias',
    'self_attn.v_proj.bias': 'attn_v.bias',
    'self_attn.o_proj.weight': 'attn_output.weight',
    'post_attention_layernorm.weight': 'ffn_norm.weight',
    'mlp.gate_proj.weight': 'ffn_gate.weight',
    'mlp.up_proj.weight': 'ffn_up.weight',
    'mlp.down_proj.weight': 'ffn_down.weight',
}
GLOBAL_NAMES = {'model.embed_tokens.weight': 'token_embd.weight', 'model.norm.weight': 'output_norm.weight',
                'lm_head.weight': 'output.weight'}


# ---- reading the Hugging Face folder ------------------------------------------------------------

def read_safetensors(folder):
    """name -> f32 array, from model.safetensors or the shards named in its index."""
    index = os.path.join(folder, 'model.safetensors.index.json')
    files = sorted(set(json.load(open(index))['weight_map'].values())) if os.path.exists(index) else ['model.safetensors']
    out = {}
    for f in files:
        with open(os.path.join(folder, f), 'rb') as fh:
            raw = fh.read()
        n = struct.unpack('<Q', raw[:8])[0]
        header = json.loads(raw[8:8 + n])
        for name, e in header.items():
            if name == '__metadata__':
                continue
            a, b = e['data_offsets']
            buf = np.frombuffer(raw, dtype=np.uint8, count=b - a, offset=8 + n + a)
            if e['dtype'] == 'F32':
                v = buf.view('<f4')
            elif e['dtype'] == 'F16':
                v = buf.view('<f2').astype(np.float32)
            elif e['dtype'] == 'BF16':
                v = (buf.view('<u2').astype(np.uint32) << 16).view(np.float32)
            else:
                sys.exit(f'{f}: {name} has dtype {e["dtype"]}; only F32/F16/BF16 are written')
            out[name] = v.astype(np.float32).reshape(e['shape'])
    return out


def permute(w, n_head):
    """convert_hf_to_gguf.py LlamaModel.permute: HF's rotate_half row order -> GGML's interleaved
    pairs (rows [h, 2, d/2] -> [h, d/2, 2])."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def load_json(folder, name):
    p = os.path.join(folder, name)
    return json.load(open(p)) if os.path.exists(p) else {}


# ---- GGUF encoding ------------------------------------------------------------------------------

def gguf_string(s):
    b = s.encode('utf-8')
    return struct.pack('<Q', len(b)) + b


SCALAR = {U8: '<B', I8: '<b', U16: '<H', I16: '<h', U32: '<I', I32: '<i', F32: '<f', BOOL: '<?', U64: '<Q', I64: '<q', F64: '<d'}


def gguf_value(vtype, v):
    if vtype == STRING:
        return gguf_string(v)
    if isinstance(vtype, tuple):  # (ARRAY, element type)
        et = vtype[1]
        body = b''.join(gguf_string(x) for x in v) if et == STRING else np.asarray(v, dtype=SCALAR[et]).tobytes()
        return struct.pack('<IQ', et, len(v)) + body
    return struct.pack(SCALAR[vtype], v)


def write_gguf(path, kv, tensors):
    """kv: [(key, vtype, value)], tensors: [(name, shape [out, in] numpy order, type name, bytes)]."""
    head = bytearray(b'GGUF' + struct.pack('<IQQ', 3, len(tensors), len(kv)))
    for key, vtype, value in kv:
        head += gguf_string(key) + struct.pack('<I', ARRAY if isinstance(vtype, tuple) else vtype) + gguf_value(vtype, value)
    offset = 0
    for name, shape, tname, data in tensors:
        dims = list(reversed(shape))  # GGML's ne[0] is the innermost (row length)
        head += gguf_string(name) + struct.pack('<I', len(dims)) + struct.pack(f'<{len(dims)}Q', *dims)
        head += struct.pack('<IQ', G.BLOCK[tname][0], offset)
        offset += -(-len(data) // ALIGNMENT) * ALIGNMENT
    head += bytes(-len(head) % ALIGNMENT)
    with open(path, 'wb') as f:
        f.write(head)
        for _, _, _, data in tensors:
            f.write(data.tobytes())
            f.write(bytes(-len(data) % ALIGNMENT))


# ---- the conversion -----------------------------------------------------------------------------

def tensor_type(gguf_name, row, file_type, quantize_embeddings):
    if gguf_name.endswith('norm.weight') or gguf_name.endswith('.bias'):
        return 'F32'
    want = MAIN_TYPE[file_type]
    if gguf_name in ('token_embd.weight', 'output.weight') and not quantize_embeddings and want not in ('F32', 'BF16'):
        want = 'F16'
    if file_type == 'q4_k' and (gguf_name.endswith('attn_v.weight') or gguf_name.endswith('ffn_down.weight')):
        want = 'Q6_K'
    per_block = G.BLOCK[want][1]
    if row % per_block:
        fallback = 'Q8_0' if want != 'Q8_0' and row % 32 == 0 and want.startswith('Q') else 'F16'
        kind = re.sub(r'blk\.\d+\.', 'blk.*.', gguf_name)
        note = f'  {kind}: row length {row} is not a multiple of {per_block}: {want} -> {fallback}'
        if note not in NOTES:
            NOTES.add(note)
            print(note)
        want = fallback
    return want


def convert(folder, out, file_type, quantize_embeddings=False, name=None, pre='gpt-2'):
    config = load_json(folder, 'config.json')
    arch_hf = (config.get('architectures') or ['?'])[0]
    if arch_hf not in ARCH:
        sys.exit(f'{folder}: architecture {arch_hf} is not llama-family (supported: {", ".join(ARCH)})')
    arch = ARCH[arch_hf]
    hidden, heads = config['hidden_size'], config['num_attention_heads']
    kv_heads = config.get('num_key_value_heads', heads)
    head_dim = config.get('head_dim') or hidden // heads
    if config.get('rope_scaling'):
        sys.exit(f'{folder}: rope_scaling {config["rope_scaling"]} is not written by this script')
    gen = load_json(folder, 'generation_config.json')
    tok_config = load_json(folder, 'tokenizer_config.json')
    tokenizer = load_json(folder, 'tokenizer.json')

    kv = [
        ('general.architecture', STRING, arch),
        ('general.name', STRING, name or os.path.basename(os.path.normpath(folder))),
        ('general.file_type', U32, FILE_TYPE[file_type]),
        ('general.quantization_version', U32, 2),
        (f'{arch}.vocab_size', U32, config['vocab_size']),
        (f'{arch}.context_length', U32, config.get('max_position_embeddings', 2048)),
        (f'{arch}.embedding_length', U32, hidden),
        (f'{arch}.block_count', U32, config['num_hidden_layers']),
        (f'{arch}.feed_forward_length', U32, config['intermediate_size']),
        (f'{arch}.rope.dimension_count', U32, head_dim),
        (f'{arch}.rope.freq_base', F32, float(config.get('rope_theta', 10000.0))),
        (f'{arch}.attention.head_count', U32, heads),
        (f'{arch}.attention.head_count_kv', U32, kv_heads),
        (f'{arch}.attention.key_length', U32, head_dim),
        (f'{arch}.attention.value_length', U32, head_dim),
        (f'{arch}.attention.layer_norm_rms_epsilon', F32, float(config.get('rms_norm_eps', 1e-6))),
    ]
    kv += special_ids_kv(config, gen)
    if tokenizer:
        kv += tokenizer_kv(tokenizer, tok_config, config, pre)
    else:
        print(f'  {folder} has no tokenizer.json: the file has no tokenizer (llama.cpp cannot run it; tests can)')

    weights = read_safetensors(folder)
    tied = config.get('tie_word_embeddings', False) or 'lm_head.weight' not in weights
    tensors = []
    for hf_name, w in weights.items():
        if hf_name in GLOBAL_NAMES:
            gname = GLOBAL_NAMES[hf_name]
            if gname == 'output.weight' and tied:
                continue
        elif hf_name.startswith('model.layers.'):
            _, _, layer, rest = hf_name.split('.', 3)
            if rest not in LAYER_NAMES:
                sys.exit(f'{folder}: tensor {hf_name} has no GGUF name here')
            gname = f'blk.{layer}.{LAYER_NAMES[rest]}'
            if arch == 'llama' and rest.startswith('self_attn.q_proj'):
                w = permute(w, heads)
            elif arch == 'llama' and rest.startswith('self_attn.k_proj'):
                w = permute(w, kv_heads)
        else:
            sys.exit(f'{folder}: tensor {hf_name} has no GGUF name here')
        tname = tensor_type(gname, w.shape[-1], file_type, quantize_embeddings)
        tensors.append((gname, list(w.shape), tname, G.quantize(w, tname)))
    order = {'token_embd.weight': 0, 'output_norm.weight': 2, 'output.weight': 3}
    tensors.sort(key=lambda t: (order.get(t[0], 1), int(t[0].split('.')[1]) if t[0].startswith('blk.') else 0, t[0]))
    write_gguf(out, kv, tensors)
    counts = {}
    for t in tensors:
        counts[t[2]] = counts.get(t[2], 0) + 1
    print(f'{out}: {len(tensors)} tensors {counts}, {os.path.getsize(out)} bytes')


def special_ids_kv(config, gen):
    """bos / eos / pad ids; a second eos id (chat models list several) becomes eot, which llama.cpp
    also ends generation on."""
    bos = gen.get('bos_token_id', config.get('bos_token_id'))
    eos = gen.get('eos_token_id', config.get('eos_token_id'))
    eos = [] if eos is None else eos if isinstance(eos, list) else [eos]
    pad = gen.get('pad_token_id', config.get('pad_token_id'))
    if len(eos) > 2:
        print(f'  eos ids {eos}: GGUF holds eos and eot; {eos[2:]} are dropped')
    kv = []
    for key, v in (('bos_token_id', bos), ('eos_token_id', eos[0] if eos else None),
                   ('eot_token_id', eos[1] if len(eos) > 1 else None), ('padding_token_id', pad)):
        if v is not None:
            kv.append((f'tokenizer.ggml.{key}', U32, int(v)))
    return kv


def tokenizer_kv(tokenizer, tok_config, config, pre='gpt-2'):
    model = tokenizer.get('model', {})
    if model.get('type') != 'BPE':
        sys.exit(f'tokenizer.json model {model.get("type")}: only byte-level BPE ("gpt2") is written')
    hf_pre = json.dumps(tokenizer.get('pre_tokenizer'))
    if 'ByteLevel' not in hf_pre:
        sys.exit('tokenizer.json: not a byte-level BPE (no ByteLevel pre-tokenizer)')
    vocab = dict(model['vocab'])
    special = {}
    for t in tokenizer.get('added_tokens', []):
        vocab[t['content']] = t['id']
        special[t['id']] = t.get('special', False)
    n = config['vocab_size']
    tokens = [f'[PAD{i}]' for i in range(n)]  # llama.cpp's padding for ids the tokenizer lacks
    types = [TOKEN_UNUSED] * n
    for tok, i in vocab.items():
        if i >= n:
            sys.exit(f'tokenizer.json: token {tok!r} has id {i} >= vocab_size {n}')
        tokens[i] = tok
        types[i] = TOKEN_CONTROL if special.get(i) else (TOKEN_USER_DEFINED if i in special else TOKEN_NORMAL)
    merges = [m if isinstance(m, str) else ' '.join(m) for m in model.get('merges', [])]
    # llama.cpp names pre-tokenizer regexes by the model they come from; GPT-2's is the default
    # ByteLevel(use_regex) one, which is what a plain ByteLevel pre-tokenizer means.
    kv = [
        ('tokenizer.ggml.model', STRING, 'gpt2'),
        ('tokenizer.ggml.pre', STRING, pre),
        ('tokenizer.ggml.tokens', (ARRAY, STRING), tokens),
        ('tokenizer.ggml.token_type', (ARRAY, I32), types),
        ('tokenizer.ggml.merges', (ARRAY, STRING), merges),
    ]
    kv.append(('tokenizer.ggml.add_bos_token', BOOL, bool(tok_config.get('add_bos_token', False))))
    kv.append(('tokenizer.ggml.add_eos_token', BOOL, bool(tok_config.get('add_eos_token', False))))
    template = tok_config.get('chat_template')
    if isinstance(template, str):
        kv.append(('tokenizer.chat_template', STRING, template))
    return kv


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('folder', help='Hugging Face model folder')
    ap.add_argument('out', help='output .gguf file')
    ap.add_argument('--type', default='f16', choices=sorted(FILE_TYPE))
    ap.add_argument('--quantize-embeddings', action='store_true', help='token_embd / output in --type too')
    ap.add_argument('--name', help='general.name (default: the folder name)')
    ap.add_argument('--tokenizer-pre', default='gpt-2',
                    help='tokenizer.ggml.pre to write (tests: another pre-tokenizer over the same vocabulary; default gpt-2, what a ByteLevel tokenizer.json means)')
    a = ap.parse_args()
    convert(a.folder, a.out, a.type, a.quantize_embeddings, a.name, a.tokenizer_pre)


if __name__ == '__main__':
    main()
