"""An RFC 9162 Merkle tree over a store's positions, and its proofs.

Leaf ``i`` (0-based) is the event at position ``i + 1``; its leaf input is the event's
stored 32-byte chain hash. Hashes are RFC 9162 section 2.1.1's, with SHA-256::

    MTH({})       = SHA-256()
    leaf hash     = SHA-256(0x00 || leaf input)
    node hash     = SHA-256(0x01 || left || right)
    MTH(D[n])     = node(MTH(D[0:k]), MTH(D[k:n])), k the largest power of two < n

The tree keeps the hash of every complete, aligned subtree (one contiguous ``bytearray``
per level, 64 bytes per leaf in all), so a root, an inclusion proof (RFC 9162 2.1.3) or a
consistency proof (2.1.4) for any size up to the tree's is O(log n) hashes. The
verification functions are the RFC's iterative algorithms (2.1.3.2 and 2.1.4.2) and need
no tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf_input: bytes) -> bytes:
    """``SHA-256(0x00 || leaf input)``."""
    return hashlib.sha256(b"\x00" + leaf_input).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only Merkle tree of leaf hashes, with roots and proofs for any size."""

    def __init__(self) -> None:
        self._levels: list[bytearray] = [bytearray()]

    @property
    def size(self) -> int:
        """How many leaves the tree holds."""
        return len(self._levels[0]) // HASH_SIZE

    def append(self, leaf_input: bytes) -> None:
        """Add one leaf (its input: the event's 32-byte chain hash)."""
        self.append_hash(leaf_hash(leaf_input))

    def extend(self, leaf_inputs: Iterable[bytes]) -> None:
        """Add leaves in order."""
        for leaf_input in leaf_inputs:
            self.append_hash(hashlib.sha256(b"\x00" + leaf_input).digest())

    def append_hash(self, hashed: bytes) -> None:
        """Add one leaf by its leaf hash; complete every subtree it closes."""
        levels = self._levels
        levels[0] += hashed
        count = len(levels[0]) // HASH_SIZE
        level = 0
        while count % 2 == 0:
            below = levels[level]
            end = len(below)
            hashed = hashlib.sha256(
                b"\x01" + below[end - 2 * HASH_SIZE : end - HASH_SIZE] + hashed
            ).digest()
            level += 1
            if level == len(levels):
                levels.append(bytearray())
            levels[level] += hashed
            count //= 2

    def leaf(self, index: int) -> bytes:
        """The leaf hash at ``index`` (0-based)."""
        return self._complete(0, index)

    def _complete(self, level: int, index: int) -> bytes:
        start = index * HASH_SIZE
        return bytes(self._levels[level][start : start + HASH_SIZE])

    def _check(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is not between 0 and {self.size}")

    def _hash(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for a range of the RFC's recursion (every such range is aligned)."""
        n = hi - lo
        if n & (n - 1) == 0:  # a complete subtree: stored
            level = n.bit_length() - 1
            return self._complete(level, lo >> level)
        k = _split(n)
        return node_hash(self._hash(lo, lo + k), self._hash(lo + k, hi))

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (all by default)."""
        size = self.size if size is None else size
        self._check(size)
        return EMPTY_ROOT if size == 0 else self._hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]): the audit path of leaf ``index`` in the tree of ``size``."""
        size = self.size if size is None else size
        self._check(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf {index} is not in a tree of size {size}")
        path: list[bytes] = []
        lo, hi = 0, size
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                path.append(self._hash(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._hash(lo, lo + k))
                lo = lo + k
        path.reverse()
        return path

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        """PROOF(first, D[0:second]) (RFC 9162 2.1.4.1); empty when first is 0 or second."""
        second = self.size if second is None else second
        self._check(second)
        if not 0 <= first <= second:
            raise ValueError(f"size {first} is not between 0 and {second}")
        if first in (0, second):
            return []
        proof: list[bytes] = []
        lo, hi, m, whole = 0, second, first, True
        while m != hi - lo:
            k = _split(hi - lo)
            if m <= k:
                proof.append(self._hash(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._hash(lo, lo + k))
                lo, m, whole = lo + k, m - k, False
        if not whole:
            proof.append(self._hash(lo, hi))
        proof.reverse()
        return proof


def verify_inclusion(
    index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 2.1.3.2: does ``path`` prove leaf hash ``leaf`` at ``index`` under ``root``?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2: does ``proof`` show the tree of ``first`` is a prefix of ``second``?

    A tree of size 0 is a prefix of every tree (with an empty proof).
    """
    if not 0 <= first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof
    if not proof:
        return False
    nodes = list(proof)
    if first & (first - 1) == 0:
        nodes.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root
