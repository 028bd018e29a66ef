"""The `mrm` command line. Exit codes: 0 ok, 1 integrity failure found, 2 usage or input error."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

import click

from ledger import Keyring, LedgerError

EXIT_OK, EXIT_INTEGRITY, EXIT_USAGE = 0, 1, 2


class UsageFailure(click.ClickException):
    """An input or usage error: printed as `error: ...`, exit code 2."""

    exit_code = EXIT_USAGE

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


class IntegrityFailure(UsageFailure):
    """A refusal because the ledger shows a loss or corruption: `error: ...`, exit code 1."""

    exit_code = EXIT_INTEGRITY


def handle_errors(fn: Callable) -> Callable:
    """Turn the library's refusals into exit code 2 with their message (never a traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LedgerError as e:
            raise (IntegrityFailure if e.exit_code == EXIT_INTEGRITY else UsageFailure)(str(e)) from None
        except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
            raise UsageFailure(f"{e.filename}: {e.strerror}") from None

    return wrapper


def usage_errors(*error_types: type[Exception]) -> Callable[[Callable], Callable]:
    """A decorator: these library errors (bad input, refusals) exit 2 with their message."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except error_types as e:
                raise UsageFailure(str(e)) from None

        return wrapper

    return decorate


def default_keyring_path(ledger_path: str | os.PathLike[str]) -> Path:
    """Where `mrm init` keeps a generated keyring: beside the ledger, never inside it."""
    p = Path(ledger_path)
    return p.with_name(p.name + ".keyring.json")


def resolve_keyring(ledger_path: str | None, keyring_file: str | None) -> Keyring:
    """--keyring, else $MRM_KEYRING / $MRM_HMAC_KEY, else the keyring `mrm init` wrote."""
    if keyring_file:
        return Keyring.load(keyring_file)
    from_env = Keyring.from_env()
    if from_env is not None:
        return from_env
    if ledger_path is not None:
        beside = default_keyring_path(ledger_path)
        if beside.exists():
            return Keyring.load(beside)
    raise UsageFailure(
        "no HMAC key: pass --keyring FILE, or set MRM_KEYRING (a keyring file) or MRM_HMAC_KEY (KEY_ID:BASE64)"
    )


keyring_option = click.option(
    "--keyring",
    "keyring_file",
    type=click.Path(dir_okay=False),
    help="Keyring or key file. Default: $MRM_KEYRING, $MRM_HMAC_KEY, or PATH.keyring.json beside the ledger.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


class LedgerLocation(click.ParamType):
    """A ledger: a directory, or ``s3://bucket/prefix`` (credentials and endpoint from the
    standard AWS variables and files, never from the command line).

    A command that reads a ledger kept in a store reads a local mirror (ledger/transfer.py)
    holding exactly what the store lists now, and ``ctx.meta["mrm.mirror"]`` keeps that
    listing (for the retention state). A command that writes (`writes=True`) gets the
    ledger's local directory on this machine (`mrm --work-dir DIR`, else $MRM_WORK_DIR, else
    one per store under ~/.local/state/mrm-ledger), which holds the write-ahead log and
    names the store. A command that only reads entries (`entries_only=True`: `mrm sql`,
    `mrm reconstruct`) lists and fetches only what that needs (ledger.transfer.ENTRY_DATA:
    no tree tiles, no checkpoints), and `whole_ledger` fetches the rest when it verifies
    after all."""

    name = "ledger"

    def __init__(self, *, writes: bool = False, entries_only: bool = False):
        self.writes = writes
        self.entries_only = entries_only

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = os.fspath(value)
        if text.startswith("s3://"):
            from ledger.storage import work_dir_for
            from ledger.store import open_store
            from ledger.transfer import ENTRY_DATA, mirror

            local = ctx.meta.get(WORK_DIR_META) if ctx is not None else None
            try:
                store = open_store(text)
                if self.writes:
                    return str(work_dir_for(store, local))
                view = mirror(store, work_dir_for(store, local) / "mirror", only=ENTRY_DATA if self.entries_only else None)
            except LedgerError as e:
                raise (IntegrityFailure if e.exit_code == EXIT_INTEGRITY else UsageFailure)(str(e)) from None
            if ctx is not None:
                ctx.meta["mrm.mirror"] = view
            return str(view.path)
        path = Path(text)
        if not path.exists():
            self.fail(f"{text}: no such directory", param, ctx)
        if not path.is_dir():
            self.fail(f"{text}: not a directory", param, ctx)
        return text


def ledger_argument(*, writes: bool = False, entries_only: bool = False) -> Callable[[Callable], Callable]:
    return click.argument("path", type=LedgerLocation(writes=writes, entries_only=entries_only))


existing_ledger = ledger_argument()
writable_ledger = ledger_argument(writes=True)
entries_ledger = ledger_argument(entries_only=True)


def command_mirror() -> Any:
    """The mirror (ledger.transfer.Mirror) the current command reads its ledger through,
    when the ledger was given as an object-store location; else None."""
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get("mrm.mirror") if ctx is not None else None


def command_retention(path: str) -> Any:
    """The retention state (ledger.transfer.RetentionState) of the ledger the current
    command reads: the object store's own, read from the store and its listing, when the
    ledger was given as a store location (never the mirror's, which keeps none); else the
    directory's, which keeps none."""
    from ledger.store import LocalStore
    from ledger.transfer import retention_state

    view = command_mirror()
    if view is None or str(view.path) != path:
        return retention_state(LocalStore(path))
    objects = view.objects
    if not any(o.key.startswith("checkpoints/") for o in objects):
        objects += tuple(view.store.list("checkpoints/"))  # an entries-only mirror did not list them
    return retention_state(view.store, objects)


def whole_ledger(path: str) -> None:
    """Before verifying a ledger that `entries_ledger` mirrored in part: fetch the rest
    (the tree's tiles and the checkpoints) into the same mirror."""
    view = command_mirror()
    if view is None or str(view.path) != path:
        return
    from ledger.transfer import mirror

    try:
        click.get_current_context().meta["mrm.mirror"] = mirror(view.store, view.path)
    except LedgerError as e:
        raise (IntegrityFailure if e.exit_code == EXIT_INTEGRITY else UsageFailure)(str(e)) from None


def writable(path: str) -> str:
    """Where a command that read `path` writes: the store a mirror was read from (its
    writer goes through the store and this machine's local directory), else `path`."""
    view = command_mirror()
    return view.store.url if view is not None and str(view.path) == path else path


def emit_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, sort_keys=True, default=str))


class OrderedGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


WORK_DIR_META = "mrm.work_dir"


def given_work_dir() -> Path | None:
    """`mrm --work-dir DIR`, if given (else the ledger's default local directory is used)."""
    return click.get_current_context().meta.get(WORK_DIR_META)


@click.group(cls=OrderedGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="mrm-ledger")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="For a ledger on object storage (s3://...): this machine's directory for it (write-ahead log, "
                   "lock, mirror). Default: $MRM_WORK_DIR, else one per store under ~/.local/state/mrm-ledger.")
@click.pass_context
def main(ctx: click.Context, work_dir: Path | None) -> None:
    """mrm: tamper-evident evidence of what models decided, and why.

    \b
    Start with:
      mrm demo --out demo-out          build the demo ledger and its reports
      mrm status demo-out/ledger       what the ledger holds
      mrm verify demo-out/ledger --keyring demo-out/ledger.keyring.json
    """
    if work_dir is not None:
        ctx.meta[WORK_DIR_META] = work_dir


def _register() -> None:
    from . import cmd_demo, cmd_gate, cmd_ledger, cmd_map, cmd_monitor, cmd_report, cmd_sql

    for module in (cmd_demo, cmd_ledger, cmd_gate, cmd_monitor, cmd_report, cmd_sql, cmd_map):
        for command in module.COMMANDS:
            main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    # `python -m mrm.cli`: this copy of the module is __main__; the commands register on
    # the importable mrm.cli (which they import), so run that one.
    from mrm.cli import main as registered_main

    sys.exit(registered_main())
else:
    _register()
