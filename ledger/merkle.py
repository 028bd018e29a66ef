"""RFC 6962 / RFC 9162 Merkle tree hashing, proof generation and proof verification.

Hashing (RFC 6962 section 2.1, SHA-256):

* leaf hash ``SHA-256(0x00 || data)``, interior node hash ``SHA-256(0x01 || left || right)``;
* the tree over ``n`` leaves splits at the largest power of two strictly below ``n``;
  odd leaves are never duplicated;
* the empty tree's root is ``SHA-256("")``.

Proof *generation* never rebuilds a tree. It is written against a tiny storage protocol,
:data:`HashAt`: ``hash_at(level, index)`` returns the hash of the *complete* subtree of
``2**level`` leaves that starts at leaf ``index * 2**level``. Complete subtree hashes never
change once they exist, so any store that keeps them (``ledger.tiles.TileStore`` on disk,
:class:`MemoryTree` here) can answer a root at any past size, an inclusion proof or a
consistency proof with O(log n) lookups.

Proof *verification* follows transparency-dev/merkle ``proof/verify.go`` (itself RFC 9162
section 2.1.3.2 and 2.1.4.2): the exact proof length is derived from the sizes first, so
every proof element is consumed and checked, and a failure raises a :class:`ProofError`
subclass that says what is wrong. Verification functions return ``None`` on success; they
never answer with a bare boolean.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from .hashing import node_hashes

__all__ = [
    "HASH_SIZE",
    "EMPTY_ROOT",
    "MAX_TREE_SIZE",
    "HashAt",
    "ProofError",
    "MalformedProofError",
    "ProofLengthError",
    "RootMismatchError",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "root_at",
    "inclusion_proof",
    "consistency_proof",
    "verify_inclusion",
    "verify_consistency",
    "root_from_inclusion_proof",
    "InclusionProof",
    "ConsistencyProof",
    "MemoryTree",
    "hash_pairs",
    "pack_hashes",
    "root_from_packed",
    "aligned_subtrees",
    "perfect_root",
    "CompactRange",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
#: Sizes and indices are uint64 in RFC 9162 and every interoperable implementation.
MAX_TREE_SIZE = (1 << 64) - 1

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_sha256 = hashlib.sha256

#: ``hash_at(level, index)``: hash of the complete subtree covering leaves
#: ``[index * 2**level, (index + 1) * 2**level)``. Level 0 returns leaf hashes.
HashAt = Callable[[int, int], bytes]


# --------------------------------------------------------------------------- errors


class ProofError(ValueError):
    """A proof did not verify. Subclasses say why; the message says where."""


class MalformedProofError(ProofError):
    """The inputs are not well formed: a hash of the wrong length, an index outside the
    tree, sizes in the wrong order, a proof asked of an empty tree."""


class ProofLengthError(ProofError):
    """The proof has the wrong number of hashes for the claimed index and sizes (an element
    was added or removed, or the sizes/index were changed)."""

    def __init__(self, got: int, want: int, what: str = "proof") -> None:
        super().__init__(f"wrong {what} size: got {got} hashes, want {want}")
        self.got = got
        self.want = want


class RootMismatchError(ProofError):
    """The root recomputed from the proof is not the root that was claimed."""

    def __init__(self, which: str, expected: bytes, calculated: bytes) -> None:
        super().__init__(
            f"{which} mismatch: calculated {calculated.hex()}, expected {expected.hex()}"
        )
        self.which = which
        self.expected = expected
        self.calculated = calculated


# --------------------------------------------------------------------------- hashing


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: ``SHA-256(0x00 || data)``."""
    return _sha256(_LEAF_PREFIX + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: ``SHA-256(0x01 || left || right)``."""
    if len(left) != HASH_SIZE or len(right) != HASH_SIZE:
        raise ValueError("node_hash takes two 32-byte hashes")
    return _sha256(_NODE_PREFIX + left + right).digest()


def hash_pairs(packed: bytes | bytearray | memoryview) -> bytes:
    """Hash adjacent pairs of a packed sequence of 32-byte hashes into their parents.

    ``packed`` must hold an even number of hashes; the result holds half as many. This is
    the inner loop of tree building (ledger/hashing.py: in C when the extension is built)."""
    if len(packed) % (2 * HASH_SIZE):
        raise ValueError("hash_pairs needs an even number of 32-byte hashes")
    return node_hashes(bytes(packed))


def pack_hashes(hashes: Sequence[bytes], what: str = "hash") -> bytes:
    """Concatenate 32-byte hashes, refusing any element of another length."""
    for i, h in enumerate(hashes):
        if len(h) != HASH_SIZE:
            raise ValueError(f"{what} {i} is {len(h)} bytes, want {HASH_SIZE}")
    return b"".join(hashes)


def root_from_packed(packed: bytes | bytearray | memoryview) -> bytes:
    """Merkle tree hash of a packed sequence of leaf hashes, bottom-up.

    Each level hashes adjacent pairs and promotes an odd last node unchanged to the next
    level. That is the same tree as the RFC's "split at the largest power of two below n"
    recursion: the promoted node is the right-most complete subtree, which the recursion
    also pairs last."""
    if len(packed) % HASH_SIZE:
        raise ValueError("packed hashes must be a multiple of 32 bytes")
    level = bytes(packed)
    if not level:
        return EMPTY_ROOT
    while len(level) > HASH_SIZE:
        count = len(level) // HASH_SIZE
        even = (count // 2) * 2 * HASH_SIZE
        level = hash_pairs(level[:even]) + level[even:]
    return level


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash over the given leaf hashes (``EMPTY_ROOT`` for none)."""
    return root_from_packed(pack_hashes(hashes, "leaf hash"))


# --------------------------------------------------------------------------- sizes


def _check_size(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedProofError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0 or value > MAX_TREE_SIZE:
        raise MalformedProofError(f"{name} {value} is outside [0, 2**64)")
    return value


def _check_hash(value: Any, name: str) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise MalformedProofError(f"{name} must be bytes, got {type(value).__name__}")
    value = bytes(value)
    if len(value) != HASH_SIZE:
        raise MalformedProofError(f"{name} is {len(value)} bytes, want {HASH_SIZE}")
    return value


def _check_proof(proof: Sequence[bytes]) -> list[bytes]:
    if isinstance(proof, (bytes, bytearray, memoryview, str)):
        raise MalformedProofError("proof must be a sequence of hashes, not one byte string")
    return [_check_hash(p, f"proof[{i}]") for i, p in enumerate(proof)]


def _largest_pow2_below(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


# --------------------------------------------------------------------------- generation


def _range_hash(start: int, end: int, hash_at: HashAt) -> bytes:
    """Merkle tree hash of leaves ``[start, end)`` for a range the RFC recursion produces
    (``start`` a multiple of a power of two at least ``end - start``), from complete
    subtree hashes only: O(log n) ``hash_at`` calls."""
    if start >= end:
        raise ValueError(f"empty range [{start}, {end})")
    nodes: list[bytes] = []
    pos = start
    while pos < end:
        level = (end - pos).bit_length() - 1
        if pos:
            level = min(level, (pos & -pos).bit_length() - 1)
        nodes.append(hash_at(level, pos >> level))
        pos += 1 << level
    h = nodes[-1]
    for left in reversed(nodes[:-1]):
        h = node_hash(left, h)
    return h


def root_at(size: int, hash_at: HashAt) -> bytes:
    """Root of the tree of the first ``size`` leaves, from stored complete subtrees.

    The complete subtrees are those of the binary decomposition of ``size``, combined from
    the right: for ``size = 2**a + 2**b + 2**c`` (``a > b > c``) the root is
    ``node(h_a, node(h_b, h_c))``."""
    _check_size(size, "size")
    if size == 0:
        return EMPTY_ROOT
    return _range_hash(0, size, hash_at)


def inclusion_proof(index: int, size: int, hash_at: HashAt) -> "InclusionProof":
    """RFC 9162 ``PATH(index, D[size])`` (section 2.1.3.1), ordered from the leaf upwards.

    At most one element is the hash of an incomplete subtree (the first right sibling met
    going down); every other element is one stored complete subtree hash."""
    _check_size(index, "index")
    _check_size(size, "size")
    if index >= size:
        raise MalformedProofError(f"index {index} is not in a tree of size {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _largest_pow2_below(end - start)
        if index < start + k:
            path.append(_range_hash(start + k, end, hash_at))
            end = start + k
        else:
            path.append(_range_hash(start, start + k, hash_at))
            start += k
    path.reverse()
    return InclusionProof(index=index, size=size, hashes=tuple(path))


def consistency_proof(size1: int, size2: int, hash_at: HashAt) -> "ConsistencyProof":
    """RFC 9162 ``PROOF(size1, D[size2])`` (section 2.1.4.1).

    ``0 < size1 <= size2``; the proof is empty when the sizes are equal. A proof from the
    empty tree is refused: every tree extends the empty tree, there is nothing to prove."""
    _check_size(size1, "size1")
    _check_size(size2, "size2")
    if size1 > size2:
        raise MalformedProofError(f"size1 {size1} > size2 {size2}")
    if size1 == 0:
        raise MalformedProofError("a consistency proof from the empty tree is meaningless")
    path: list[bytes] = []
    start, end, whole = 0, size2, True
    while size1 != end:
        k = _largest_pow2_below(end - start)
        if size1 <= start + k:
            path.append(_range_hash(start + k, end, hash_at))
            end = start + k
        else:
            path.append(_range_hash(start, start + k, hash_at))
            start += k
            whole = False
    if not whole:
        path.append(_range_hash(start, end, hash_at))
    path.reverse()
    return ConsistencyProof(size1=size1, size2=size2, hashes=tuple(path))


# --------------------------------------------------------------------------- verification


def _decomp_inclusion(index: int, size: int) -> tuple[int, int]:
    """Split an inclusion proof's length into (inner, border): the hashes below the point
    where the paths to ``index`` and ``size - 1`` part, and the left siblings above it."""
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    return inner, border


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        if (index >> i) & 1 == 0:
            seed = _sha256(_NODE_PREFIX + seed + h).digest()
        else:
            seed = _sha256(_NODE_PREFIX + h + seed).digest()
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        if (index >> i) & 1 == 1:
            seed = _sha256(_NODE_PREFIX + h + seed).digest()
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for h in proof:
        seed = _sha256(_NODE_PREFIX + h + seed).digest()
    return seed


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """The root a valid inclusion proof implies (it still has to be compared to a trusted
    root: prefer :func:`verify_inclusion`)."""
    _check_size(index, "index")
    _check_size(size, "size")
    if index >= size:
        raise MalformedProofError(f"index {index} is not in a tree of size {size}")
    leaf = _check_hash(leaf_hash, "leaf hash")
    hashes = _check_proof(proof)
    inner, border = _decomp_inclusion(index, size)
    if len(hashes) != inner + border:
        raise ProofLengthError(len(hashes), inner + border, "inclusion proof")
    res = _chain_inner(leaf, hashes[:inner], index)
    return _chain_border_right(res, hashes[inner:])


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that the leaf with hash ``leaf_hash`` sits at ``index`` in the tree of
    ``size`` leaves whose root is ``root``. Raises a :class:`ProofError` subclass.

    ``leaf_hash`` is the RFC 6962 *leaf hash* (``0x00`` prefixed), so an interior node hash
    handed in as a leaf cannot verify: domain separation."""
    expected = _check_hash(root, "root")
    calculated = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if calculated != expected:
        raise RootMismatchError("root", expected, calculated)


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree of ``size1`` leaves with root ``root1`` is a prefix of the tree
    of ``size2`` leaves with root ``root2``. Raises a :class:`ProofError` subclass.

    Refused outright: ``size1 > size2``; ``size1 == 0`` (a proof from the empty tree proves
    nothing; compare against ``EMPTY_ROOT`` instead); equal sizes with a non-empty proof;
    any hash that is not 32 bytes; a proof of the wrong length. Both roots are recomputed
    from the proof, so every element is used."""
    _check_size(size1, "size1")
    _check_size(size2, "size2")
    r1 = _check_hash(root1, "root1")
    r2 = _check_hash(root2, "root2")
    hashes = _check_proof(proof)
    if size2 < size1:
        raise MalformedProofError(f"size2 {size2} < size1 {size1}: trees do not shrink")
    if size1 == 0:
        raise MalformedProofError("a consistency proof from the empty tree is meaningless")
    if size1 == size2:
        if hashes:
            raise ProofLengthError(len(hashes), 0, "consistency proof (equal sizes)")
        if r1 != r2:
            raise RootMismatchError("root2 (equal sizes)", r1, r2)
        return
    inner, border = _decomp_inclusion(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1
    inner -= shift  # shift < inner because size1 < size2
    # The proof starts with the hash of the complete subtree of 2**shift leaves ending at
    # size1, unless size1 is itself that power of two (then that hash is root1).
    first = 0 if size1 == 1 << shift else 1
    want = first + inner + border
    if len(hashes) != want:
        raise ProofLengthError(len(hashes), want, "consistency proof")
    seed = r1 if first == 0 else hashes[0]
    rest = hashes[first:]

    mask = (size1 - 1) >> shift
    hash1 = _chain_border_right(_chain_inner_right(seed, rest[:inner], mask), rest[inner:])
    if hash1 != r1:
        raise RootMismatchError("root1", r1, hash1)
    hash2 = _chain_border_right(_chain_inner(seed, rest[:inner], mask), rest[inner:])
    if hash2 != r2:
        raise RootMismatchError("root2", r2, hash2)


# --------------------------------------------------------------------------- proof objects


def _b64(h: bytes) -> str:
    return base64.b64encode(h).decode("ascii")


def _unb64_hash(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedProofError(f"{name} must be a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedProofError(f"{name} is not valid base64: {exc}") from None
    if _b64(raw) != value:
        raise MalformedProofError(f"{name} is not canonical base64")
    return _check_hash(raw, name)


def _json_int(obj: Mapping[str, Any], key: str) -> int:
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedProofError(f"{key} must be an integer")
    return _check_size(value, key)


def _json_hashes(obj: Mapping[str, Any]) -> tuple[bytes, ...]:
    hashes = obj["hashes"]
    if not isinstance(hashes, list):
        raise MalformedProofError("hashes must be a list")
    return tuple(_unb64_hash(h, f"hashes[{i}]") for i, h in enumerate(hashes))


def _json_keys(obj: Any, keys: set[str], kind: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise MalformedProofError(f"{kind} must be a JSON object")
    if set(obj) != keys:
        raise MalformedProofError(f"{kind} keys are {sorted(obj)}, want {sorted(keys)}")
    return obj


@dataclass(frozen=True)
class InclusionProof:
    """An inclusion proof with the index and tree size it is for.

    JSON form (:meth:`to_json`): ``{"index": int, "size": int, "hashes": [base64, ...]}``,
    standard base64 as in C2SP checkpoints and the transparency-dev test vectors."""

    index: int
    size: int
    hashes: tuple[bytes, ...]

    def verify(self, leaf_hash: bytes, root: bytes) -> None:
        verify_inclusion(leaf_hash, self.index, self.size, self.hashes, root)

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "size": self.size, "hashes": [_b64(h) for h in self.hashes]}

    @classmethod
    def from_json(cls, obj: Any) -> "InclusionProof":
        o = _json_keys(obj, {"index", "size", "hashes"}, "inclusion proof")
        return cls(index=_json_int(o, "index"), size=_json_int(o, "size"), hashes=_json_hashes(o))


@dataclass(frozen=True)
class ConsistencyProof:
    """A consistency proof with the two sizes it is for.

    JSON form: ``{"size1": int, "size2": int, "hashes": [base64, ...]}``."""

    size1: int
    size2: int
    hashes: tuple[bytes, ...]

    def verify(self, root1: bytes, root2: bytes) -> None:
        verify_consistency(self.size1, self.size2, self.hashes, root1, root2)

    def to_json(self) -> dict[str, Any]:
        return {"size1": self.size1, "size2": self.size2, "hashes": [_b64(h) for h in self.hashes]}

    @classmethod
    def from_json(cls, obj: Any) -> "ConsistencyProof":
        o = _json_keys(obj, {"size1", "size2", "hashes"}, "consistency proof")
        return cls(size1=_json_int(o, "size1"), size2=_json_int(o, "size2"), hashes=_json_hashes(o))


# --------------------------------------------------------------------------- in memory


class MemoryTree:
    """An append-only tree kept in memory as its levels of complete subtree hashes.

    ``levels[h][i]`` is :data:`HashAt` ``(h, i)``. Useful for small trees, for a segment
    being built before it is persisted, and as the reference the tile store is tested
    against."""

    def __init__(self, leaf_hashes: Sequence[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        self.extend(leaf_hashes)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def append(self, leaf_hash: bytes) -> None:
        h = _check_hash(leaf_hash, "leaf hash")
        levels = self._levels
        levels[0].append(h)
        level = 0
        while len(levels[level]) % 2 == 0:
            if level + 1 == len(levels):
                levels.append([])
            row = levels[level]
            levels[level + 1].append(_sha256(_NODE_PREFIX + row[-2] + row[-1]).digest())
            level += 1

    def extend(self, leaf_hashes: Sequence[bytes]) -> None:
        for h in leaf_hashes:
            self.append(h)

    def hash_at(self, level: int, index: int) -> bytes:
        if level < 0 or level >= len(self._levels) or not 0 <= index < len(self._levels[level]):
            raise IndexError(f"no complete subtree at level {level}, index {index}")
        return self._levels[level][index]

    def root(self, size: int | None = None) -> bytes:
        return root_at(self._size_arg(size), self.hash_at)

    def inclusion_proof(self, index: int, size: int | None = None) -> InclusionProof:
        return inclusion_proof(index, self._size_arg(size), self.hash_at)

    def consistency_proof(self, size1: int, size2: int | None = None) -> ConsistencyProof:
        return consistency_proof(size1, self._size_arg(size2), self.hash_at)

    def _size_arg(self, size: int | None) -> int:
        if size is None:
            return self.size
        _check_size(size, "size")
        if size > self.size:
            raise ValueError(f"size {size} is beyond the tree's size {self.size}")
        return size


# --------------------------------------------------------------------------- compact ranges


def aligned_subtrees(begin: int, end: int) -> list[tuple[int, int]]:
    """The maximal perfect subtrees covering leaves [begin, end), left to right, as
    (level, first leaf): each starts at a multiple of its own size."""
    out = []
    while begin < end:
        level = (begin & -begin).bit_length() - 1 if begin else (end - begin).bit_length() - 1
        while begin + (1 << level) > end:
            level -= 1
        out.append((level, begin))
        begin += 1 << level
    return out


def perfect_root(packed: bytes) -> bytes:
    """Root of a perfect subtree, from its 2**k packed leaf hashes."""
    count = len(packed) // HASH_SIZE
    if count == 0 or count & (count - 1) or len(packed) % HASH_SIZE:
        raise ValueError("a perfect subtree has a power-of-two number of 32-byte leaf hashes")
    while len(packed) > HASH_SIZE:
        packed = hash_pairs(packed)
    return packed


class CompactRange:
    """The tree over leaves [0, size) kept as its perfect subtrees (one per set bit of
    size): subtrees are appended left to right, and the root at the current size is
    always available without the leaves."""

    def __init__(self) -> None:
        self.size = 0
        self._nodes: list[tuple[int, bytes]] = []

    def append_subtree(self, level: int, digest: bytes) -> None:
        if self.size % (1 << level):
            raise ValueError(f"a level-{level} subtree cannot start at leaf {self.size}")
        self._nodes.append((level, digest))
        self.size += 1 << level
        while len(self._nodes) > 1 and self._nodes[-2][0] == self._nodes[-1][0]:
            (lvl, left), (_, right) = self._nodes[-2], self._nodes[-1]
            self._nodes[-2:] = [(lvl + 1, node_hash(left, right))]

    def root(self) -> bytes:
        if not self._nodes:
            return EMPTY_ROOT
        digest = self._nodes[-1][1]
        for _, left in reversed(self._nodes[:-1]):
            digest = node_hash(left, digest)
        return digest
