r"""The fault matrix: attacks and faults against the real daemon's parts on loopback.

Each row below was tried, failed on the code before its fix, and is withstood now;
figures are from the row's test (machine: 2 shared cores, load average 6-7).

Memory and the event loop (issue 11)

- Decompression bombs, one reader at a time (``test_bombs.py``; peak of Python
  allocations while one read runs, ``tracemalloc``; sources capped at 1 MB, the
  Cloudflare source at 4 MiB, the probe at 1 MiB). Bombs: a gzip of 256 MiB of zeros
  (256 KB on the wire), the same gzipped twice (``Content-Encoding: gzip, gzip``) and a
  64 MiB plain body without Content-Length.

  ==========  ==================  ==================  ==================
  reader      gzip (before/now)   gzip, gzip          64 MiB plain
  ==========  ==================  ==================  ==================
  prometheus  142 MiB / 2.8 MiB   558 MiB / 0.3 MiB   2.2 MiB (so before)
  scrape      142 MiB / 1.5 MiB   558 MiB / 0.3 MiB   2.2 MiB (so before)
  probe       512 MiB / 1.6 MiB   558 MiB / 0.3 MiB   128 MiB / 2.2 MiB
  cloudflare  768 MiB / 4.6 MiB   768 MiB / 0.3 MiB   192 MiB / 5.6 MiB
  ==========  ==================  ==================  ==================

  The actions' HTTP client (Slack, webhooks, Cloudflare API) refuses the same three
  under 8 MiB, and a 503 carrying a bomb is still retried as a 503.
- Every bomb against every source at once, the real daemon in a subprocess
  (``test_bomb_memory.py``: 1 GiB zeros as a 1 MB gzip and as 1.8 KB of ``gzip, gzip``,
  every source at 1 s intervals and the default 20 MB caps, 12 rounds per source):
  peak RSS 100-102 MB (limit 150 MB; the idle daemon peaks at 61 MB; before: 1.77-3.2
  GB, OOM under the Deployment's 256Mi), ``/healthz`` worst of 102 probes 14 ms,
  median 2.4 ms at load average 1.5, and worst of 85 69 ms, median 5 ms at load
  average 7 (limit 100 ms; before: stalls up to 5.9 s). Run it with
  ``PYTHONPATH=$PWD .venv/bin/python -m pytest -s tests/faults/test_bomb_memory.py``
  (it prints the figures).
- The rules directory (``test_rules_dir.py``): a FIFO ``extra.yaml``, a dangling Emacs
  lock ``.#prod.yaml``, ``prod.yaml~``, ``#prod.yaml#``, ``.prod.yaml.swp``, a hidden
  ``.hidden.yaml``: loaded and watched as the one regular file (before: the load and
  the watcher's scan blocked past the test's 10 s bound on the FIFO); a FIFO named as
  the rules file is "not a regular file". The watcher scans in a worker thread.

Hostile or broken answers

- The probe under ``demo --virtual-time`` (``test_probe_faults.py``): up and a latency
  (before: a traceback on every sample, the rule blind).
- A probe body that does not decode (says gzip, is not): 6 failed probes are 6 down
  samples, one ``probe failed`` warning and one ``probe succeeded again``, no error-level
  line, the rule fires after its ``for:`` (before: blind, a traceback every interval).
- A histogram whose buckets decrease with ``le`` (``test_sources.py`` row
  ``decreasing-buckets``) and one whose bucket increases decrease (a single bucket reset,
  ``test_histogram_faults.py``): an error sample, the rule blind with the reason (before:
  a p95 of 0.095 s, taken as evidence).
- The rows of ``test_sources.py`` (timeouts, 500s, HTML, error envelopes, NaN, empty,
  several series, stale answers, 50 MB, slow loris) on both metrics sources.

Storms (``test_reload_storm.py``, virtual clock, sources answering in 5 s, interval 15 s)

- 180 reloads of unchanged rules in 90 s: samples at 5, 20, 35, 50, 65, 80 s and the
  rollback at 60 s, as without the storm (before: 0 samples, no decision at all).
- 240 reloads in 120 s, each adding or removing a signal of one source: the other
  source keeps its schedule and its rollback at 60 s; the starved source's rule gets
  the blind alarm at 86 s (first missed deadline at 26 s + blind_after 1m; before:
  never, and no sample).
- 20 concurrent reloads: 2 loads (before: 20).

The control API in the token-less loopback mode (``test_control_api.py``, 18 rows, 17
failed before)

- A ``text/plain`` POST with a foreign ``Origin`` creating a silence until 9999-12-31,
  the same with JSON, a page triggering ``/-/reload``, a foreign ``Host`` (DNS
  rebinding), ``127.0.0.6`` taken for loopback: each refused and counted.
  ``::ffff:127.0.0.1`` on a ``[::]`` listener is served (before: refused, the CLI broke).
- Hostile bodies answer 400 with the reason (before: 500): JSON nested 30,000 deep
  ("at most 32"), a 5,000-digit number, ``a{4294967296}``, ``"duration": true``.
- A silence longer than ``WATCHDOG_SILENCE_MAX_DURATION`` (default 7d) is refused.
- ``silence query`` and ``status`` print ANSI, OSC-52, BEL, NUL, CR and a bidi override
  from silence fields as escapes (``test_silence_guards.py``).

Silences

- ``rule=~(.*.*.*.*.*)*[^\s\S]`` (``test_silence_regex.py``): answered at once by the
  non-backtracking matcher, judged against the known names off the event loop (before:
  killed after 30 s on the 10-character name ``error-rate``; 8 characters took 1.48 s);
  the rollback still happens with the hostile silence stored, also after a restart.
  One pattern against 10,000 names: 0.05 s (``worker|frontend``) to 2.35 s
  (``(.?){100}zz``, 203 states), in a worker thread.
- No matcher is refused without ``--all``; ``rule=eror-rate`` is refused with "did you
  mean error-rate?" without ``--force`` (CLI and API).

A second daemon, replays, a clock step, a full disk

- A second ``run`` on the same SQLite state refuses at once, naming the holder's pid and
  start time (``test_second_daemon.py``; before: both ran, and a silence set through one
  was ignored by the other); ``silence``, ``status`` and ``postmortem`` work beside it;
  the lock dies with ``kill -9``.
- A signed webhook replayed an hour later is refused (401) by the verifier, a swapped
  timestamp fails, the window is exactly +-300 s (``test_webhook_replay.py``).
- A forward wall-clock step of an hour keeps the cooldown and the hourly cap, also
  across a restart (``test_clock.py``; before: bypassed).
- A full disk at the breach refuses the rollback and retries it once the store is
  writable while the rule still fires (``tests/scenarios/test_store_failure.py``;
  before: the bad deploy stayed live).
"""
