"""Makes this directory's recording: a week of a service's error ratio at a 1-minute
step, with three real incidents (labels.json), short spikes and a long mild bump that
were not incidents. Deterministic (seeded): ``python examples/sweep/make.py``."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from watchdog.backtest.recordings import matrix_body  # noqa: E402

T0 = 1_793_000_000  # 2026-10-26T08:53:20Z
STEP = 60
DAYS = 7
# (start minute, minutes, level): the incidents people labelled, and other bumps.
INCIDENTS = [(1500, 35, 0.09), (5200, 25, 0.045), (8400, 60, 0.14)]
SPIKES = [(700, 2, 0.07), (2600, 3, 0.08), (4100, 1, 0.2), (6100, 4, 0.06), (9300, 2, 0.09)]
BUMP = (3300, 120, 0.032)


def main() -> None:
    rng = random.Random(15)  # noqa: S311 (made-up data, seeded to be the same each time)
    values = [round(rng.uniform(0.002, 0.012), 4) for _ in range(DAYS * 1440)]
    for start, length, level in [*INCIDENTS, *SPIKES, BUMP]:
        for k in range(start, start + length):
            values[k] = round(level * rng.uniform(0.9, 1.1), 4)
    points = [(float(T0 + k * STEP), v) for k, v in enumerate(values) if k % 997 != 500]
    (HERE / "error_rate.json").write_text(json.dumps(matrix_body(points)) + "\n")
    deploys = [{"version": f"v{k}", "at": T0 - 3600 + k * 86400} for k in range(DAYS)]
    deploys += [
        {"version": f"v{k}-hotfix", "at": T0 + (s - 20) * STEP}
        for k, (s, _, _) in enumerate(INCIDENTS)
    ]
    deploys.sort(key=lambda d: d["at"])
    (HERE / "deployments.json").write_text(json.dumps({"worker": deploys}, indent=1) + "\n")


if __name__ == "__main__":
    main()
