#!/usr/bin/python3
"""Evaluate the exported demo pair (weights as exported: F16, widened to float32).

  /usr/bin/python3 evaluate.py [--target ../../public/models/demo-target]
                               [--draft ../../public/models/demo-draft] [--out eval_results.json]

Needs the held-out token file from `fetch_corpus.py` + `bpe.py encode-corpus`.
Reports:
  * held-out perplexity of both models (non-overlapping 256-token windows of the held-out split)
  * top-1 agreement: draft argmax == target argmax, per position, on held-out text
  * top-4 agreement: target argmax is among the draft's 4 highest logits
  * the same two numbers along the target's own greedy continuations of held-out prefixes
    (what greedy speculative decoding actually sees), plus the mean accepted length of
    k=4-token greedy drafts
  * greedy samples of a few prompts from both models
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from bpe import Tokenizer
from model import load_hf_dir

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
CACHE = os.path.join(HERE, '.cache')
SAMPLE_PROMPTS = ['The whale', 'In the beginning', 'Mr. Speaker,', 'Call me Ishmael.',
                  'The President said that', 'And God said']


@torch.no_grad()
def greedy_ids(model, ids, steps):
    seq = list(ids)
    for _ in range(steps):
        seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
    return seq[len(ids):]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--target', default=os.path.join(ROOT, 'public', 'models', 'demo-target'))
    ap.add_argument('--draft', default=os.path.join(ROOT, 'public', 'models', 'demo-draft'))
    ap.add_argument('--seq', type=int, default=256)
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--max-windows', type=int, default=0, help='0 = all held-out windows')
    ap.add_argument('--gen-prompts', type=int, default=16)
    ap.add_argument('--gen-steps', type=int, default=64)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--out', default=os.path.join(HERE, 'eval_results.json'))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()

    target, draft = load_hf_dir(args.target), load_hf_dir(args.draft)
    tok = Tokenizer(os.path.join(args.target, 'tokenizer.json'))
    held = np.fromfile(os.path.join(CACHE, 'tokens', 'heldout.u16'), dtype=np.uint16).astype(np.int64)
    nwin = (len(held) - 1) // args.seq
    if args.max_windows:
        nwin = min(nwin, args.max_windows)

    nll_t = nll_d = 0.0
    agree1 = agree4 = n = 0
    with torch.no_grad():
        for b0 in range(0, nwin, args.batch):
            wins = [held[i * args.seq: i * args.seq + args.seq + 1] for i in range(b0, min(nwin, b0 + args.batch))]
            w = torch.from_numpy(np.stack(wins))
            x, y = w[:, :-1], w[:, 1:]
            lt, ld = target(x), draft(x)
            nll_t += F.cross_entropy(lt.reshape(-1, lt.shape[-1]), y.reshape(-1), reduction='sum').item()
            nll_d += F.cross_entropy(ld.reshape(-1, ld.shape[-1]), y.reshape(-1), reduction='sum').item()
            t_arg = lt.argmax(-1)
            agree1 += (ld.argmax(-1) == t_arg).sum().item()
            agree4 += (ld.topk(4, dim=-1).indices == t_arg[..., None]).any(-1).sum().item()
            n += y.numel()
    res = {
        'heldout_tokens': n,
        'heldout_windows': nwin,
        'target_ppl': math.exp(nll_t / n),
        'draft_ppl': math.exp(nll_d / n),
        'top1_agreement_heldout': agree1 / n,
        'top4_agreement_heldout': agree4 / n,
    }
    print(json.dumps(res, indent=1), flush=True)

    # Along the target's own greedy continuations (what greedy speculative decoding verifies).
    a1 = a4 = m = 0
    accepted, blocks = 0, 0
    K = 4
    stride = max(1, nwin // args.gen_prompts)
    with torch.no_grad():
        for j in range(args.gen_prompts):
            start = (j * stride) * args.seq
            prefix = held[start: start + 32].tolist()
            cont = greedy_ids(target, prefix, args.gen_steps)
            seq = torch.tensor([prefix + cont])
            ld = draft(seq)[0, len(prefix) - 1: -1]
            tgt = torch.tensor(cont)
            ok1 = ld.argmax(-1) == tgt
            a1 += ok1.sum().item()
            a4 += (ld.topk(4, dim=-1).indices == tgt[:, None]).any(-1).sum().item()
            m += len(cont)
            # k=4 greedy drafting: accepted = length of the matching prefix of each block of K,
            # walking the sequence by (accepted + 1) tokens (the target's bonus token).
            ok = ok1.tolist()
            i = 0
            while i + K <= len(ok):
                acc = 0
                while acc < K and ok[i + acc]:
                    acc += 1
                accepted += acc
                blocks += 1
                i += acc + 1
    res.update({
        'greedy_continuations': {'prompts': args.gen_prompts, 'prefix_tokens': 32, 'steps': args.gen_steps},
        'top1_agreement_target_greedy': a1 / m,
        'top4_agreement_target_greedy': a4 / m,
        'mean_accepted_per_k4_block_target_greedy': accepted / blocks,
        'tokens_per_target_pass_k4': (accepted + blocks) / blocks,
    })

    samples = []
    for p in SAMPLE_PROMPTS:
        ids = tok.encode(p)
        samples.append({'prompt': p,
                        'target': tok.decode(greedy_ids(target, ids, 40)),
                        'draft': tok.decode(greedy_ids(draft, ids, 40))})
    res['samples'] = samples
    res['weights'] = 'F16 as exported, computed in float32'
    res['eval_seconds'] = round(time.time() - t0, 1)
    print(json.dumps({k: v for k, v in res.items() if k != 'samples'}, indent=1))
    for s in samples:
        print(f"[{s['prompt']!r}]\n  target: {s['target']!r}\n  draft:  {s['draft']!r}")
    with open(args.out, 'w') as f:
        json.dump(res, f, indent=1, ensure_ascii=False)


if __name__ == '__main__':
    sys.exit(main())
