#!/usr/bin/python3
"""Export a training checkpoint as a Hugging Face model directory (F16 safetensors).

  /usr/bin/python3 export.py --ckpt .cache/ckpt/target.pt --out ../../public/models/demo-target --reference
  /usr/bin/python3 export.py --ckpt .cache/ckpt/draft.pt  --out ../../public/models/demo-draft

--reference also writes reference.json: for 3 fixed prompts, the prompt ids and the 32 greedy
continuation ids computed in float32 by PyTorch from the *exported* F16 weights (read back from
model.safetensors), with the top-1/top-2 logit gap at every step and the top-5 (id, logit) pairs.
"""
import argparse
import json
import os
import shutil
import sys

import torch

from bpe import Tokenizer
from model import hf_config, load_hf_dir, save_safetensors_f16

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, '.cache')
REFERENCE_PROMPTS = ['The whale', 'In the beginning', 'Mr. Speaker,']
DECODE_STEPS = 32


@torch.no_grad()
def greedy(model, ids, steps):
    """Full recompute each step (no KV cache). logits[i] is what token i was picked from."""
    seq = list(ids)
    toks, gaps, top5 = [], [], []
    for _ in range(steps):
        lg = model(torch.tensor([seq]))[0, -1]
        v, i = torch.topk(lg, 5)
        t = int(i[0])
        toks.append(t)
        gaps.append(float(v[0] - v[1]))
        top5.append([[int(a), round(float(b), 5)] for a, b in zip(i, v)])
        seq.append(t)
    return toks, gaps, top5


def write_reference(out_dir):
    torch.set_num_threads(2)
    model = load_hf_dir(out_dir)  # F16 weights read back, widened to float32
    tok = Tokenizer(os.path.join(out_dir, 'tokenizer.json'))
    cases = []
    for p in REFERENCE_PROMPTS:
        ids = tok.encode(p)
        toks, gaps, top5 = greedy(model, ids, DECODE_STEPS)
        cases.append({
            'prompt': p,
            'promptIds': ids,
            'greedyTokens': toks,
            'greedyText': tok.decode(toks),
            'top1Top2Gaps': [round(g, 6) for g in gaps],
            'minTop1Top2Gap': round(min(gaps), 6),
            'top5': top5,
        })
        print(f'{p!r} -> {tok.decode(toks)!r}  (min top1-top2 gap {min(gaps):.4f})', flush=True)
    ref = {
        'format': 'specpipe-demo-reference-v1',
        'model': os.path.basename(os.path.abspath(out_dir)),
        'dtype': 'F16',
        'computedIn': f'float32 (torch {torch.__version__}) from the exported F16 model.safetensors '
                      'widened to f32, full recompute per step, no KV cache',
        'bosPrepended': False,
        'note': 'promptIds are tokenizer.encode(prompt) with no BOS (add_bos_token false); '
                'greedyTokens[i] is the argmax after feeding promptIds + greedyTokens[:i]; '
                'top1Top2Gaps[i] is logit(top1) - logit(top2) at that step.',
        'decodeSteps': DECODE_STEPS,
        'cases': cases,
    }
    with open(os.path.join(out_dir, 'reference.json'), 'w') as f:
        json.dump(ref, f, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--ckpt', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--reference', action='store_true')
    args = ap.parse_args()
    ck = torch.load(args.ckpt)
    os.makedirs(args.out, exist_ok=True)
    sd = ck['state_dict']
    assert 'lm_head.weight' not in sd
    save_safetensors_f16(sd, os.path.join(args.out, 'model.safetensors'))
    with open(os.path.join(args.out, 'config.json'), 'w') as f:
        json.dump(hf_config(ck['config']), f, indent=2)
    with open(os.path.join(args.out, 'generation_config.json'), 'w') as f:
        json.dump({'bos_token_id': 0, 'eos_token_id': 0, 'pad_token_id': 0, 'do_sample': False,
                   'transformers_version': '4.44.0'}, f, indent=2)
    for fn in ('tokenizer.json', 'tokenizer_config.json'):
        shutil.copy(os.path.join(CACHE, fn), os.path.join(args.out, fn))
    n = sum(v.numel() for v in sd.values())
    print(f'exported {args.ckpt} (step {ck["step"]}, {n} params) -> {args.out}: '
          f'model.safetensors {os.path.getsize(os.path.join(args.out, "model.safetensors"))} bytes')
    if args.reference:
        write_reference(args.out)


if __name__ == '__main__':
    sys.exit(main())
