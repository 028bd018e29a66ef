"""Ledger commands: init, ingest, status, keys, verify."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ledger import EntryError, Keyring, Ledger, verify_ledger
from ledger.files import FORMATS, read_batch
from ledger.inspect import ledger_status
from ledger.keys import ENV_KEYRING, new_key_id
from ledger.schema import TABLE_NAMES

from .cli import (
    EXIT_INTEGRITY,
    UsageFailure,
    default_keyring_path,
    emit_json,
    handle_errors,
    json_option,
    keyring_option,
    resolve_keyring,
)

ledger_path = click.argument("path", type=click.Path(file_okay=False))
existing_ledger = click.argument("path", type=click.Path(exists=True, file_okay=False))


@click.command()
@ledger_path
@keyring_option
@click.option("--key-id", help="Id for a generated key (default: k<date>-<random>).")
@click.option("--actor", help="Who writes the genesis entry (default: $MRM_ACTOR or user@host).")
@json_option
@handle_errors
def init(path: str, keyring_file: str | None, key_id: str | None, actor: str | None, as_json: bool) -> None:
    """Create a ledger at PATH, and an HMAC key unless one is given.

    A generated key is saved to PATH.keyring.json beside the ledger (mode 600), never
    inside it: whoever holds the key can forge entries, so keep it apart from the data.

    \b
    Example:
      mrm init ./audit-ledger
      MRM_KEYRING=/secure/keys.json mrm init ./audit-ledger
    """
    generated_at = None
    try:
        keyring = resolve_keyring(None, keyring_file)
    except UsageFailure:
        generated_at = default_keyring_path(path)
        if generated_at.exists():
            raise UsageFailure(f"{generated_at} already exists; pass it with --keyring or remove it") from None
        keyring = Keyring.generate(key_id)
    ledger = Ledger.create(path, keyring, actor=actor)
    if generated_at is not None:
        try:
            keyring.save(generated_at)
        except BaseException:
            import shutil

            ledger.close()
            shutil.rmtree(path, ignore_errors=True)
            raise
    ledger.close()
    result = {"path": str(Path(path)), "ledger_id": ledger.ledger_id, "key_id": keyring.active, "keyring": str(generated_at or keyring.source)}
    if as_json:
        emit_json(result)
    else:
        click.echo(f"created ledger {result['ledger_id']} at {result['path']}")
        click.echo(f"HMAC key {keyring.active} " + (f"generated and saved to {generated_at} (keep it secret)" if generated_at else f"from {keyring.source}"))


@click.command()
@existing_ledger
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
    with Ledger.open(path, keyring, actor=actor) as ledger:
        try:
            seqs = ledger.append(table, batch.rows, durable=True)
        except EntryError as e:
            raise UsageFailure(f"{batch.where(Path(file), e.row)}: {e}; nothing was written") from None
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


@click.group()
def keys() -> None:
    """Create, list and rotate HMAC keys."""


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


@keys.command("rotate")
@existing_ledger
@keyring_option
@click.option("--key-id", help="Id of the new key (default: k<date>-<random>).")
@click.option("--reason", default="scheduled key rotation", show_default=True, help="Recorded in the rotation entry.")
@click.option("--actor", help="Who rotates (default: $MRM_ACTOR or user@host).")
@json_option
@handle_errors
def keys_rotate(path: str, keyring_file: str | None, key_id: str | None, reason: str, actor: str | None, as_json: bool) -> None:
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
@click.option("--workers", type=click.IntRange(1), help="Processes to verify with (default: every core).")
@json_option
@handle_errors
def verify(path: str, keyring_file: str | None, workers: int | None, as_json: bool) -> None:
    """Check every MAC and chain link, sequence gaps and duplicates, the set of files, and
    that the typed columns a SQL reader sees are exactly what was MACed.

    Exit code 0 when everything verifies, 1 when any problem is found, 2 on a usage error.

    \b
    Example:
      mrm verify ./audit-ledger
      mrm verify ./audit-ledger --json | jq '.problems[0]'
    """
    keyring = resolve_keyring(path, keyring_file)
    bar = None
    progress = None
    if sys.stderr.isatty() and not as_json:
        bar = click.progressbar(length=1, label="verifying", file=sys.stderr)
        bar.__enter__()

        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

    try:
        report = verify_ledger(path, keyring, workers=workers, progress=progress)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(report.to_text())
    if not report.ok:
        sys.exit(EXIT_INTEGRITY)


COMMANDS = [init, ingest, status, keys, verify]
