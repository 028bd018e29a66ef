"""A deterministic mutation fuzz of proofs and the checkpoint notes in them.

Every field of an inclusion proof (four entries of four tables), of a consistency proof
and of their checkpoint notes is mutated, one mutation per mutant: deleted, replaced by a
value of every JSON type, nudged (integers +-1, doubled, halved; floats by one ulp; base64
by one bit, one byte more or less, a non-canonical spelling; text by a character), and
arrays and objects shortened, repeated, reordered and extended. Then coordinated edits
that re-encode an edited entry with a correct leaf hash (so only the Merkle path can catch
them), note lines edited, repeated, dropped and re-signed by a stranger, and seeded
byte-level edits of the JSON text. For each mutant, parsed and verified as `mrm
verify-proof` does:

* nothing is raised but ProofFormatError (a refusal, exit 2): never a traceback;
* a mutant that verifies is the original: the same JSON value (object key order aside),
  or the original with some entries left out (a proof of fewer entries, as the success
  message then says).

A sample of the mutants also goes through the command line: exit code 1 or 2, no exception.
"""

import base64
import binascii
import itertools
import json
import math
import random
import struct
import uuid

import pytest
from click.testing import CliRunner

from ledger import Keyring, Ledger
from ledger.checkpoints import parse as parse_checkpoint
from ledger.encoding import RowEncoder
from ledger.entries import entry_from_json
from ledger.errors import EntryError, ProofFormatError
from ledger.merkle import leaf_hash
from ledger.note import Checkpoint, NoteError, Signature, Signer, parse_note
from ledger.proofs import parse_proof, prove_consistency, prove_entries, verify_proof
from ledger.public import open_ledger_checkpoint
from ledger.schema import TABLES
from ledger.storage import Layout
from ledger.checkpoints import stored_notes
from mrm.cli import main
from mrm.synthetic import stream

from .conftest import KEY

SIGNER = Signer.parse("PRIVATE+KEY+mrm-test+64b144e8+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f")
# Fixed keys, ledger id and clock: the same documents, so the same mutants, on every run.
STRANGER = Signer.parse("PRIVATE+KEY+mrm-test+3c520faa+AQcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH")  # same name, another key
WITNESS = Signer.parse("PRIVATE+KEY+witness+59d7b130+AQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJ")
LEDGER_ID = uuid.UUID(int=0x13_2026_1207)
START = 1_780_000_000_000_000  # microseconds: the fixed clock's first tick
SEED = 20261207
TEXT_MUTANTS = 1000  # byte-level edits of each document's JSON text
CLI_SAMPLE = 40  # mutants per document also run through `mrm verify-proof`


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    keyring = Keyring.from_key("test-k1", KEY).with_signer(SIGNER)
    path = tmp_path_factory.mktemp("fuzz") / "ledger"
    clock = itertools.count(START, 1000)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(uuid, "uuid4", lambda: LEDGER_ID)
        with Ledger.create(path, keyring, actor="test", clock=lambda: next(clock)) as ledger:
            for seed in (5, 6):
                for table, row in stream(6, seed=seed):
                    ledger.log(table, row)
                ledger.seal()
    old, new = (s for s, _ in stored_notes(Layout(path))[-2:])
    pub = path.parent / "ledger.pub"
    pub.write_text(SIGNER.verifier().to_vkey() + "\n")
    return {
        "verifiers": keyring.verifiers(),
        "pub": pub,
        "inclusion": prove_entries(path, [4, 5, 6, 7]),
        "consistency": prove_consistency(path, old, new),
    }


# ------------------------------------------------------------------------------ the oracle


def same(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def sub_proof(doc, original) -> bool:
    """The original proof with some of its entries left out: it proves less, nothing else."""
    if original.get("kind") != "inclusion" or not same({**doc, "entries": []}, {**original, "entries": []}):
        return False
    kept = [json.dumps(e, sort_keys=True) for e in doc["entries"]]
    return all(e in {json.dumps(o, sort_keys=True) for o in original["entries"]} for e in kept)


class Outcome:
    def __init__(self):
        self.mutants = self.refused = self.failed = self.held = 0
        self.bad: list[str] = []

    def check(self, original, text: str, what: str, verifiers) -> None:
        self.mutants += 1
        try:
            doc = parse_proof(text)
            report = verify_proof(doc, verifiers)
        except ProofFormatError:
            self.refused += 1
            return
        except Exception as e:  # noqa: BLE001 - the point: nothing else may escape
            self.bad.append(f"{what}: {type(e).__name__}: {e}")
            return
        if not report.ok:
            self.failed += 1
            if not report.problems:
                self.bad.append(f"{what}: failed without a problem named")
            return
        self.held += 1
        if not same(doc, original) and not sub_proof(doc, original):
            self.bad.append(f"{what}: a changed proof holds")


# ------------------------------------------------------------------------------ value mutations


def _b64_or_none(value: str) -> bytes | None:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if raw and base64.b64encode(raw).decode() == value else None


def _next_float(x: float, direction: float) -> float:
    return math.nextafter(x, direction)


def value_mutants(value):
    """(name, new value) pairs for one value; big/odd numbers as text placeholders."""
    out = [("null", None), ("true", True), ("zero", 0), ("minus one", -1), ("empty string", ""), ("string", "x"),
           ("empty array", []), ("empty object", {}), ("float", 0.5), ("2^63", 2**63), ("huge int", "@@10**400@@"),
           ("NaN", "@@NaN@@"), ("1e400", "@@1e400@@")]
    if type(value) is int:
        out += [("+1", value + 1), ("-1", value - 1), ("x2", value * 2), ("/2", value // 2), ("negated", -value),
                ("as float", float(value)), ("as string", str(value))]
    elif type(value) is float:
        out += [("ulp up", _next_float(value, math.inf)), ("ulp down", _next_float(value, -math.inf)),
                ("negated", -value), ("x2", value * 2), ("as string", repr(value)), ("-0.0", -0.0)]
        if value == int(value):
            out.append(("as int", int(value)))
    elif type(value) is str:
        raw = _b64_or_none(value)
        if raw is not None:
            for i in sorted({0, len(raw) // 2, len(raw) - 1}):
                flipped = bytearray(raw)
                flipped[i] ^= 0x01
                out.append((f"bit flipped in byte {i}", base64.b64encode(bytes(flipped)).decode()))
            out += [("one byte less", base64.b64encode(raw[:-1]).decode()),
                    ("one byte more", base64.b64encode(raw + b"\0").decode()),
                    ("no padding", value.rstrip("=")) if value.endswith("=") else ("url-safe", value.replace("+", "-").replace("/", "_")),
                    ("with a newline", value[: len(value) // 2] + "\n" + value[len(value) // 2 :])]
        if value:
            out += [("last char changed", value[:-1] + chr(ord(value[-1]) ^ 1)), ("first char changed", chr(ord(value[0]) ^ 1) + value[1:]),
                    ("truncated", value[:-1]), ("upper case", value.upper()), ("padded", value + " "),
                    ("lone surrogate", value + "\ud800")]
        out += [("appended", value + "a")]
    elif type(value) is list:
        if value:
            out += [("last dropped", value[:-1]), ("first repeated", [value[0], *value]), ("reversed", value[::-1]),
                    ("last repeated", [*value, value[-1]])]
        out += [("null appended", [*value, None])]
    elif type(value) is dict:
        out += [("unknown key", {**value, "extra": 1}), ("mac added", {**value, "mac": "00" * 32})]
        if value:
            first = next(iter(value))
            out += [("key renamed", {(first + "_" if k == first else k): v for k, v in value.items()}),
                    ("key upper-cased", {(k.upper() if k == first else k): v for k, v in value.items()})]
    return out


def paths(value, prefix=()):
    yield prefix
    if type(value) is dict:
        for k, v in value.items():
            yield from paths(v, (*prefix, k))
    elif type(value) is list:
        for i, v in enumerate(value):
            yield from paths(v, (*prefix, i))


def get(doc, path):
    for k in path:
        doc = doc[k]
    return doc


def dump(doc) -> str:
    """JSON text, with placeholder strings turned into the literals Python cannot hold."""
    text = json.dumps(doc)
    return (text.replace('"@@10**400@@"', "1" + "0" * 400).replace('"@@NaN@@"', "NaN").replace('"@@1e400@@"', "1e400"))


def structural_mutants(original):
    for path in paths(original):
        value = get(original, path)
        where = "".join(f"[{k!r}]" for k in path) or "(document)"
        if path:
            doc = json.loads(json.dumps(original))
            parent = get(doc, path[:-1])
            del parent[path[-1]]
            yield f"{where} deleted", doc
        for name, new in value_mutants(value):
            doc = json.loads(json.dumps(original))
            if path:
                get(doc, path[:-1])[path[-1]] = new
            else:
                doc = new
            yield f"{where} {name}", doc


# ------------------------------------------------------------------------------ coordinated edits


def reencoded_entry_mutants(original):
    """An edited entry given its true canonical bytes and leaf hash: only the Merkle path can catch it."""
    ledger_id = bytes.fromhex(original["ledger_id"])
    for i, item in enumerate(original["entries"]):
        for field, value in item["entry"].items():
            for name, new in value_mutants(value):
                if isinstance(new, str) and new.startswith("@@"):
                    continue
                doc = json.loads(json.dumps(original))
                entry = doc["entries"][i]
                entry["entry"][field] = new
                try:
                    canonical = RowEncoder(TABLES[item["table"]], ledger_id)(entry_from_json(item["table"], entry["entry"]))
                except (EntryError, ValueError, TypeError, struct.error):
                    continue
                entry["canonical"] = base64.b64encode(canonical).decode()
                entry["leaf_hash"] = base64.b64encode(leaf_hash(canonical)).decode()
                yield f"entries[{i}].entry.{field} {name}, re-encoded", doc
        doc = json.loads(json.dumps(original))
        raw = bytearray(base64.b64decode(item["canonical"]))
        raw[-1] ^= 0x01
        doc["entries"][i]["canonical"] = base64.b64encode(bytes(raw)).decode()
        doc["entries"][i]["leaf_hash"] = base64.b64encode(leaf_hash(bytes(raw))).decode()
        yield f"entries[{i}].canonical bit flipped, leaf hash recomputed", doc


def note_mutants(note: str):
    """Edited checkpoint notes: each line changed, dropped, repeated; re-signed by strangers."""
    lines = note.split("\n")
    for i, line in enumerate(lines):
        for name, new in (("dropped", None), ("repeated", [line, line]), ("char changed", [line[:-1] + chr(ord(line[-1]) ^ 1)] if line else ["x"]),
                          ("space appended", [line + " "]), ("emptied", [""])):
            edited = lines[:i] + ([] if new is None else new) + lines[i + 1 :]
            yield f"note line {i} {name}", "\n".join(edited)
    text = note[: note.rindex("\n\n") + 1]
    body = Checkpoint.from_text(text)
    for signer, who in ((STRANGER, "same-named stranger"), (WITNESS, "witness")):
        signature = Signature(signer.name, signer.key_id, signer.sign(text.encode())).line()
        yield f"note also signed by a {who}", note + signature
        yield f"note signed only by a {who}", text + "\n" + signature
        forged = Checkpoint(body.origin, body.size + 1, body.root, body.extensions).to_text()
        yield f"note for another size signed by a {who}", forged + "\n" + Signature(signer.name, signer.key_id, signer.sign(forged.encode())).line()
    yield "note without its final newline", note[:-1]
    yield "note with a carriage return", note.replace("\n", "\r\n", 1)


def note_fields(doc):
    return [k for k in ("checkpoint", "old_checkpoint", "new_checkpoint") if k in doc]


# ------------------------------------------------------------------------------ text edits


def text_mutants(text: str, rng: random.Random, count: int):
    data = text.encode("utf-8")
    for n in range(count):
        op = n % 5
        i = rng.randrange(len(data))
        if op == 0:
            edited = data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]
        elif op == 1:
            edited = data[:i] + data[i + 1 :]
        elif op == 2:
            edited = data[:i] + bytes([rng.choice(b'0123456789{}[]",:.eE-+ \\naA=/')]) + data[i:]
        elif op == 3:
            j = min(len(data), i + rng.randrange(1, 40))
            edited = data[:i] + data[i:j] + data[i:]  # a stretch repeated
        else:
            edited = data[:i]
        yield f"text edit {op} at byte {i}", edited


# ------------------------------------------------------------------------------ the fuzz


@pytest.mark.parametrize("kind", ["inclusion", "consistency"])
def test_no_mutant_crashes_the_verifier_or_holds_unless_unchanged(world, kind):
    original, verifiers = world[kind], world["verifiers"]
    rng = random.Random(f"{SEED}-{kind}")
    outcome = Outcome()
    assert verify_proof(json.loads(json.dumps(original)), verifiers).ok
    for what, doc in structural_mutants(original):
        outcome.check(original, dump(doc), what, verifiers)
    if kind == "inclusion":
        for what, doc in reencoded_entry_mutants(original):
            outcome.check(original, dump(doc), what, verifiers)
    for field in note_fields(original):
        for what, note in note_mutants(original[field]):
            outcome.check(original, dump({**original, field: note}), f"{field}: {what}", verifiers)
    text = json.dumps(original, indent=2)
    for what, data in text_mutants(text, rng, TEXT_MUTANTS):
        outcome.check(original, data, what, verifiers)
    print(f"{kind}: {outcome.mutants} mutants: {outcome.refused} refused, {outcome.failed} do not hold, "
          f"{outcome.held} hold (unchanged)")
    assert not outcome.bad, "\n".join(outcome.bad[:20])
    assert outcome.mutants > 1000 and outcome.refused and outcome.failed


def test_mutated_checkpoint_notes_open_or_are_refused_as_notes(world):
    """The notes alone, as `mrm verify --checkpoint` and the report builder open them: a
    NoteError, or the very note signed."""
    verifiers = world["verifiers"]
    ledger_id = world["inclusion"]["ledger_id"]
    count = 0
    for field in ("checkpoint",):
        note = world["inclusion"][field]
        for what, edited in note_mutants(note):
            count += 1
            try:
                signed = open_ledger_checkpoint(edited.encode("utf-8", "surrogatepass"), verifiers, ledger_id)
                parse_checkpoint(Checkpoint.from_text(parse_note(edited.encode()).text))
            except NoteError:
                continue
            assert signed.note.decode().split("\n\n")[0] == note.split("\n\n")[0], what
    assert count > 50


def test_a_sample_of_mutants_through_the_command_line(world, tmp_path):
    rng = random.Random(SEED)
    file = tmp_path / "mutant.json"
    seen = 0
    for kind in ("inclusion", "consistency"):
        mutants = list(structural_mutants(world[kind]))
        for what, doc in rng.sample(mutants, CLI_SAMPLE):
            file.write_text(dump(doc))
            result = CliRunner().invoke(main, ["verify-proof", str(file), "--public-key", str(world["pub"])])
            assert result.exit_code in (1, 2), (what, result.output)
            assert isinstance(result.exception, SystemExit), (what, result.exception)
            assert result.output.startswith("error: ") == (result.exit_code == 2), (what, result.output)
            seen += 1
    assert seen == 2 * CLI_SAMPLE
