#!/bin/sh
# Rebuild the demo model pair from scratch (see README.md). Run from anywhere; takes ~1.5-2 h on
# 2 shared CPU cores. Needs: apt-get install python3-torch libopenblas0-pthread python3-numpy \
#   python3-regex bible-kjv bible-kjv-text ; npm on PATH (for `npm pack`).
set -eu
cd "$(dirname "$0")"
PY=/usr/bin/python3          # Debian's python3 (torch 1.13), not a pyenv/venv python
export OMP_WAIT_POLICY=PASSIVE  # don't spin-wait: the cores are shared
mkdir -p .cache/logs
t() { s=$(date +%s); "$@"; echo "[$(($(date +%s) - s)) s] $*" | tee -a .cache/logs/times.txt; }
t nice -n 15 $PY fetch_corpus.py
t nice -n 15 $PY bpe.py train
t nice -n 15 $PY bpe.py encode-corpus
t nice -n 15 $PY train.py --model target --steps 900 --batch 4 --warmup 60 --eval-every 150 \
    --out .cache/ckpt/target_p1.pt
t nice -n 15 $PY train.py --model target --steps 1400 --batch 4 --warmup 50 --lr 1e-3 --seed 1235 \
    --eval-every 200 --init-from .cache/ckpt/target_p1.pt --out .cache/ckpt/target.pt
t nice -n 15 $PY train.py --model draft --steps 600 --batch 4 --warmup 20 --lr 1e-3 --eval-every 100 \
    --teacher .cache/ckpt/target.pt --init-from-teacher --out .cache/ckpt/draft.pt
t nice -n 15 $PY export.py --ckpt .cache/ckpt/target.pt --out ../../public/models/demo-target --reference
t nice -n 15 $PY export.py --ckpt .cache/ckpt/draft.pt --out ../../public/models/demo-draft
t nice -n 15 $PY evaluate.py
t nice -n 15 $PY model_card.py
