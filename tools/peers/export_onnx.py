#!/usr/bin/python3
"""Export the bundled target as an ONNX decode graph with a KV cache, for `npm run bench:peers`.

  /usr/bin/python3 tools/peers/export_onnx.py --model public/models/demo-target --out .cache/peers/model.onnx

The graph is the one transformers.js / Optimum export for incremental decode ("with past"):
  inputs   input_ids [1, s] int64, position_ids [1, s] int64,
           past_key_<i>, past_value_<i> [1, n_kv_heads, p, head_dim] f32 for every layer i
  outputs  logits [1, vocab] f32 (last position only),
           present_key_<i>, present_value_<i> [1, n_kv_heads, p + s, head_dim]
s and p are dynamic, so one graph prefills the prompt (p = 0) and decodes one token at a time
(s = 1) with the cache growing by one position per step. The math is tools/train/model.py's
Llama (HF LlamaForCausalLM), reusing its modules; before writing, the cached decode is checked
against that model's full recompute (max logit difference printed, must be < 1e-3).
Weights are the F16 safetensors widened to f32, so every engine of the bench reads the same values.
"""
import argparse
import math
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'train'))
from model import load_hf_dir, rotate_half  # noqa: E402


class CachedDecoder(nn.Module):
    """Llama with an explicit KV cache: the same weights and math as model.Llama, one step at a time."""

    def __init__(self, llama):
        super().__init__()
        self.m = llama
        c = llama.c
        self.nh, self.nkv = c['num_attention_heads'], c['num_key_value_heads']
        self.hd = c['hidden_size'] // self.nh

    def attend(self, attn, x, cos, sin, past_k, past_v, mask):
        b, s, _ = x.shape
        q = attn.q_proj(x).view(b, s, self.nh, self.hd).transpose(1, 2)
        k = attn.k_proj(x).view(b, s, self.nkv, self.hd).transpose(1, 2)
        v = attn.v_proj(x).view(b, s, self.nkv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = torch.cat([past_k, k * cos + rotate_half(k) * sin], dim=2)
        v = torch.cat([past_v, v], dim=2)
        # GQA without repeat_kv: query head h = g * rep + r reads KV head g, so group the query
        # heads per KV head and let MatMul broadcast (no dynamic-shape expand in the graph).
        rep = self.nh // self.nkv
        qg = q.reshape(b, self.nkv, rep, s, self.hd)
        att = (qg @ k.unsqueeze(2).transpose(-1, -2)) / math.sqrt(self.hd) + mask
        y = torch.softmax(att, dim=-1) @ v.unsqueeze(2)
        y = y.reshape(b, self.nh, s, self.hd).transpose(1, 2).reshape(b, s, self.nh * self.hd)
        return attn.o_proj(y), k, v

    def forward(self, input_ids, position_ids, *past):
        pos = position_ids[0].to(torch.float32)
        freqs = pos[:, None] * self.m.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        total = past[0].shape[2] + input_ids.shape[1]
        key_pos = torch.arange(total, dtype=torch.int64)
        # Causal over absolute positions: the cache holds positions 0 .. p-1 in order.
        mask = torch.where(key_pos[None, :] > position_ids[0][:, None], torch.tensor(-1e9), torch.tensor(0.0))
        x = self.m.model.embed_tokens(input_ids)
        present = []
        for i, layer in enumerate(self.m.model.layers):
            h, k, v = self.attend(layer.self_attn, layer.input_layernorm(x), cos, sin, past[2 * i], past[2 * i + 1], mask)
            x = x + h
            x = x + layer.mlp(layer.post_attention_layernorm(x))
            present += [k, v]
        x = self.m.model.norm(x[:, -1, :])
        return (x @ self.m.model.embed_tokens.weight.t(), *present)


def empty_cache(dec, n_layers):
    return [torch.zeros(1, dec.nkv, 0, dec.hd) for _ in range(2 * n_layers)]


@torch.no_grad()
def check_against_full_recompute(model, dec, n_layers):
    """Prefill 5 tokens, decode 3 one at a time; compare every step's logits with model.forward."""
    ids = [573, 1837, 45, 7, 300, 12, 99, 1000]
    prefill = 5
    out = dec(torch.tensor([ids[:prefill]]), torch.arange(prefill)[None], *empty_cache(dec, n_layers))
    worst = (out[0][0] - model(torch.tensor([ids[:prefill]]))[0, -1]).abs().max().item()
    cache = list(out[1:])
    for t in range(prefill, len(ids)):
        out = dec(torch.tensor([[ids[t]]]), torch.tensor([[t]]), *cache)
        cache = list(out[1:])
        full = model(torch.tensor([ids[: t + 1]]))[0, -1]
        worst = max(worst, (out[0][0] - full).abs().max().item())
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', required=True, help='Hugging Face model directory (config.json + model.safetensors)')
    ap.add_argument('--out', required=True, help='the .onnx file to write')
    ap.add_argument('--opset', type=int, default=17)
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = load_hf_dir(a.model)
    n_layers = model.c['num_hidden_layers']
    dec = CachedDecoder(model).eval()
    worst = check_against_full_recompute(model, dec, n_layers)
    print(f'cached decode vs full recompute: max |logit difference| {worst:.2e}')
    if worst >= 1e-3:
        sys.exit('export_onnx: the cached decode graph disagrees with the model; not writing it')

    past_names = [f'past_{kind}_{i}' for i in range(n_layers) for kind in ('key', 'value')]
    present_names = [n.replace('past_', 'present_') for n in past_names]
    dyn = {'input_ids': {1: 'seq'}, 'position_ids': {1: 'seq'}}
    dyn.update({n: {2: 'past'} for n in past_names})
    dyn.update({n: {2: 'total'} for n in present_names})
    sample_past = [torch.zeros(1, dec.nkv, 3, dec.hd) for _ in past_names]
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(dec, (torch.tensor([[1, 2]]), torch.tensor([[3, 4]]), *sample_past), a.out,
                          input_names=['input_ids', 'position_ids', *past_names],
                          output_names=['logits', *present_names], dynamic_axes=dyn, opset_version=a.opset)
    print(f'wrote {a.out} ({os.path.getsize(a.out) / 1e6:.1f} MB, opset {a.opset})')


if __name__ == '__main__':
    main()
