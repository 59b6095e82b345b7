#!/usr/bin/env python3
"""Writes the GGUF files tests/model-gguf.test.ts reads into --out DIR (default: a fresh folder the
test names), from the GGUF spec and ggml_blocks.py, never from the TypeScript runtime:

  blocks.gguf        random held-out matrices with odd row counts in every type the runtime reads
                     (F32 F16 BF16 Q8_0 Q4_0 Q4_K Q6_K), named blk.<i>.ffn_{gate,up,down}.weight
  blocks.json        per tensor: GGUF name, type, shape [rows, cols] and numpy's dequantized values
                     (ggml_blocks.dequantize: written from ggml-quants.c), base64 little-endian f32
  tiny-*-<type>.gguf the fixture models of public/fixtures written by write_gguf.py
  demo-tokenizer.gguf the bundled demo-target's tokenizer (tokenizer.ggml.*, with a chat template
                     added for the test) and no tensors
  bad-*.gguf, truncated.gguf   files the loader must refuse with clear errors (architecture, tensor
                     type, RoPE frequency factors, mixture of experts, a file cut short)

  /usr/bin/python3 tools/gguf/make_gguf_fixtures.py --out /tmp/gguf-fixtures
Deterministic (seeded); needs numpy only.
"""
import argparse
import base64
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ggml_blocks as G  # noqa: E402
import write_gguf as W  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
MODELS = [('tiny-llama', 'f32'), ('tiny-llama', 'f16'), ('tiny-qwen2', 'f16'), ('tiny-bf16', 'bf16'), ('tiny-bf16', 'q8_0'), ('tiny-bf16', 'q4_0')]
ARCH_KV = [('general.architecture', W.STRING, 'llama')]


def blocks(out):
    rng = np.random.default_rng(20261202)
    tensors, ref = [], []
    for i, t in enumerate(['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_K', 'Q6_K']):
        n = G.BLOCK[t][1]
        cols = n * 3 if n > 1 else 37
        for kind, rows, x in (
            ('gate', 13, rng.standard_normal((13, cols)) * np.logspace(-4, 2, 13)[:, None]),
            ('up', 1, rng.uniform(-1, 1, (1, cols))),
            ('down', 5, np.abs(rng.standard_normal((5, cols))) * 0.02 - 0.001),  # mostly positive rows
        ):
            x = x.astype(np.float32)
            raw = G.quantize(x, t)
            name = f'blk.{i}.ffn_{kind}.weight'
            tensors.append((name, [rows, x.shape[1]], t, raw))
            values = G.dequantize(raw.tobytes(), t).astype('<f4')
            ref.append({'name': name, 'type': t, 'shape': [rows, x.shape[1]], 'values': base64.b64encode(values.tobytes()).decode()})
    W.write_gguf(os.path.join(out, 'blocks.gguf'), ARCH_KV, tensors)
    with open(os.path.join(out, 'blocks.json'), 'w') as f:
        json.dump(ref, f)


def bad(out):
    w = np.zeros((2, 32), dtype=np.float32)
    W.write_gguf(os.path.join(out, 'bad-arch.gguf'), [('general.architecture', W.STRING, 'gpt2')], [('token_embd.weight', [2, 32], 'F32', G.quantize(w, 'F32'))])
    q5 = np.zeros(2 * 22, dtype=np.uint8)  # two Q5_0 blocks (type 6): a type the runtime does not read
    G.BLOCK['Q5_0'] = (6, 32, 22)
    W.write_gguf(os.path.join(out, 'bad-type.gguf'), ARCH_KV, [('blk.0.ffn_up.weight', [2, 32], 'Q5_0', q5)])
    del G.BLOCK['Q5_0']
    W.write_gguf(os.path.join(out, 'bad-rope.gguf'), ARCH_KV, [('rope_freqs.weight', [16], 'F32', G.quantize(np.ones(16), 'F32'))])
    W.write_gguf(os.path.join(out, 'bad-moe.gguf'), ARCH_KV + [('llama.expert_count', W.U32, 8)], [])
    W.write_gguf(os.path.join(out, 'truncated.gguf'), ARCH_KV, [('blk.0.ffn_up.weight', [64, 64], 'F32', G.quantize(np.ones((64, 64)), 'F32'))])
    with open(os.path.join(out, 'truncated.gguf'), 'r+b') as f:
        f.truncate(os.path.getsize(os.path.join(out, 'truncated.gguf')) - 100)


def tokenizer_only(out):
    folder = os.path.join(ROOT, 'public', 'models', 'demo-target')
    config = W.load_json(folder, 'config.json')
    tok_config = dict(W.load_json(folder, 'tokenizer_config.json'))
    tok_config['chat_template'] = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
    kv = ARCH_KV + W.special_ids_kv(config, W.load_json(folder, 'generation_config.json'))
    kv += W.tokenizer_kv(W.load_json(folder, 'tokenizer.json'), tok_config, config)
    W.write_gguf(os.path.join(out, 'demo-tokenizer.gguf'), kv, [])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    blocks(a.out)
    bad(a.out)
    tokenizer_only(a.out)
    for model, t in MODELS:
        W.convert(os.path.join(ROOT, 'public', 'fixtures', model), os.path.join(a.out, f'{model}-{t}.gguf'), t)


if __name__ == '__main__':
    main()
