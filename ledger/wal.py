"""The write-ahead log: entries are durable here before they are sealed into Parquet.

A frame is ``"MRMW" || u32 payload length || u32 CRC-32 of payload || payload`` with::

    payload = u8 version | u8 flags | u64 first_seq | u64 last_seq | 32-byte last MAC
              | u8 length || key id in effect after this frame
              | u16 table count | (u8 length || table name | u32 length || Arrow IPC stream)*

Flag bit 0 says more frames of the same commit follow; a commit is only kept whole, so a
crash in the middle of a large batch leaves none of it. The CRC finds torn writes; integrity
against tampering comes from the MACs inside the entries, not from the CRC.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator

import pyarrow as pa

MAGIC = b"MRMW"
_HEADER = struct.Struct(">4sII")
_FIXED = struct.Struct(">BBQQ32s")
VERSION = 1
FLAG_MORE = 1


@dataclass
class Frame:
    first_seq: int
    last_seq: int
    last_mac: bytes
    next_key_id: str
    more: bool
    start: int  # byte offset of the frame in the file
    end: int  # byte offset just past it
    payload: bytes = field(repr=False, default=b"")

    def tables(self) -> dict[str, pa.Table]:
        """Decode the Arrow payload (only when the rows are needed)."""
        _, _, tables_at = _parse_fixed(self.payload)
        out = {}
        view = memoryview(self.payload)
        pos = tables_at
        (count,) = struct.unpack_from(">H", view, pos)
        pos += 2
        for _ in range(count):
            n = view[pos]
            name = bytes(view[pos + 1 : pos + 1 + n]).decode("utf-8")
            pos += 1 + n
            (size,) = struct.unpack_from(">I", view, pos)
            pos += 4
            with pa.ipc.open_stream(pa.py_buffer(view[pos : pos + size])) as reader:
                out[name] = reader.read_all()
            pos += size
        return out


def encode_frame(first_seq: int, last_seq: int, last_mac: bytes, next_key_id: str, tables: dict[str, pa.Table], *, more: bool = False) -> bytes:
    key = next_key_id.encode("utf-8")
    parts = [
        _FIXED.pack(VERSION, FLAG_MORE if more else 0, first_seq, last_seq, last_mac),
        bytes([len(key)]),
        key,
        struct.pack(">H", len(tables)),
    ]
    for name, table in tables.items():
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        ipc = sink.getvalue()
        encoded = name.encode("utf-8")
        parts += [bytes([len(encoded)]), encoded, struct.pack(">I", ipc.size), ipc.to_pybytes()]
    payload = b"".join(parts)
    return _HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def _parse_fixed(payload: bytes) -> tuple[tuple, str, int]:
    fixed = _FIXED.unpack_from(payload, 0)
    pos = _FIXED.size
    n = payload[pos]
    key_id = payload[pos + 1 : pos + 1 + n].decode("utf-8")
    return fixed, key_id, pos + 1 + n


@dataclass
class ScanResult:
    frames: list[Frame]  # complete commits only
    valid_end: int  # offset just past the last complete commit
    file_size: int
    problem: str | None  # why the bytes after valid_end were not accepted, if there are any


def scan(f: BinaryIO, start: int = 0, *, keep_payload: bool = False) -> ScanResult:
    """Read frames from `start`; stop at the first torn or foreign byte."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(start)
    frames: list[Frame] = []
    committed: list[Frame] = []
    valid_end = pos = start
    problem = None
    while pos < size:
        header = f.read(_HEADER.size)
        if len(header) < _HEADER.size:
            problem = f"torn frame header at byte {pos}"
            break
        magic, length, crc = _HEADER.unpack(header)
        if magic != MAGIC:
            problem = f"no frame marker at byte {pos}"
            break
        payload = f.read(length)
        if len(payload) < length:
            problem = f"torn frame at byte {pos} ({len(payload)} of {length} bytes)"
            break
        if zlib.crc32(payload) != crc:
            problem = f"frame at byte {pos} fails its CRC"
            break
        try:
            (version, flags, first, last, mac), key_id, _ = _parse_fixed(payload)
        except (struct.error, IndexError, UnicodeDecodeError):
            problem = f"unreadable frame at byte {pos}"
            break
        if version != VERSION:
            problem = f"frame at byte {pos} has unknown version {version}"
            break
        end = pos + _HEADER.size + length
        frames.append(Frame(first, last, mac, key_id, bool(flags & FLAG_MORE), pos, end, payload if keep_payload else b""))
        pos = end
        if not flags & FLAG_MORE:
            committed.extend(frames)
            frames = []
            valid_end = pos
    if frames and problem is None:
        problem = f"incomplete commit at byte {frames[0].start}"
    return ScanResult(committed, valid_end, size, problem)


def iter_tables(path: str | os.PathLike[str]) -> Iterator[tuple[Frame, dict[str, pa.Table]]]:
    with open(path, "rb") as f:
        for frame in scan(f, keep_payload=True).frames:
            yield frame, frame.tables()
