"""The rules files: their format (frozen pydantic models), loading and merging with
``file:line key.path`` errors, and the watcher that reloads them when they change.

- ``load``: Load rules files: YAML with line numbers, pydantic validation, cross-references.
- ``model``: The rules file format (``version: 1``) as frozen pydantic models.
- ``watch``: Reload the rules when their files change, without anyone sending SIGHUP.
"""
