#!/usr/bin/python3
"""Byte-level BPE (GPT-2 style), trained and applied in plain Python.

Writes a Hugging Face tokenizer.json (model BPE, ByteLevel pre-tokenizer with the GPT-2 regex,
ByteLevel decoder, no normalizer, no post-processor) that @huggingface/tokenizers (JS) and
HF `tokenizers` (Rust/Python) load. Id 0 is the special token <|endoftext|> (bos = eos = pad),
ids 1..256 are the 256 byte symbols, the rest are merges.

Usage:
  /usr/bin/python3 bpe.py train [--vocab 4096] [--out .cache/tokenizer.json]
  /usr/bin/python3 bpe.py encode-corpus       # writes .cache/tokens/{train,heldout}.u16
"""
import argparse
import collections
import json
import os
import sys
import time

import regex

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, '.cache')
EOT = '<|endoftext|>'
# The GPT-2 / HF ByteLevel(use_regex=true) pre-tokenization pattern.
GPT2_PAT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def bytes_to_unicode():
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + \
        list(range(ord('®'), ord('ÿ') + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


BYTE_ENC = bytes_to_unicode()
BYTE_DEC = {v: k for k, v in BYTE_ENC.items()}


def pretokenize(text):
    return [''.join(BYTE_ENC[b] for b in piece.encode('utf-8')) for piece in GPT2_PAT.findall(text)]


def iter_docs(split):
    with open(os.path.join(CACHE, 'corpus', f'{split}.jsonl'), encoding='utf-8') as f:
        for line in f:
            yield json.loads(line)['text']


def train(vocab_size):
    t0 = time.time()
    counts = collections.Counter()
    for text in iter_docs('train'):
        counts.update(pretokenize(text))
    print(f'pre-tokenized: {len(counts)} unique pieces ({time.time() - t0:.1f}s)', flush=True)

    vocab = {EOT: 0}
    for b in range(256):
        vocab[BYTE_ENC[b]] = len(vocab)
    id2tok = {i: t for t, i in vocab.items()}
    # deterministic word order
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    words = [[vocab[c] for c in w] for w, _ in items]
    freqs = [c for _, c in items]

    pair_counts = collections.defaultdict(int)
    where = collections.defaultdict(set)
    for wi, w in enumerate(words):
        f = freqs[wi]
        for a, b in zip(w, w[1:]):
            pair_counts[(a, b)] += f
            where[(a, b)].add(wi)

    merges = []
    while len(vocab) < vocab_size and pair_counts:
        best = max(pair_counts.items(),
                   key=lambda kv: (kv[1], id2tok[kv[0][0]], id2tok[kv[0][1]]))[0]
        if pair_counts[best] < 2:
            break
        a, b = best
        new_tok = id2tok[a] + id2tok[b]
        if new_tok in vocab:
            new_id = vocab[new_tok]
        else:
            new_id = len(vocab)
            vocab[new_tok] = new_id
            id2tok[new_id] = new_tok
        merges.append((id2tok[a], id2tok[b]))
        for wi in list(where[best]):
            w = words[wi]
            f = freqs[wi]
            # remove old pairs of this word
            for p in zip(w, w[1:]):
                pair_counts[p] -= f
                if pair_counts[p] <= 0:
                    del pair_counts[p]
            i, nw = 0, []
            while i < len(w):
                if i < len(w) - 1 and w[i] == a and w[i + 1] == b:
                    nw.append(new_id)
                    i += 2
                else:
                    nw.append(w[i])
                    i += 1
            words[wi] = nw
            for p in zip(nw, nw[1:]):
                pair_counts[p] += f
                where[p].add(wi)
        where.pop(best, None)
        pair_counts.pop(best, None)
        if len(merges) % 500 == 0:
            print(f'{len(merges)} merges, vocab {len(vocab)} ({time.time() - t0:.1f}s)', flush=True)
    print(f'done: vocab {len(vocab)}, merges {len(merges)} ({time.time() - t0:.1f}s)', flush=True)
    return vocab, merges


def tokenizer_json(vocab, merges):
    return {
        'version': '1.0',
        'truncation': None,
        'padding': None,
        'added_tokens': [{
            'id': 0, 'content': EOT, 'single_word': False, 'lstrip': False, 'rstrip': False,
            'normalized': False, 'special': True,
        }],
        'normalizer': None,
        'pre_tokenizer': {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True,
                          'use_regex': True},
        'post_processor': None,
        'decoder': {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True,
                    'use_regex': True},
        'model': {
            'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': None,
            'end_of_word_suffix': None, 'fuse_unk': False, 'byte_fallback': False,
            'ignore_merges': False,
            'vocab': vocab,
            'merges': [f'{a} {b}' for a, b in merges],
        },
    }


def tokenizer_config():
    return {
        'add_bos_token': False,
        'add_eos_token': False,
        'add_prefix_space': False,
        'bos_token': EOT,
        'eos_token': EOT,
        'pad_token': EOT,
        'unk_token': None,
        'clean_up_tokenization_spaces': False,
        'model_max_length': 1024,
        'tokenizer_class': 'PreTrainedTokenizerFast',
        'added_tokens_decoder': {'0': {'content': EOT, 'lstrip': False, 'normalized': False,
                                       'rstrip': False, 'single_word': False, 'special': True}},
    }


class Tokenizer:
    """Encoder/decoder equivalent to the tokenizer.json written above."""

    def __init__(self, path=os.path.join(CACHE, 'tokenizer.json')):
        tj = json.load(open(path, encoding='utf-8'))
        self.vocab = tj['model']['vocab']
        self.id2tok = {i: t for t, i in self.vocab.items()}
        merges = [tuple(m.split(' ')) if isinstance(m, str) else tuple(m)
                  for m in tj['model']['merges']]
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.special = {t['content']: t['id'] for t in tj['added_tokens']}
        self.special_re = regex.compile('(' + '|'.join(regex.escape(s) for s in self.special) + ')')
        self.cache = {}
        self.vocab_size = len(self.id2tok)

    def _bpe(self, piece):
        if piece in self.cache:
            return self.cache[piece]
        word = list(piece)
        while len(word) > 1:
            best, best_rank = None, None
            for p in zip(word, word[1:]):
                r = self.ranks.get(p)
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = p, r
            if best is None:
                break
            a, b = best
            nw, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == a and word[i + 1] == b:
                    nw.append(a + b)
                    i += 2
                else:
                    nw.append(word[i])
                    i += 1
            word = nw
        ids = [self.vocab[t] for t in word]
        if len(self.cache) < 500000:
            self.cache[piece] = ids
        return ids

    def encode(self, text):
        ids = []
        for part in self.special_re.split(text) if self.special else [text]:
            if not part:
                continue
            if part in self.special:
                ids.append(self.special[part])
                continue
            for piece in pretokenize(part):
                ids.extend(self._bpe(piece))
        return ids

    def decode(self, ids, skip_special_tokens=False):
        out = []
        for i in ids:
            t = self.id2tok[int(i)]
            if t in self.special:
                if not skip_special_tokens:
                    out.append(t.encode('utf-8'))
                continue
            out.append(bytes(BYTE_DEC[c] for c in t))
        return b''.join(out).decode('utf-8', errors='replace')


def encode_corpus():
    import numpy as np
    tok = Tokenizer()
    os.makedirs(os.path.join(CACHE, 'tokens'), exist_ok=True)
    for split in ('train', 'heldout'):
        t0 = time.time()
        ids, nchars = [], 0
        for text in iter_docs(split):
            ids.append(0)  # <|endoftext|> before every document
            ids.extend(tok.encode(text))
            nchars += len(text)
        arr = np.array(ids, dtype=np.uint16)
        arr.tofile(os.path.join(CACHE, 'tokens', f'{split}.u16'))
        print(f'{split}: {len(arr)} tokens, {nchars / len(arr):.2f} chars/token '
              f'({time.time() - t0:.1f}s)', flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('cmd', choices=['train', 'encode-corpus'])
    ap.add_argument('--vocab', type=int, default=4096)
    ap.add_argument('--out', default=os.path.join(CACHE, 'tokenizer.json'))
    args = ap.parse_args()
    if args.cmd == 'train':
        vocab, merges = train(args.vocab)
        with open(args.out, 'w', encoding='utf-8') as f:
            json.dump(tokenizer_json(vocab, merges), f, ensure_ascii=False, indent=1)
        with open(os.path.join(os.path.dirname(args.out), 'tokenizer_config.json'), 'w') as f:
            json.dump(tokenizer_config(), f, indent=1)
        # self-check: round trip
        tok = Tokenizer(args.out)
        for s in ['Hello world', 'The whale', ' naïve — “quotes” 日本語 🐋\n\n\tx', EOT + 'a']:
            assert tok.decode(tok.encode(s)) == s, s
        print('round-trip ok')
    else:
        encode_corpus()


if __name__ == '__main__':
    sys.exit(main())
