"""Acting on the world: the playbook (journal first, then act), the rollback targets
(Cloudflare Worker and Pages, a GitHub workflow), cache purges and the notifiers.

- ``base``: The shapes every action shares: what a target looks like, a plan, a result.
- ``choice``: Choosing a rollback target from the version ledger (pure): never the live
  version, never one rolled away from; a verified-healthy one first.
- ``cloudflare_api``: A thin Cloudflare REST client: adds the token, sends through ``http.send``
  (the one retrying helper), unwraps the ``{success, errors, result, result_info}`` envelope and
  turns every failure into our errors.
- ``cloudflare_pages``: Roll back a Cloudflare Pages project (apis.md §3): what serves
  production is ``project.canonical_deployment`` (never "the newest deployment": after a
  rollback that is no longer live).
- ``cloudflare_worker``: Roll back a Cloudflare Worker the way ``wrangler rollback`` does
  (apis.md §2.2): read the deployments, pick an earlier deployment that had exactly one version
  at 100 %, and create a new deployment of that version at 100 %.
- ``github_workflow``: Roll back by dispatching the runbook's ``rollback.yml`` GitHub Actions
  workflow.
- ``ledger``: The version ledger: per target (Worker, Pages), every version's history, kept in
  the store and rebuilt from the remote history and the journal before every choice (every
  rollback, every ``targets``): what happened while the watchdog was away is read then, never
  assumed.
- ``notify/``: Notifiers: Slack, generic webhook, PagerDuty, Statuspage, Sentry, Grafana
  annotations, Alertmanager.
- ``playbook``: Carry out an incident's actions: journal first, then act, then journal the
  outcome.
- ``purge``: Cache purges after a rollback: the app's own admin endpoint (the runbook's ``curl
  -X DELETE .../api/admin/cache -H "Authorization: Bearer $ADMIN_TOKEN"``) and a Cloudflare zone
  purge (apis.md §4).
- ``registry``: Build a rule set's actions (targets, purges, notifiers) by their ``type:``.
"""
