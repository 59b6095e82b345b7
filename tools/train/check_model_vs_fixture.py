#!/usr/bin/python3
"""Cross-check model.Llama against the project's independent plain-torch HF Llama reference
(public/fixtures/tiny-llama/reference.json, written by tools/fixtures/make_fixtures.py)."""
import json
import os

import torch

from model import Llama, config_from_hf, load_safetensors

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'public', 'fixtures', 'tiny-llama')
hc = json.load(open(f'{root}/config.json'))
ref = json.load(open(f'{root}/reference.json'))
m = Llama(config_from_hf(hc)).eval()
sd = load_safetensors(f'{root}/model.safetensors')
lm_head = sd.pop('lm_head.weight')  # this fixture is untied
m.load_state_dict(sd)
seq = list(ref['promptIds']) + ref['greedyTokens'][:-1]
with torch.no_grad():
    logits = m(torch.tensor([seq]), lm_head=lm_head)[0]
n = len(ref['promptIds'])
got = logits[n - 1:]
err = (got - torch.tensor(ref['logits'])).abs().max().item()
same = got.argmax(-1).tolist() == ref['greedyTokens']
print(f'max |logit diff| vs fixture reference: {err:.3e}; greedy tokens equal: {same}')
assert err < 1e-3 and same
