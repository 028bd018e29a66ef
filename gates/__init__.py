"""The champion/challenger promotion gate, as a pure core: inputs in, decisions out.

Modules:

- ``policy``      the promotion policy from TOML (``load_policy`` is the only I/O), its digest
- ``evaluation``  one model version's holdout evaluation; ``EvaluationFile.load`` and
                  ``observe_artifacts`` are the only I/O
- ``stats``       DeLong, exact McNemar, paired bootstrap, Welch, Holm
- ``decision``    ``decide`` (the ladder), approvals, rollbacks, ``Decision.to_promotion_entry``,
                  ``replay``
- ``registry``    registry state derived from ledger events (``derive_registry``, ``champion_at``)
- ``online``      SHA-256 routing, online Welch evaluation, rollback triggers
- ``monitors``    fairness (DI, SPD, EOD with intervals) and drift (PSI, KL)
- ``alerts``      alert records that become ``operation`` entries

Nothing here writes the ledger or a registry. The registry state is *derived from* the
ledger's entries, so a promotion without its model_promotion entry cannot exist: a caller
appends ``decision.to_promotion_entry()`` first, and only what the ledger holds is production.
"""
