"""A Llama decoder computed exactly like Hugging Face LlamaForCausalLM (transformers 4.x):
RMSNorm (fp32, weight), RoPE with the rotate-half convention, SiLU-gated MLP, grouped-query
attention (query head h uses KV head h // (n_heads / n_kv_heads)), no biases, tied lm_head.
Also: F16 safetensors writer/reader and HF config.json helpers."""
import json
import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

TARGET_CONFIG = dict(hidden_size=256, intermediate_size=688, num_hidden_layers=8,
                     num_attention_heads=8, num_key_value_heads=4, vocab_size=4096,
                     max_position_embeddings=1024, rope_theta=10000.0, rms_norm_eps=1e-5)
DRAFT_CONFIG = dict(TARGET_CONFIG, num_hidden_layers=2)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        dt = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dt)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.nh, self.nkv = c['num_attention_heads'], c['num_key_value_heads']
        self.hd = c['hidden_size'] // self.nh
        h = c['hidden_size']
        self.q_proj = nn.Linear(h, self.nh * self.hd, bias=False)
        self.k_proj = nn.Linear(h, self.nkv * self.hd, bias=False)
        self.v_proj = nn.Linear(h, self.nkv * self.hd, bias=False)
        self.o_proj = nn.Linear(self.nh * self.hd, h, bias=False)

    def forward(self, x, cos, sin, mask):
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, s, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, s, self.nkv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.nh // self.nkv
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd) + mask
        att = F.softmax(att.float(), dim=-1).to(q.dtype)
        y = (att @ v).transpose(1, 2).reshape(b, s, self.nh * self.hd)
        return self.o_proj(y)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, i = c['hidden_size'], c['intermediate_size']
        self.gate_proj = nn.Linear(h, i, bias=False)
        self.up_proj = nn.Linear(h, i, bias=False)
        self.down_proj = nn.Linear(i, h, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = Attention(c)
        self.mlp = MLP(c)
        self.input_layernorm = RMSNorm(c['hidden_size'], c['rms_norm_eps'])
        self.post_attention_layernorm = RMSNorm(c['hidden_size'], c['rms_norm_eps'])

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Inner(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c['vocab_size'], c['hidden_size'])
        self.layers = nn.ModuleList([Layer(c) for _ in range(c['num_hidden_layers'])])
        self.norm = RMSNorm(c['hidden_size'], c['rms_norm_eps'])


class Llama(nn.Module):
    """state_dict() keys are exactly the HF names (model.embed_tokens.weight, ...)."""

    def __init__(self, c):
        super().__init__()
        self.c = dict(c)
        self.model = Inner(c)
        hd = c['hidden_size'] // c['num_attention_heads']
        inv_freq = 1.0 / (c['rope_theta'] ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
        self.register_buffer('inv_freq', inv_freq, persistent=False)

    def init_weights(self, seed):
        g = torch.Generator().manual_seed(seed)
        std = 0.02
        nl = self.c['num_hidden_layers']
        for name, p in self.named_parameters():
            if name.endswith('norm.weight'):
                nn.init.ones_(p)
            else:
                s = std / math.sqrt(2 * nl) if name.endswith(('o_proj.weight', 'down_proj.weight')) else std
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=g) * s)

    def forward(self, ids, lm_head=None):
        b, s = ids.shape
        pos = torch.arange(s, dtype=torch.float32)
        freqs = pos[:, None] * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        mask = torch.full((s, s), float('-inf')).triu(1)
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask)
        x = self.model.norm(x)
        head = self.model.embed_tokens.weight if lm_head is None else lm_head  # tied by default
        return x @ head.t()

    def num_params(self):
        return sum(p.numel() for p in self.parameters())


# ---------------------------------------------------------------- safetensors (F16)

def save_safetensors_f16(state, path):
    header, blobs, off = {}, [], 0
    for name in sorted(state):
        arr = state[name].detach().to(torch.float32).numpy().astype('<f2')
        raw = arr.tobytes()
        header[name] = {'dtype': 'F16', 'shape': list(arr.shape), 'data_offsets': [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header['__metadata__'] = {'format': 'pt'}
    hj = json.dumps(header, separators=(',', ':')).encode('utf-8')
    hj += b' ' * ((8 - len(hj) % 8) % 8)  # pad header so the data starts 8-byte aligned
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(hj)))
        f.write(hj)
        for raw in blobs:
            f.write(raw)


def load_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        dt = {'F16': '<f2', 'F32': '<f4', 'BF16': None}[info['dtype']]
        a, b = info['data_offsets']
        arr = np.frombuffer(data[a:b], dtype=dt).reshape(info['shape'])
        out[name] = torch.from_numpy(arr.astype(np.float32))
    return out


def hf_config(c, bos=0, eos=0):
    return {
        'architectures': ['LlamaForCausalLM'],
        'model_type': 'llama',
        'hidden_size': c['hidden_size'],
        'intermediate_size': c['intermediate_size'],
        'num_hidden_layers': c['num_hidden_layers'],
        'num_attention_heads': c['num_attention_heads'],
        'num_key_value_heads': c['num_key_value_heads'],
        'head_dim': c['hidden_size'] // c['num_attention_heads'],
        'vocab_size': c['vocab_size'],
        'max_position_embeddings': c['max_position_embeddings'],
        'rope_theta': c['rope_theta'],
        'rope_scaling': None,
        'rms_norm_eps': c['rms_norm_eps'],
        'hidden_act': 'silu',
        'attention_bias': False,
        'attention_dropout': 0.0,
        'mlp_bias': False,
        'initializer_range': 0.02,
        'pretraining_tp': 1,
        'tie_word_embeddings': True,
        'use_cache': True,
        'bos_token_id': bos,
        'eos_token_id': eos,
        'pad_token_id': eos,
        'torch_dtype': 'float16',
        'transformers_version': '4.44.0',
    }


def config_from_hf(hc):
    return {k: hc[k] for k in TARGET_CONFIG}


def load_hf_dir(d):
    """Load an exported model directory (F16 weights -> float32 module)."""
    hc = json.load(open(f'{d}/config.json'))
    m = Llama(config_from_hf(hc))
    sd = load_safetensors(f'{d}/model.safetensors')
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert not unexpected and not missing, (missing, unexpected)
    return m.eval()


def round_f16_(model):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    return model
