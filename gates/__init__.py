"""The champion/challenger promotion gate: a pure core (inputs in, decisions out) and the
edge that wires it to the ledger.

Pure modules:

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

The modules above are pure: nothing in them reads or writes a ledger. The I/O edge, which
feeds them from a ledger and records what they decide:

- ``ledger_io``    the registry derived from the ledger (``load_registry``), recorded
                   evaluations, the registry writers' lock, the errors callers tell apart
- ``promotion``    register, run the gate, approve, decline, force-promote, roll back, set
                   challenger traffic: read, decide, validate, append durably, under one lock
- ``manifest``     the serving manifest derived from the ledger
- ``replay_check`` replay recorded decisions against the ledger they are in
- ``observations`` predictions, late outcomes and serving errors: recorded and read back
- ``monitoring``   online evaluation, rollback triggers, fairness and drift runs, their alerts

The registry state is *derived from* the ledger's entries, so a promotion without its
model_promotion entry cannot exist: the entry is appended (durably) first, and only what the
ledger holds is production.
"""
