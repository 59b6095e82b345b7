#!/usr/bin/python3
"""Train the demo target model, or the draft (optionally distilled from a trained target).

Seeded and reproducible: fixed step counts, data windows drawn from a seeded numpy Generator
(same thread count + same OpenBLAS gives the same numbers; floating-point summation order can
differ across machines/thread counts).

  target: /usr/bin/python3 train.py --model target --steps 1800 --out .cache/ckpt/target.pt
  draft:  /usr/bin/python3 train.py --model draft --steps 900 --teacher .cache/ckpt/target.pt \
              --init-from-teacher --out .cache/ckpt/draft.pt
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

from model import DRAFT_CONFIG, TARGET_CONFIG, Llama

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, '.cache')


def load_tokens(split):
    return np.fromfile(os.path.join(CACHE, 'tokens', f'{split}.u16'), dtype=np.uint16).astype(np.int64)


@torch.no_grad()
def eval_loss(model, heldout, seq, nwin):
    model.eval()
    tot, n = 0.0, 0
    for i in range(nwin):
        w = torch.from_numpy(heldout[i * seq: i * seq + seq + 1])[None]
        logits = model(w[:, :-1])
        tot += F.cross_entropy(logits[0], w[0, 1:], reduction='sum').item()
        n += seq
    model.train()
    return tot / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', choices=['target', 'draft'], required=True)
    ap.add_argument('--steps', type=int, required=True)
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--seq', type=int, default=256)
    ap.add_argument('--lr', type=float, default=2e-3)
    ap.add_argument('--min-lr-frac', type=float, default=0.1)
    ap.add_argument('--warmup', type=int, default=100)
    ap.add_argument('--wd', type=float, default=0.1)
    ap.add_argument('--seed', type=int, default=1234)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--teacher', default=None, help='checkpoint of the target: distill (KL to its soft labels)')
    ap.add_argument('--kd-ce', type=float, default=0.1, help='weight of the hard-label CE term when distilling')
    ap.add_argument('--init-from-teacher', action='store_true',
                    help='draft starts from the teacher embeddings, final norm and first layers')
    ap.add_argument('--init-from', default=None,
                    help='start from this checkpoint of the same model (a new schedule/optimizer)')
    ap.add_argument('--eval-every', type=int, default=200)
    ap.add_argument('--eval-windows', type=int, default=24)
    ap.add_argument('--out', required=True)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train = load_tokens('train')
    heldout = load_tokens('heldout')

    cfg = TARGET_CONFIG if args.model == 'target' else DRAFT_CONFIG
    model = Llama(cfg)
    model.init_weights(args.seed)
    if args.init_from:
        model.load_state_dict(torch.load(args.init_from)['state_dict'], strict=True)
    teacher = None
    if args.teacher:
        ck = torch.load(args.teacher)
        teacher = Llama(ck['config'])
        teacher.load_state_dict(ck['state_dict'])
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        if args.init_from_teacher:
            sd = {k: v for k, v in ck['state_dict'].items()
                  if not k.startswith('model.layers.') or int(k.split('.')[2]) < cfg['num_hidden_layers']}
            model.load_state_dict(sd, strict=True)
    print(f'{args.model}: {model.num_params() / 1e6:.3f}M params, config {json.dumps(cfg)}', flush=True)
    print(f'args: {vars(args)}', flush=True)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': args.wd},
                             {'params': no_decay, 'weight_decay': 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        t = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * (args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * t)))

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    t0 = time.time()
    tokens_seen = 0
    log_loss = 0.0
    for step in range(args.steps):
        starts = rng.integers(0, len(train) - args.seq - 1, size=args.batch)
        batch = torch.from_numpy(np.stack([train[s: s + args.seq + 1] for s in starts]))
        x, y = batch[:, :-1], batch[:, 1:]
        for g in opt.param_groups:
            g['lr'] = lr_at(step)
        logits = model(x)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        if teacher is not None:
            with torch.no_grad():
                t_logp = F.log_softmax(teacher(x), dim=-1)
            d_logp = F.log_softmax(logits, dim=-1)
            kl = (t_logp.exp() * (t_logp - d_logp)).sum(-1).mean()
            loss = (1 - args.kd_ce) * kl + args.kd_ce * ce
        else:
            loss = ce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens_seen += x.numel()
        log_loss += loss.item()
        if (step + 1) % 20 == 0:
            el = time.time() - t0
            print(f'step {step + 1}/{args.steps} loss {log_loss / 20:.4f} ce {ce.item():.4f} '
                  f'lr {lr_at(step):.2e} {tokens_seen / el:.0f} tok/s elapsed {el / 60:.1f} min', flush=True)
            log_loss = 0.0
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            vl = eval_loss(model, heldout, args.seq, args.eval_windows)
            print(f'  eval step {step + 1}: heldout loss {vl:.4f} ppl {math.exp(vl):.2f} '
                  f'({args.eval_windows} windows)', flush=True)
            torch.save({'config': cfg, 'state_dict': model.state_dict(), 'step': step + 1,
                        'args': vars(args), 'elapsed_s': time.time() - t0}, args.out)
    print(f'done: {args.steps} steps, {tokens_seen} tokens, {(time.time() - t0) / 60:.1f} min', flush=True)


if __name__ == '__main__':
    sys.exit(main())
