"""Ledger commands: init, ingest, status, keys, verify, repair, checkpoint, prove, verify-proof."""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path

import click

from ledger import EntryError, Keyring, Ledger, prepare_batch, verify_ledger
from ledger.ledger import default_actor, now_micros
from ledger.files import FORMATS, read_batch
from ledger.inspect import ledger_status
from ledger.keys import ENV_KEYRING, new_key_id
from ledger.schema import TABLE_NAMES

from .cli import (
    command_mirror,
    given_work_dir,
    command_retention,
    existing_ledger,
    writable_ledger,
    EXIT_INTEGRITY,
    IntegrityFailure,
    UsageFailure,
    default_keyring_path,
    emit_json,
    handle_errors,
    json_option,
    keyring_option,
    resolve_keyring,
)

ledger_path = click.argument("path")  # a directory to create, or s3://bucket/prefix


@click.command()
@ledger_path
@keyring_option
@click.option("--key-id", help="Id for a generated key (default: k<date>-<random>).")
@click.option("--actor", help="Who writes the genesis entry (default: $MRM_ACTOR or user@host).")
@click.option("--retain-days", type=click.IntRange(1, 36500),
              help="On object storage with Object Lock: keep every sealed segment, manifest record and checkpoint "
                   "under compliance retention for this many days from when it is sealed.")
@json_option
@handle_errors
def init(path: str, keyring_file: str | None, key_id: str | None, actor: str | None, retain_days: int | None, as_json: bool) -> None:
    """Create a ledger at PATH, and an HMAC key unless one is given.

    A generated key is saved to PATH.keyring.json beside the ledger (mode 600), never
    inside it: whoever holds the key can forge entries, so keep it apart from the data.

    PATH may be s3://bucket/prefix (an empty prefix): the ledger's objects go there, and
    this machine keeps its write-ahead log in $MRM_WORK_DIR (default: one directory per
    store under ~/.local/state/mrm-ledger).

    \b
    Example:
      mrm init ./audit-ledger
      MRM_KEYRING=/secure/keys.json mrm init ./audit-ledger
      mrm init s3://audit-bucket/ledgers/credit --keyring /secure/credit.keyring.json
    """
    generated_at = None
    try:
        keyring = resolve_keyring(None, keyring_file)
    except UsageFailure:
        if path.startswith("s3://"):
            raise UsageFailure("a ledger on object storage keeps no key beside it: make one first "
                               "(mrm keys generate --out FILE) and give it with --keyring or $MRM_KEYRING") from None
        generated_at = default_keyring_path(path)
        if generated_at.exists():
            raise UsageFailure(f"{generated_at} already exists; pass it with --keyring or remove it") from None
        keyring = Keyring.generate(key_id)
    if retain_days is not None and not path.startswith("s3://"):
        raise UsageFailure(f"{path}: a directory keeps no retention lock; --retain-days needs s3://bucket/prefix")
    ledger = Ledger.create(path, keyring, actor=actor, work_dir=given_work_dir() if path.startswith("s3://") else None,
                           **({"retain_days": retain_days} if retain_days else {}))
    if generated_at is not None:
        try:
            keyring.save(generated_at)
        except BaseException:
            import shutil

            ledger.close()
            shutil.rmtree(path, ignore_errors=True)
            raise
    ledger.close()
    result = {"path": path if path.startswith("s3://") else str(Path(path)), "ledger_id": ledger.ledger_id,
              "key_id": keyring.active, "keyring": str(generated_at or keyring.source)}
    if path.startswith("s3://"):
        result["work_dir"] = str(ledger.layout.local)  # this machine's write-ahead log for it
    if as_json:
        emit_json(result)
    else:
        click.echo(f"created ledger {result['ledger_id']} at {result['path']}")
        click.echo(f"HMAC key {keyring.active} " + (f"generated and saved to {generated_at} (keep it secret)" if generated_at else f"from {keyring.source}"))


@click.command()
@writable_ledger
@click.argument("table", type=click.Choice(TABLE_NAMES))
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Input format (default: from the file extension).")
@keyring_option
@click.option("--actor", help="Actor for rows that name none (default: $MRM_ACTOR or user@host).")
@json_option
@handle_errors
def ingest(path: str, table: str, file: str, fmt: str | None, keyring_file: str | None, actor: str | None, as_json: bool) -> None:
    """Append every row of FILE to TABLE, all or nothing.

    FILE is JSON Lines, CSV (nested values as JSON text) or Parquet. A row that is refused
    is reported with its line, and nothing of the file is written.

    \b
    Example:
      mrm ingest ./audit-ledger model_inference inferences.jsonl
    """
    keyring = resolve_keyring(path, keyring_file)
    batch = read_batch(file, table, fmt)
    try:
        # Refused before the ledger is opened: on a shared store opening takes it over, and
        # a refused file must leave every stored object as it was.
        prepared = prepare_batch(table, batch.rows, ts=now_micros(), actor=actor or default_actor())
    except EntryError as e:
        raise UsageFailure(f"{batch.where(Path(file), e.row)}: {e}; nothing was written") from None
    with Ledger.open(path, keyring, actor=actor) as ledger:
        seqs = ledger.append(table, prepared, durable=True)
    result = {"table": table, "entries": len(seqs), "first_seq": seqs.start if seqs else None, "last_seq": seqs.stop - 1 if seqs else None}
    if as_json:
        emit_json(result)
    else:
        click.echo(f"appended {len(seqs)} entries to {table}" + (f" (seq {seqs.start}-{seqs.stop - 1})" if seqs else ""))


@click.command()
@existing_ledger
@json_option
@handle_errors
def status(path: str, as_json: bool) -> None:
    """Entries per table, the chain head and the keys in use (no key needed).

    \b
    Example:
      mrm status ./audit-ledger --json
    """
    doc = ledger_status(path)
    retention = command_retention(path)
    doc["retention"] = retention.as_json()
    view = command_mirror()
    if view is not None:
        doc["path"] = view.store.url
    if as_json:
        emit_json(doc)
        return
    click.echo(f"ledger    {doc['path']} ({doc['ledger_id']}, format {doc['format_version']}, created {doc['created_at']})")
    click.echo(f"entries   {doc['entries']} ({doc['unsealed_entries']} not yet sealed), {doc['segments']} segments, {doc['bytes_on_disk']:,} bytes")
    for table, n in doc["tables"].items():
        click.echo(f"  {table:<17} {n:>12,}")
    head = doc["head"]
    if head:
        click.echo(f"head      seq {head['seq']}  mac {head['mac'][:16]}...  next key {head['key_id']}")
    click.echo(f"keys      {', '.join(doc['key_ids'])}")
    click.echo(f"retention {retention.summary()}")


@click.group()
def keys() -> None:
    """Create, list and rotate HMAC keys; export public keys; make a report signing key."""


@keys.command("generate")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Keyring file to create (mode 600).")
@click.option("--key-id", help="Key id (default: k<date>-<random>).")
@handle_errors
def keys_generate(out: str, key_id: str | None) -> None:
    """Create a keyring file with one new random 256-bit HMAC key.

    \b
    Example:
      mrm keys generate --out /secure/ledger.keyring.json
    """
    if Path(out).exists():
        raise UsageFailure(f"{out} already exists; refusing to overwrite a key")
    keyring = Keyring.generate(key_id)
    keyring.save(out)
    click.echo(f"generated key {keyring.active} in {out}")


@keys.command("generate-signing")
@click.argument("name")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="File for the private key (mode 600).")
@click.option("--public-out", type=click.Path(dir_okay=False), help="Write the public key here too (default: only print it).")
@handle_errors
def keys_generate_signing(name: str, out: str, public_out: str | None) -> None:
    """Create an Ed25519 signing key of your own (a C2SP PRIVATE+KEY line), for signing
    reports you build from a ledger whose secrets you do not hold. Give the public key
    it prints to whoever checks your reports.

    \b
    Example:
      mrm keys generate-signing examiner-jkim --out jkim.key --public-out jkim.pub
      mrm report evidence ./audit-copy --pack kfcpa --public-key ledger.pub --signing-key jkim.key
    """
    from ledger.note import NoteError, Signer
    from ledger.storage_io import write_file_atomic

    for target in filter(None, (out, public_out)):
        if Path(target).exists():
            raise UsageFailure(f"{target} already exists; refusing to overwrite a key")
    try:
        signer = Signer.generate(name)
    except NoteError as e:
        raise UsageFailure(f"{name!r} cannot name a key: {e}") from None
    write_file_atomic(Path(out), (signer.to_skey() + "\n").encode("ascii"), mode=0o600)
    vkey = signer.verifier().to_vkey()
    if public_out:
        write_file_atomic(Path(public_out), (vkey + "\n").encode("ascii"))
    click.echo(f"wrote signing key {name}+{signer.key_id:08x} to {out}", err=True)
    click.echo(vkey)


@keys.command("list")
@keyring_option
@click.option("--ledger", "ledger_dir", type=click.Path(exists=True, file_okay=False), help="Show each key's check value for this ledger.")
@json_option
@handle_errors
def keys_list(keyring_file: str | None, ledger_dir: str | None, as_json: bool) -> None:
    """List key ids (never the keys), and which is active.

    \b
    Example:
      mrm keys list --keyring ledger.keyring.json --ledger ./audit-ledger
    """
    from ledger.keys import key_check
    from ledger.storage import Layout, read_meta

    keyring = resolve_keyring(ledger_dir, keyring_file)
    ledger_id = read_meta(Layout(Path(ledger_dir))).ledger_id_bytes if ledger_dir else None
    rows = [
        {"key_id": k, "active": k == keyring.active, **({"key_check": key_check(keyring.key(k), ledger_id)} if ledger_id else {})}
        for k in sorted(keyring.keys)
    ]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        click.echo(f"{row['key_id']}{'  (active)' if row['active'] else ''}{'  check ' + row['key_check'] if 'key_check' in row else ''}")


@keys.command("export-public")
@keyring_option
@click.option("--ledger", "ledger_dir", type=click.Path(exists=True, file_okay=False), help="Find the keyring beside this ledger.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write here (default: stdout).")
@handle_errors
def keys_export_public(keyring_file: str | None, ledger_dir: str | None, out: str | None) -> None:
    """Export the Ed25519 public keys (vkey lines) that verify checkpoints, proofs and
    reports. This is what an examiner gets; it cannot forge or MAC anything.

    \b
    Example:
      mrm keys export-public --ledger ./audit-ledger --out ledger.pub
    """
    keyring = resolve_keyring(ledger_dir, keyring_file)
    if not keyring.signers:
        raise UsageFailure(f"{keyring.source} has no Ed25519 signing key")
    text = "".join(v.to_vkey() + "\n" for v in keyring.verifiers())
    if out:
        Path(out).write_text(text)
        click.echo(f"wrote {len(keyring.signers)} public key(s) to {out}", err=True)
    else:
        click.echo(text, nl=False)


@keys.command("rotate")
@writable_ledger
@keyring_option
@click.option("--key-id", help="Id of the new key (default: k<date>-<random>).")
@click.option("--reason", default="scheduled key rotation", show_default=True, help="Recorded in the rotation entry.")
@click.option("--actor", help="Who rotates (default: $MRM_ACTOR or user@host).")
@click.option("--signing", is_flag=True, help="Rotate the Ed25519 checkpoint signing key instead of the HMAC key.")
@json_option
@handle_errors
def keys_rotate(path: str, keyring_file: str | None, key_id: str | None, reason: str, actor: str | None, signing: bool, as_json: bool) -> None:
    """Start a new HMAC key: the keyring file gains it, then an entry MACed under the old
    key announces it; later entries are MACed with the new key.

    The keyring is saved before the entry is written, so a crash never leaves a ledger
    whose newest key is lost. Keep the old keys: verification needs them.

    \b
    Example:
      mrm keys rotate ./audit-ledger --keyring ledger.keyring.json
    """
    import secrets

    keyring_path = Path(keyring_file or os.environ.get(ENV_KEYRING) or default_keyring_path(path))
    if not keyring_path.exists():
        raise UsageFailure(f"rotation updates a keyring file; {keyring_path} does not exist (pass --keyring)")
    keyring = Keyring.load(keyring_path)
    if signing:
        from ledger.note import Signer

        rotated = keyring.with_signer(Signer.generate(f"mrm-{key_id or new_key_id()}"))
        rotated.save(keyring_path)
        result = {"new_signing_key": rotated.active_signer, "keyring": str(keyring_path)}
        if as_json:
            emit_json(result)
        else:
            click.echo(f"new checkpoint signing key {rotated.active_signer}; export it with `mrm keys export-public` (verifiers keep trusting the old one for old checkpoints)")
        return
    rotated = keyring.with_key(key_id or new_key_id(), secrets.token_bytes(32))
    rotated.save(keyring_path)
    with Ledger.open(path, rotated, actor=actor) as ledger:
        seq = ledger.rotate_key(rotated, reason=reason, actor=actor)
    result = {"seq": seq, "new_key_id": rotated.active, "keyring": str(keyring_path)}
    if as_json:
        emit_json(result)
    else:
        click.echo(f"rotated to key {rotated.active} (entry seq {seq}); keyring {keyring_path} holds old and new keys")


@click.command()
@existing_ledger
@keyring_option
@click.option("--public-key", "public_key", type=click.Path(exists=True, dir_okay=False),
              help="Verify with public keys only (a file of vkey lines): checkpoints, signatures, roots, files. No HMAC key needed.")
@click.option("--state", "state_file", type=click.Path(dir_okay=False),
              help="Remember the last verified checkpoint's size and root here; refuse a rollback, a truncation or a fork.")
@click.option("--checkpoint", "checkpoints", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A checkpoint received earlier that this ledger must agree with and not end before (repeatable).")
@click.option("--tsa-root", "tsa_roots", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="With --public-key: PEM root certificate of the time-stamping authority, to check checkpoints' RFC 3161 tokens.")
@click.option("--workers", type=click.IntRange(1), help="Processes to verify with (default: every core).")
@json_option
@handle_errors
def verify(path: str, keyring_file: str | None, public_key: str | None, state_file: str | None, checkpoints: tuple[str, ...], tsa_roots: tuple[str, ...], workers: int | None, as_json: bool) -> None:
    """Check the ledger's integrity and say exactly what is wrong, and where.

    With the HMAC key (default): every MAC and chain link, sequence gaps and duplicates,
    the set of files, and that the typed columns a SQL reader sees are exactly what was
    MACed. With --public-key: everything that needs no secret, against the signed
    checkpoints. Both check the entries against the stored checkpoints, the ledger's own
    Merkle tree, and the --state and --checkpoint anchors given.

    Exit code 0 when everything verifies, 1 when any problem is found, 2 on a usage error.

    \b
    Example:
      mrm verify ./audit-ledger
      mrm verify ./audit-ledger --public-key ledger.pub --state ~/.mrm/audit.state
      mrm verify ./audit-ledger --keyring ledger.keyring.json --checkpoint received.note
      mrm verify ./audit-ledger --json | jq '.problems[0]'
    """
    from ledger.keys import load_verifiers
    from ledger.public import verify_public

    if tsa_roots and not public_key:
        raise UsageFailure("--tsa-root needs --public-key")
    bar = None
    progress = None
    if sys.stderr.isatty() and not as_json:
        bar = click.progressbar(length=1, label="verifying", file=sys.stderr)
        bar.__enter__()

        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

    try:
        anchors = {"state_path": state_file, "extra_checkpoints": [Path(c).read_bytes() for c in checkpoints]}
        try:
            if public_key:
                from cryptography import x509

                roots = [x509.load_pem_x509_certificate(Path(r).read_bytes()) for r in tsa_roots]
                report = verify_public(path, load_verifiers(public_key), tsa_roots=roots, workers=workers, progress=progress, **anchors)
            else:
                report = verify_ledger(path, resolve_keyring(path, keyring_file), workers=workers, progress=progress, **anchors)
        except ValueError as e:  # an unreadable state file or certificate
            raise UsageFailure(str(e)) from None
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    # Say which checkpoints were given, so a success names what it was checked against.
    given = [_checkpoint_given(c) for c in checkpoints]
    view = command_mirror()
    if view is not None:
        report.path = view.store.url
    retention = command_retention(path)
    if as_json:
        emit_json({**report.to_dict(), "checkpoints_given": given, "retention": retention.as_json(),
                   "objects_fetched": None if view is None else view.downloaded})
    else:
        click.echo(report.to_text())
        click.echo(f"retention {retention.summary()}")
        if view is not None:
            click.echo(f"read     {len(view.objects)} objects listed at {view.store.url}, {view.downloaded} fetched now "
                       f"(the others unchanged since the last run, mirrored in {view.path})")
        for g in given:
            if g["size"] is None:
                click.echo(f"given    {g['file']}: not a checkpoint ({g['error']})")
            else:
                verdict = "this ledger agrees with it and does not end before it" if report.ok else "see the problems above"
                click.echo(f"given    {g['file']}: checkpoint size {g['size']:,} root {g['root']}: {verdict}")
    if not report.ok:
        sys.exit(EXIT_INTEGRITY)


def _checkpoint_given(path: str) -> dict:
    """The size and root a --checkpoint file states (its signatures are checked by the
    verification itself, which reports a refused one as a problem)."""
    from ledger.note import Checkpoint, NoteError, parse_note

    try:
        body = Checkpoint.from_text(parse_note(Path(path).read_bytes()).text)
    except NoteError as e:
        return {"file": path, "size": None, "root": None, "error": str(e)}
    return {"file": path, "size": body.size, "root": base64.b64encode(body.root).decode("ascii"), "error": None}


@click.command()
@writable_ledger
@keyring_option
@click.option("--reason", required=True, help="Why the ledger is repaired; recorded in the repair entry.")
@click.option("--accept-loss", is_flag=True, help="Accept that acknowledged entries are lost: the repair entry names them, and verification reports them for ever after.")
@click.option("--actor", help="Who repairs (default: $MRM_ACTOR or user@host).")
@click.option("--dry-run", is_flag=True, help="Say what would be repaired; change nothing.")
@json_option
@handle_errors
def repair(path: str, keyring_file: str | None, reason: str, accept_loss: bool, actor: str | None, dry_run: bool, as_json: bool) -> None:
    """Record a loss or a damaged write-ahead log in the ledger, so it can be written again.

    A writer refuses a ledger whose HEAD records entries that neither the segments nor the
    write-ahead log hold (acknowledged entries lost), or whose log holds frames that do not
    continue the chain (duplicated, reordered, foreign). This is the only way on: frames
    that continue the chain are kept, the original log is saved under repairs/, and a
    `ledger_repair` operation entry records what was dropped and, with --accept-loss, the
    lost range and its last known MAC. Entries the stored tree or a signed checkpoint
    covers cannot be accepted as lost: restore those files from a copy.

    Exit code 0 when repaired (or nothing to repair), 1 when a loss needs --accept-loss or
    cannot be repaired, 2 on a usage error.

    \b
    Example:
      mrm repair ./audit-ledger --dry-run --reason "wal.log deleted during a disk swap"
      mrm repair ./audit-ledger --accept-loss --reason "wal.log deleted during a disk swap (INC-2291)"
    """
    plan = Ledger.repair(path, resolve_keyring(path, keyring_file), reason=reason, accept_loss=accept_loss, actor=actor, dry_run=dry_run)
    doc = None if plan is None else {
        "repair_id": plan.repair_id, "entry_seq": plan.entry_seq, "dry_run": dry_run,
        "lost": None if plan.lost is None else {"first_seq": plan.lost[0], "last_seq": plan.lost[1], "last_known_mac": plan.last_known_mac},
        "dropped_frames": plan.dropped, "reordered_frames": plan.reordered, "saved_wal": plan.saved_wal,
    }
    if as_json:
        emit_json({"repaired": doc is not None and not dry_run, "repair": doc})
        return
    if plan is None:
        click.echo(f"nothing to repair: {path} opens cleanly")
        return
    verb = "would record" if dry_run else "recorded"
    if plan.lost is not None:
        click.echo(f"{verb} the loss of acknowledged entries {plan.lost[0]}-{plan.lost[1]} (newest lost MAC {plan.last_known_mac})")
    for frame in plan.dropped:
        click.echo(f"{verb} dropping the log frame at bytes {frame['start']}-{frame['end']} (entries {frame['first_seq']}-{frame['last_seq']}): it {frame['why']}")
    if plan.reordered:
        click.echo(f"{verb} putting the log's {len(plan.reordered)} frames back in sequence order")
    if not dry_run:
        click.echo(f"repair entry seq {plan.entry_seq}; the original log is kept at {Path(path) / plan.saved_wal}")


@click.command()
@writable_ledger
@keyring_option
@click.option("--tsa-url", envvar="MRM_TSA_URL", help="RFC 3161 time-stamping authority to countersign the checkpoint (default: $MRM_TSA_URL; none).")
@json_option
@handle_errors
def checkpoint(path: str, keyring_file: str | None, tsa_url: str | None, as_json: bool) -> None:
    """Seal what is written and sign a checkpoint for it now.

    Checkpoints are also written automatically while a ledger is written (every
    250,000 entries and every 60 seconds) and when it is closed.

    \b
    Example:
      mrm checkpoint ./audit-ledger
    """
    keyring = resolve_keyring(path, keyring_file)
    if keyring.signer is None:
        raise UsageFailure(f"{keyring.source} has no Ed25519 signing key; add one with `mrm keys rotate --signing`")
    from ledger.checkpoints import http_timestamper

    with Ledger.open(path, keyring, timestamper=http_timestamper(tsa_url) if tsa_url else None) as ledger:
        note = ledger.checkpoint()
    if note is None:
        raise UsageFailure("no checkpoint was written")
    text = note.read_text(encoding="utf-8")
    body = text.split("\n")
    result = {"checkpoint": str(note), "size": int(body[1]), "root": body[2]}
    if as_json:
        emit_json(result)
    else:
        click.echo(f"checkpoint {note}: size {result['size']}, root {result['root']}")


@click.command()
@existing_ledger
@click.option("--seq", "seqs", type=int, multiple=True, help="Sequence number of an entry to prove (repeatable).")
@click.option("--request-id", help="Prove every entry of this request (data access, inference, attribution, guardrail).")
@click.option("--consistency", nargs=2, type=int, metavar="OLD NEW", help="Prove the checkpoint for size NEW extends the one for size OLD.")
@click.option("--checkpoint-size", type=int, help="Prove against this checkpoint (default: the newest).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the proof here (default: stdout).")
@handle_errors
def prove(path: str, seqs: tuple[int, ...], request_id: str | None, consistency: tuple[int, int] | None, checkpoint_size: int | None, out: str | None) -> None:
    """Write a self-contained JSON proof that anyone can check offline with the public key.

    Every entry is read from one snapshot of the ledger. No proof is made (exit code 1)
    when the stored Merkle tree does not hash to the root the checkpoint signs: `mrm
    verify` says what is damaged.

    \b
    Example:
      mrm prove ./audit-ledger --request-id req-000123 --out dispute-123.proof.json
      mrm prove ./audit-ledger --seq 42
      mrm prove ./audit-ledger --consistency 250000 500000
    """
    from ledger.proofs import ProofRequestError, find_request, prove_consistency, prove_entries
    from ledger.read import snapshot
    from ledger.tiles import CorruptTileError

    chosen = sum(bool(x) for x in (seqs, request_id, consistency))
    if chosen != 1:
        raise UsageFailure("give exactly one of --seq, --request-id or --consistency")
    try:
        if consistency:
            doc = prove_consistency(path, *consistency)
        else:
            snap = snapshot(path)  # one view of the ledger for finding and proving every entry
            doc = prove_entries(path, list(seqs) or find_request(snap, request_id), checkpoint_size=checkpoint_size, snap=snap)
    except ProofRequestError as e:
        raise UsageFailure(str(e)) from None
    except CorruptTileError as e:
        raise IntegrityFailure(f"{path}: the ledger's stored Merkle tree is damaged ({e}); no proof is made from it. "
                               f"`mrm verify` reports the damage") from None
    text = json.dumps(doc, indent=2) + "\n"
    if out:
        Path(out).write_text(text, encoding="utf-8")
        click.echo(f"wrote {doc['kind']} proof to {out}", err=True)
    else:
        click.echo(text, nl=False)


@click.command("verify-proof")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--public-key", "public_key", required=True, type=click.Path(exists=True, dir_okay=False), help="Trusted public keys (vkey lines).")
@json_option
@handle_errors
def verify_proof_cmd(file: str, public_key: str, as_json: bool) -> None:
    """Check a proof written by `mrm prove`, offline, with only the public key.

    Every field of the proof is checked: the checkpoint's signatures (all from trusted
    keys), each entry's JSON against its canonical bytes, each leaf hash, each Merkle
    path against the signed root. On success it says what holds: the tree size and root
    (and, for a consistency proof, both sizes and roots).

    Exit code 0 when the proof holds, 1 when it does not, 2 when the file is not a
    well-formed proof (the message names the JSON path of the field, e.g.
    entries[0].leaf_hash).

    \b
    Example:
      mrm verify-proof dispute-123.proof.json --public-key ledger.pub
    """
    from ledger.errors import ProofFormatError
    from ledger.keys import load_verifiers
    from ledger.proofs import parse_proof, verify_proof

    verifiers = load_verifiers(public_key)
    try:
        report = verify_proof(parse_proof(Path(file).read_bytes()), verifiers)
    except ProofFormatError as e:
        raise UsageFailure(f"{file}: not a well-formed proof: {e}") from None
    if as_json:
        emit_json(report.to_dict())
    else:
        old, new = report.old_checkpoint, report.checkpoint
        if old:
            click.echo(f"old checkpoint size {old['size']} root {old['root']} signed {old['time']} by {', '.join(old['signed_by'])}")
        if new:
            click.echo(f"{'new ' if old else ''}checkpoint size {new['size']} root {new['root']} signed {new['time']} by {', '.join(new['signed_by'])}")
        for e in report.entries:
            click.echo(f"{'OK  ' if e['ok'] else 'FAIL'} seq {e['seq']} ({e['table']})" + (f": {e['problem']}" if not e["ok"] else ""))
        for p in report.problems:
            click.echo(f"FAIL {p}")
        click.echo(report.summary())
    if not report.ok:
        sys.exit(EXIT_INTEGRITY)


def _retain_until(retain_until: str | None, retain_days: int | None) -> "dt.datetime | None":
    import datetime as dt

    if retain_until and retain_days:
        raise UsageFailure("give --retain-until or --retain-days, not both")
    if retain_days:
        return dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=retain_days)
    if not retain_until:
        return None
    try:
        if len(retain_until.strip()) == 10:
            day = dt.date.fromisoformat(retain_until.strip())
            until = dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
        else:
            until = dt.datetime.fromisoformat(retain_until.strip())
    except ValueError:
        raise UsageFailure(f"--retain-until {retain_until!r} is not a date (2033-12-31) or an ISO 8601 time with a zone") from None
    if until.tzinfo is None or until.utcoffset() is None:
        raise UsageFailure(f"--retain-until {retain_until!r} has no time zone; add Z or an offset")
    if until <= dt.datetime.now(dt.timezone.utc):
        raise UsageFailure(f"--retain-until {retain_until!r} is not in the future")
    return until.astimezone(dt.timezone.utc)


@click.command("copy")
@click.argument("source")
@click.argument("destination")
@keyring_option
@click.option("--public-key", "public_key", type=click.Path(exists=True, dir_okay=False),
              help="Verify both ends with public keys only (a file of vkey lines) instead of the HMAC key.")
@click.option("--allow-unverified", is_flag=True,
              help="Copy even a ledger that does not verify (or with no key to verify it); the result says so.")
@click.option("--retain-until", help="Put every immutable object of the copy under Object Lock retention until this date.")
@click.option("--retain-days", type=click.IntRange(1, 36500), help="Retention of the copy, in days from now.")
@json_option
@handle_errors
def copy_command(source: str, destination: str, keyring_file: str | None, public_key: str | None, allow_unverified: bool,
                 retain_until: str | None, retain_days: int | None, as_json: bool) -> None:
    """Copy a whole ledger from SOURCE to DESTINATION, verified at both ends.

    Either end is a directory or s3://bucket/prefix (credentials and endpoint from the
    standard AWS variables and files: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ~/.aws/config).
    The source is verified before anything is written, and the copy is read back from the
    destination and verified with the same keys. A source that does not verify is not
    copied (exit 1) unless --allow-unverified, and then the result says so. A directory
    destination appears whole or not at all; on object storage LEDGER.json is written
    last, so a stopped copy is not a ledger and copying again resumes it.

    \b
    Example:
      mrm copy ./audit-ledger s3://audit-bucket/ledgers/credit --retain-days 3650
      mrm copy s3://audit-bucket/ledgers/credit ./evidence/credit --public-key ledger.pub
    """
    from ledger.keys import load_verifiers
    from ledger.public import verify_public
    from ledger.store import LocalStore, open_store
    from ledger.transfer import VerifyOutcome, copy_ledger

    until = _retain_until(retain_until, retain_days)
    src, dst = open_store(source), open_store(destination)
    if until is not None and isinstance(dst, LocalStore):
        raise UsageFailure(f"{destination}: a directory keeps no retention lock; --retain-until and --retain-days need s3://")
    if public_key and keyring_file:
        raise UsageFailure("give --keyring or --public-key, not both")
    check = None
    if public_key:
        verifiers = load_verifiers(public_key)

        def check(path: Path) -> VerifyOutcome:
            report = verify_public(path, verifiers)
            return VerifyOutcome(report.ok, _outcome_line(report))
    else:
        try:
            keyring = resolve_keyring(source if isinstance(src, LocalStore) else None, keyring_file)
        except UsageFailure:
            if not allow_unverified:
                raise UsageFailure("no key to verify the copy with: give --keyring (or $MRM_KEYRING) or --public-key, "
                                   "or --allow-unverified to copy without verifying") from None
            keyring = None
        if keyring is not None:
            def check(path: Path) -> VerifyOutcome:
                report = verify_ledger(path, keyring)
                return VerifyOutcome(report.ok, _outcome_line(report))
    report = copy_ledger(src, dst, check, allow_unverified=allow_unverified, retain_until=until)
    if as_json:
        emit_json(report.as_json())
        return
    click.echo(f"copied {report.objects} objects ({report.bytes:,} bytes) from {report.source} to {report.destination}"
               + (f", {report.skipped} already there" if report.skipped else ""))
    if report.source_check is not None:
        click.echo(f"source       {'verified' if report.source_check.ok else 'DOES NOT VERIFY'}: {report.source_check.summary}")
    if report.destination_check is not None:
        click.echo(f"destination  verified: {report.destination_check.summary}")
    if report.unverified:
        click.echo("COPIED UNVERIFIED, as asked (--allow-unverified): this copy is not evidence that the ledger is intact")
    if until is not None:
        click.echo(f"retention    every immutable object retained until {until:%Y-%m-%d %H:%M:%S}Z (Object Lock, compliance mode)")


def _outcome_line(report) -> str:
    if report.ok:
        head = f"{report.entries:,} {'entry' if report.entries == 1 else 'entries'} in {report.segments} segments"
        return head + (f", checkpoint size {report.checkpoint['size']:,} root {report.checkpoint['root']}" if report.checkpoint else "")
    first = str(report.problems[0]).split(None, 1)[-1] if report.problems else "no problem named"
    return f"{len(report.problems)} problems; the first: {report.problems[0].kind} {first}" if report.problems else "failed"


COMMANDS = [init, ingest, status, keys, verify, repair, checkpoint, prove, verify_proof_cmd, copy_command]
