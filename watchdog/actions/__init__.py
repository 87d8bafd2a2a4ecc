"""Actions against remote APIs: rollback targets, cache purges (notifiers live in ``notify``)."""
