"""`mrm prove` and `mrm verify-proof`: every field a proof carries is checked or refused.

A refusal (a field that is unknown, missing, mistyped, out of range, non-canonical, or that
contradicts the field it restates) exits 2 and names the JSON path; a well-formed proof
that does not verify exits 1; one that holds says which tree sizes and roots it holds for.
"""

import base64
import json
import shutil

import pytest
from click.testing import CliRunner

from ledger import Keyring, Ledger
from ledger.checkpoints import checkpoint_path, stored_notes
from ledger.errors import EntryError, ProofFormatError
from ledger.jsontext import json_path
from ledger.merkle import leaf_hash
from ledger.normalize import RowNormalizer
from ledger.note import Signer
from ledger.proofs import parse_proof, prove_consistency, prove_entries, verify_proof
from ledger.schema import TABLES
from ledger.storage import Layout
from mrm.cli import main
from mrm.synthetic import stream

from .conftest import KEY

SIGNER = Signer.parse("PRIVATE+KEY+mrm-test+64b144e8+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f")
# Entries 4-7 of the first request: data_access, model_inference, attribution, guardrail.
SEQS = [4, 5, 6, 7]
INFERENCE, ATTRIBUTION, GUARDRAIL = 1, 2, 3  # their positions in a proof of SEQS


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], env={"MRM_KEYRING": "", "MRM_HMAC_KEY": ""})


@pytest.fixture(scope="module")
def keyring():
    return Keyring.from_key("test-k1", KEY).with_signer(SIGNER)


@pytest.fixture(scope="module")
def template(tmp_path_factory, keyring):
    path = tmp_path_factory.mktemp("proofs") / "ledger"
    with Ledger.create(path, keyring, actor="test") as ledger:
        for seed in (5, 6):
            for table, row in stream(6, seed=seed):
                ledger.log(table, row)
            ledger.seal()
    return path


@pytest.fixture(scope="module")
def pub(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys") / "ledger.pub"
    path.write_text(SIGNER.verifier().to_vkey() + "\n")
    return path


@pytest.fixture(scope="module")
def inclusion(template):
    return prove_entries(template, SEQS)


@pytest.fixture(scope="module")
def consistency(template):
    old, new = (s for s, _ in stored_notes(Layout(template))[-2:])
    return prove_consistency(template, old, new)


def fresh(doc):
    return json.loads(json.dumps(doc))


def refused(tmp_path, pub, text, path_named):
    """verify-proof of `text` exits 2, names `path_named` and prints no traceback."""
    file = tmp_path / "p.json"
    file.write_text(text)
    result = run("verify-proof", file, "--public-key", pub)
    assert result.exit_code == 2, result.output
    assert f"{path_named}:" in result.output, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    return result.output


def b64(data):
    return base64.b64encode(data).decode()


# ------------------------------------------------------------------------------ refusals


def test_a_proof_carries_no_mac_and_one_that_does_is_refused(tmp_path, pub, inclusion):
    assert all("mac" not in e["entry"] for e in inclusion["entries"])
    doc = fresh(inclusion)
    doc["entries"][0]["entry"]["mac"] = "ab" * 32  # a forged MAC no public verifier could check
    out = refused(tmp_path, pub, json.dumps(doc), "entries[0].entry.mac")
    assert "MAC" in out


def test_a_wrong_leaf_hash_is_refused(tmp_path, pub, inclusion):
    doc = fresh(inclusion)
    doc["entries"][2]["leaf_hash"] = b64(leaf_hash(b"something else"))
    out = refused(tmp_path, pub, json.dumps(doc), "entries[2].leaf_hash")
    assert "is not the leaf hash of entries[2].canonical" in out


def test_duplicated_and_out_of_order_entries_are_refused(tmp_path, pub, inclusion):
    doc = fresh(inclusion)
    doc["entries"].append(doc["entries"][1])
    assert "appears twice (also entries[1])" in refused(tmp_path, pub, json.dumps(doc), "entries[4].seq")
    doc = fresh(inclusion)
    doc["entries"][1], doc["entries"][2] = doc["entries"][2], doc["entries"][1]
    assert "ascending seq order" in refused(tmp_path, pub, json.dumps(doc), "entries[2].seq")


@pytest.mark.parametrize("where", [(), ("entries", 0), ("entries", 0, "entry"), ("entries", 0, "inclusion")])
def test_unknown_and_missing_fields_are_refused_with_their_path(tmp_path, pub, inclusion, where):
    doc = fresh(inclusion)
    obj = doc
    for key in where:
        obj = obj[key]
    obj["signed_off_by"] = "someone"
    assert "unknown field" in refused(tmp_path, pub, json.dumps(doc), json_path([*where, "signed_off_by"]))
    del obj["signed_off_by"]
    first = next(iter(obj))
    del obj[first]
    assert "missing field" in refused(tmp_path, pub, json.dumps(doc), json_path([*where, first]))


def test_a_consistency_proof_has_exactly_its_fields(tmp_path, pub, consistency):
    doc = fresh(consistency)
    doc["entries"] = []
    refused(tmp_path, pub, json.dumps(doc), "entries")
    doc = fresh(consistency)
    doc["consistency"]["size1"] = True
    assert "must be an integer" in refused(tmp_path, pub, json.dumps(doc), "consistency.size1")


def test_non_canonical_base64_is_refused(tmp_path, pub, inclusion):
    doc = fresh(inclusion)
    good = doc["entries"][0]["inclusion"]["hashes"][0]
    # The last character before the padding carries 2 unused bits: setting one is not canonical.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    doc["entries"][0]["inclusion"]["hashes"][0] = good[:-2] + alphabet[alphabet.index(good[-2]) ^ 1] + "="
    assert "canonical" in refused(tmp_path, pub, json.dumps(doc), "entries[0].inclusion.hashes[0]")
    doc = fresh(inclusion)
    doc["entries"][1]["canonical"] = doc["entries"][1]["canonical"].rstrip("=")
    refused(tmp_path, pub, json.dumps(doc), "entries[1].canonical")


def _float_paths(doc):
    latency = ("entries", INFERENCE, "entry", "latency_ms")
    contribution = ("entries", ATTRIBUTION, "entry", "top_features", 0, "contribution")
    criterion = ("entries", GUARDRAIL, "entry", "criteria", next(iter(doc["entries"][GUARDRAIL]["entry"]["criteria"])))
    return {"latency_ms": latency, "contribution": contribution, "criteria": criterion}


def _set(doc, where, value):
    obj = doc
    for key in where[:-1]:
        obj = obj[key]
    obj[where[-1]] = value


@pytest.mark.parametrize("field", ["latency_ms", "contribution", "criteria"])
@pytest.mark.parametrize("bad", ["10**400", "-10**400", "NaN", "Infinity", "1e400", "-1e999"])
def test_out_of_range_numbers_in_float_fields_are_input_errors(tmp_path, pub, inclusion, field, bad):
    doc = fresh(inclusion)
    where = _float_paths(doc)[field]
    _set(doc, where, "@@BAD@@")
    literal = str(-(10**400) if bad.startswith("-10") else 10**400) if "**" in bad else bad
    text = json.dumps(doc).replace('"@@BAD@@"', literal)
    refused(tmp_path, pub, text, json_path(where))


def test_a_float_field_in_a_document_parsed_elsewhere_is_still_range_checked(inclusion, keyring):
    # verify_proof on a document from another parser (10**400 is a Python int): an input
    # error naming the field, never an OverflowError.
    doc = fresh(inclusion)
    _set(doc, _float_paths(doc)["latency_ms"], 10**400)
    with pytest.raises(ProofFormatError) as caught:
        verify_proof(doc, keyring.verifiers())
    assert caught.value.path == "entries[1].entry.latency_ms"
    with pytest.raises(EntryError, match="latency_ms"):
        RowNormalizer(TABLES["model_inference"])({**{k: v for k, v in doc["entries"][1]["entry"].items()
                                                        if k not in ("seq", "table_name", "key_id")}})


def test_an_entry_not_in_canonical_form_is_refused(tmp_path, pub, inclusion):
    # The same instant, the same number: but what a proof shows is exactly the entry's JSON.
    doc = fresh(inclusion)
    doc["entries"][INFERENCE]["entry"]["ts"] = doc["entries"][INFERENCE]["entry"]["ts"].replace("Z", "+00:00")
    assert "not in canonical form" in refused(tmp_path, pub, json.dumps(doc), "entries[1].entry.ts")
    doc = fresh(inclusion)
    doc["entries"][INFERENCE]["entry"]["latency_ms"] = 12
    assert "stands for 12.0" in refused(tmp_path, pub, json.dumps(doc), "entries[1].entry.latency_ms")


def test_duplicate_keys_and_a_repeated_signature_are_refused(tmp_path, pub, inclusion):
    text = json.dumps(inclusion)
    text = text.replace('"seq": 5,', '"seq": 5, "seq": 5,', 1)
    assert "duplicate key 'seq'" in refused(tmp_path, pub, text, "entries[1].seq")
    doc = fresh(inclusion)
    signature_line = doc["checkpoint"].rstrip("\n").rsplit("\n", 1)[1]
    doc["checkpoint"] += signature_line + "\n"
    assert "repeats" in refused(tmp_path, pub, json.dumps(doc), "checkpoint")


def test_a_signature_from_an_untrusted_key_cannot_ride_along(tmp_path, pub, inclusion):
    from ledger.note import Signature

    doc = fresh(inclusion)
    stranger = Signer.generate("witness")
    text = doc["checkpoint"][: doc["checkpoint"].rindex("\n\n") + 1]
    doc["checkpoint"] += Signature(stranger.name, stranger.key_id, stranger.sign(text.encode())).line()
    assert "not a trusted key" in refused(tmp_path, pub, json.dumps(doc), "checkpoint")


# ------------------------------------------------------------------------------ results


def test_an_inclusion_proof_that_holds_names_the_tree_size_and_root(tmp_path, pub, inclusion):
    file = tmp_path / "p.json"
    file.write_text(json.dumps(inclusion))
    size, root = inclusion["checkpoint"].split("\n")[1:3]
    result = run("verify-proof", file, "--public-key", pub)
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("proof holds: 4 entries (seq 4, 5, 6, 7)") and f"size {size} with root {root}" in last
    doc = json.loads(run("verify-proof", file, "--public-key", pub, "--json").output)
    assert doc["ok"] and doc["checkpoint"]["size"] == int(size) and doc["checkpoint"]["root"] == root
    assert f"size {size} with root {root}" in doc["summary"]


def test_a_consistency_proof_that_holds_names_both_sizes_and_roots(tmp_path, pub, consistency):
    file = tmp_path / "c.json"
    file.write_text(json.dumps(consistency))
    old = consistency["old_checkpoint"].split("\n")[1:3]
    new = consistency["new_checkpoint"].split("\n")[1:3]
    result = run("verify-proof", file, "--public-key", pub)
    assert result.exit_code == 0, result.output
    assert (f"proof holds: the tree of size {old[0]} (root {old[1]}) is a prefix of the tree of size {new[0]} (root {new[1]})"
            in result.output)
    doc = json.loads(run("verify-proof", file, "--public-key", pub, "--json").output)
    assert (doc["old_checkpoint"]["size"], doc["old_checkpoint"]["root"]) == (int(old[0]), old[1])
    assert (doc["checkpoint"]["size"], doc["checkpoint"]["root"]) == (int(new[0]), new[1])


def test_a_well_formed_proof_that_does_not_verify_exits_1(tmp_path, pub, inclusion):
    doc = fresh(inclusion)
    doc["entries"][INFERENCE]["entry"]["decision"] = "something else"
    file = tmp_path / "p.json"
    file.write_text(json.dumps(doc))
    result = run("verify-proof", file, "--public-key", pub)
    assert result.exit_code == 1 and "does not encode to the proven bytes" in result.output
    assert result.output.strip().endswith("proof does NOT hold")


def test_parse_proof_names_the_path_of_what_strict_json_refuses():
    with pytest.raises(ProofFormatError) as caught:
        parse_proof('{"entries": [{"entry": {"latency_ms": 1e400}}]}')
    assert caught.value.path == "entries[0].entry.latency_ms" and "overflows" in str(caught.value)


# ------------------------------------------------------------------------------ proving


def test_prove_reads_one_snapshot_for_every_entry(template, monkeypatch):
    import ledger.proofs
    import ledger.read

    opened = []
    real = ledger.read.snapshot

    def counting(path):
        opened.append(path)
        return real(path)

    monkeypatch.setattr(ledger.proofs, "snapshot", counting)
    prove_entries(template, SEQS)
    assert len(opened) == 1
    monkeypatch.setattr(ledger.read, "snapshot", counting)
    opened.clear()
    request_id = prove_entries(template, [5])["entries"][0]["entry"]["request_id"]
    opened.clear()
    result = run("prove", template, "--request-id", request_id)
    assert result.exit_code == 0, result.output
    assert len(opened) == 1 and [e["seq"] for e in json.loads(result.output)["entries"]] == SEQS


def test_prove_refuses_a_tree_whose_root_is_not_the_signed_one(tmp_path, template):
    path = tmp_path / "ledger"
    shutil.copytree(template, path)
    size = stored_notes(Layout(path))[-1][0]
    note = checkpoint_path(Layout(path), size)
    lines = note.read_text().split("\n")
    root = bytearray(base64.b64decode(lines[2]))
    root[0] ^= 1
    lines[2] = b64(bytes(root))
    note.write_text("\n".join(lines))
    result = run("prove", path, "--seq", 5)
    assert result.exit_code == 1, result.output
    assert f"the stored tree's root at size {size}" in result.output and "not the root the checkpoint signs" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("args", [("--seq", -1), ("--seq", 10**30), ("--consistency", 5, 3), ("--consistency", 0, 5),
                                  ("--seq", 5, "--checkpoint-size", 7)])
def test_prove_refuses_what_it_cannot_prove_as_a_usage_error(template, args):
    result = run("prove", template, *args)
    assert result.exit_code == 2 and result.output.startswith("error: "), result.output
