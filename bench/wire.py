"""The line protocol spoken by the bench target servers, and the deterministic data they check.

Every tunnel starts with one ASCII header line from the client, then payload:

- echo server: no header; every byte comes back.
- `SINK <nbytes> compare\\n` + payload: the sink checks every byte against the pattern stream at
  its offset (byte-exact, a few GB/s) and answers `OK <nbytes> compare\\n`, or
  `BAD <received> <first_bad_offset>\\n`.
- `SINK <nbytes> sha256\\n` + payload: the sink hashes what it received and answers
  `OK <received> <sha256 hex>\\n`; the client compares with the digest it expects.
- `RATE <warmup_ms> <window_ms>\\n` + payload (sent until the answer comes): the sink measures the
  rate at which payload arrives between two arrivals inside the window that starts `warmup_ms`
  after the first payload byte, and answers `RATE <bytes> <seconds>\\n`, then closes.
- source server: `SOURCE <nbytes>\\n`; it streams `nbytes` of the pattern stream, then closes.

The pattern stream is PATTERN repeated; PATTERN is 1 MiB of seeded pseudo-random bytes, so no
compression or coincidence can make corrupted data look right.
"""

from __future__ import annotations

import functools
import hashlib
import random

PATTERN_SIZE = 1 << 20
PATTERN = random.Random(6).randbytes(PATTERN_SIZE)
# PATTERN twice: any window of up to PATTERN_SIZE bytes starting inside PATTERN is one slice.
DOUBLE_PATTERN = PATTERN + PATTERN
MAX_HEADER = 128
INTEGRITY_MODES = ("compare", "sha256")


def first_mismatch(offset: int, data: bytes | bytearray | memoryview) -> int | None:
    """Index in `data` of its first byte that differs from the pattern stream at `offset`, or None."""
    view = memoryview(data)
    done, total = 0, len(view)
    while done < total:
        start = (offset + done) % PATTERN_SIZE
        size = min(total - done, PATTERN_SIZE)
        piece = view[done : done + size]
        # startswith at an offset is one memcmp with no copy (~30 GB/s here); memoryview == bytes
        # compares item by item (~0.5 GB/s), and slicing DOUBLE_PATTERN would copy.
        if not DOUBLE_PATTERN.startswith(piece, start):
            expected = DOUBLE_PATTERN[start : start + size]
            return done + next(i for i in range(size) if piece[i] != expected[i])
        done += size
    return None


@functools.lru_cache(maxsize=8)
def pattern_sha256(nbytes: int) -> str:
    """SHA-256 hex digest of the first `nbytes` of the pattern stream."""
    digest = hashlib.sha256()
    whole, rest = divmod(nbytes, PATTERN_SIZE)
    for _ in range(whole):
        digest.update(PATTERN)
    digest.update(PATTERN[:rest])
    return digest.hexdigest()


def sink_header(nbytes: int, mode: str) -> bytes:
    if mode not in INTEGRITY_MODES:
        raise ValueError(f"integrity mode {mode!r}: expected one of {', '.join(INTEGRITY_MODES)}")
    return f"SINK {nbytes} {mode}\n".encode()


def rate_header(warmup_s: float, window_s: float) -> bytes:
    return f"RATE {round(warmup_s * 1000)} {round(window_s * 1000)}\n".encode()


def source_header(nbytes: int) -> bytes:
    return f"SOURCE {nbytes}\n".encode()
