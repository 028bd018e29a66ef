"""The C hashing loops and the hashlib fallback give identical results."""

import hashlib
import hmac

import pyarrow as pa
import pytest

from ledger import hashing
from ledger.chain import ChainMac
from ledger.merkle import leaf_hash
from ledger.encoding import encode_table
from ledger.normalize import rows_to_arrow
from ledger.schema import TABLES
from mrm.synthetic import stream

from .test_encoding import dictionary_encoded

pytestmark = pytest.mark.skipif(not hashing.NATIVE, reason="the C extension is not built here")

LEDGER_ID = bytes(range(16))


@pytest.mark.parametrize("table", sorted(TABLES))
def test_leaf_hashes_agree(table):
    from ledger.normalize import RowNormalizer
    norm = RowNormalizer(TABLES[table])
    rows = [dict(norm({**r, "actor": "a"}), seq=i, table_name=table, key_id="k", mac=bytes(32)) for i, (t, r) in enumerate(stream(40, seed=3)) if t == table]
    if not rows:
        pytest.skip("no rows")
    arrow = rows_to_arrow(TABLES[table], rows, include_assigned=True)
    chunked = pa.concat_tables([arrow.slice(0, 2), arrow.slice(2, 0), arrow.slice(2)])  # as Parquet row groups read
    # Verification reads low-cardinality strings as dictionaries: the same bytes must come out.
    dictionary = dictionary_encoded(arrow)
    for part, plain in ((arrow, arrow), (arrow.slice(1), arrow.slice(1)), (chunked, arrow),
                        (dictionary, arrow), (dictionary.slice(1), arrow.slice(1))):
        encoded = encode_table(TABLES[table], LEDGER_ID, plain).to_pylist()
        assert encode_table(TABLES[table], LEDGER_ID, part).to_pylist() == encoded
        expected = b"".join(leaf_hash(c) for c in encoded)
        assert hashing.table_leaf_hashes(TABLES[table], LEDGER_ID, part, native=True) == expected
        assert hashing.table_leaf_hashes(TABLES[table], LEDGER_ID, part, native=False) == expected


def test_macs_and_nodes_agree():
    key = bytes(range(40, 120))  # longer than a block: hashed first, as RFC 2104 says
    leaves = b"".join(hashlib.sha256(bytes([i])).digest() for i in range(9))
    prev = bytes(32)
    chain = hashing.mac_chain(key, prev, leaves, native=True)
    assert chain == hashing.mac_chain(key, prev, leaves, native=False)
    assert chain[:32] == hmac.new(key, prev + leaves[:32], hashlib.sha256).digest()
    prevs = prev + chain[:-32]
    assert hashing.mac_links(key, prevs, leaves, native=True) == chain == hashing.mac_links(key, prevs, leaves, native=False)
    assert hashing.node_hashes(leaves, native=True) == hashing.node_hashes(leaves, native=False)
    assert len(hashing.node_hashes(leaves)) == 4 * 32
    assert hashing.node_hashes(leaves)[:32] == hashlib.sha256(b"\x01" + leaves[:64]).digest()
    assert ChainMac(key)(prev, leaves[:32]) == chain[:32]


def test_pure_python_fallback_writes_and_verifies_the_same_ledger(tmp_path):
    """Without the C extension, a ledger written and verified in pure Python has the same
    leaves as with it: both verifiers accept it and agree on the checkpoint root."""
    import os
    import subprocess
    import sys

    script = (
        "import sys\nfrom ledger import Keyring, Ledger, hashing\nfrom ledger.public import verify_public\n"
        "from ledger.verify import verify_ledger\nfrom mrm.synthetic import stream\n"
        "from ledger.note import Signer\nfrom cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey\n"
        "k = Keyring.from_key('k1', bytes(range(32))).with_signer(Signer('s', Ed25519PrivateKey.from_private_bytes(bytes(32))))\n"
        "p = sys.argv[1]\n"
        "if sys.argv[2] == 'write':\n"
        "    with Ledger.create(p, k) as l:\n"
        "        [l.log(t, r) for t, r in stream(30, seed=2)]\n"
        "r1, r2 = verify_ledger(p, k), verify_public(p, k.verifiers())\n"
        "print(hashing.NATIVE, r1.ok, r2.ok, r2.checkpoint['root'])\n"
    )
    pure = dict(os.environ, MRM_LEDGER_PURE_PYTHON="1")
    written = subprocess.run([sys.executable, "-c", script, str(tmp_path / "l"), "write"], env=pure, capture_output=True, text=True, check=True)
    native = subprocess.run([sys.executable, "-c", script, str(tmp_path / "l"), "read"], capture_output=True, text=True, check=True)
    native_flag, *rest = native.stdout.split()
    pure_flag, *pure_rest = written.stdout.split()
    assert (pure_flag, native_flag) == ("False", "True")
    assert pure_rest[:2] == rest[:2] == ["True", "True"] and pure_rest[2] == rest[2]
