#!/bin/bash
# After the 1/min run: 10/min on as many days as fit before the deadline.
cd "$(dirname "$0")/../.." || exit 1
export PYTHONPATH=$PWD
while kill -0 30213 2>/dev/null; do sleep 5; done
/usr/bin/time -v nice -n 19 /work/main/.venv/bin/python bench/decisions.py --rates 10 \
  --days 3000 --legacy-days 300 --trials 100 --workers 2 \
  > bench/out/decisions-10.txt 2> bench/out/decisions-10.err
