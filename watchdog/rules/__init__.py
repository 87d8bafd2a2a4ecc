"""The rules files: their format (frozen pydantic models), loading and merging with
``file:line key.path`` errors, and the watcher that reloads them when they change.

- ``load``: Load rules files (a file or a directory's files merged); ``check rules``.
- ``flows``: Flow files: a synthetic user journey of HTTP steps with captures and assertions.
- ``fit``: Does a rule suit its signal: threshold unit and range, traffic, counts.
- ``parse``: One file: YAML with line numbers, pydantic validation, ``FILE:LINE`` messages.
- ``reread``: Read files for a (re)load: an unchanged file is not parsed again, an edited
  one is spliced onto its last good parse.
- ``splice``: An edited file read by parsing only what changed (the edited rules, or what
  lies around the rules list), agreeing with a full parse.
- ``merge``: Merge parsed files into one ``RuleSet``; resolve signals and cross-references.
- ``signal_check``: A signals entry against its source: the keys it needs and must not have,
  and its unit.
- ``ruleset``: What loading yields: the ``RuleSet`` and its ``ResolvedSignal``s.
- ``model``: The rules file format (``version: 1``): sources, signals, rules, the file.
- ``source_specs``: The rules file's ``sources:`` entries, one model per ``type:``.
- ``response``: What to do about a breach: targets, purges, notifiers, severities, guards.
- ``fields``: The shared field types: durations, shares, names, thresholds, ``Model``.
- ``watch``: Reload the rules when their files change, without anyone sending SIGHUP.
"""
