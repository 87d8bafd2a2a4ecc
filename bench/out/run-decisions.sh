#!/bin/bash
# The 10,000-day runs, level by level (each level's table in its own file).
cd "$(dirname "$0")/../.." || exit 1
export PYTHONPATH=$PWD
for rate in 1 10 100 1000; do
  /usr/bin/time -v nice -n 19 /work/main/.venv/bin/python bench/decisions.py --rates "$rate" \
    --days 10000 --legacy-days 1000 --trials 500 --workers 2 \
    > "bench/out/decisions-$rate.txt" 2> "bench/out/decisions-$rate.err"
done
