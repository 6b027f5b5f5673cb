"""The files the cloud offers for download, with their detached Ed25519 signatures.

Rates, software and graphics (`/files/<name>` on the pbdlsp1* hosts) and the OTA package
(`/ota/update.bin` on pb-ota.redbend.com). Content is deterministic pseudo-random bytes from a
seed (`file_content`), so tests can recompute and hash it. Each file is signed once per size;
the `corrupt` copy has one byte flipped *after* signing, for the `corrupt_downloads` knob.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from proxy_lab.protocol.messages import DOWNLOAD_FILES, OTA_PATH, FileEntry, file_path, sign_file

MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024
_KEEP_SIZES = 4  # signed sets kept in memory, one per download size asked for


def file_content(name: str, size: int, seed: int = 0) -> bytes:
    """`size` deterministic pseudo-random bytes for the file `name` (SHAKE-256 of name and seed)."""
    if not 0 <= size <= MAX_DOWNLOAD_BYTES:
        raise ValueError(f"file size {size} is outside 0..{MAX_DOWNLOAD_BYTES} bytes")
    return hashlib.shake_256(f"proxy-lab file {name} seed {seed}".encode()).digest(size)


def flip_one_byte(data: bytes) -> bytes:
    """`data` with its middle byte inverted (a single-byte corruption); empty data stays empty."""
    if not data:
        return data
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]


@dataclass(frozen=True)
class SignedFile:
    name: str
    path: str
    data: bytes
    signature: bytes
    corrupt: bytes

    @property
    def entry(self) -> FileEntry:
        return FileEntry(self.name, len(self.data), hashlib.sha256(self.data).hexdigest())


def download_paths() -> list[str]:
    """Every path served by the download hosts and the OTA host (signatures excluded)."""
    return [file_path(n) for n in DOWNLOAD_FILES] + [OTA_PATH]


class FileStore:
    """Signed files by path, made on first use for each size and kept for a few sizes."""

    def __init__(self, key: Ed25519PrivateKey, seed: int = 0) -> None:
        self.key = key
        self.seed = seed
        self._sets: dict[int, dict[str, SignedFile]] = {}

    def files(self, size: int) -> dict[str, SignedFile]:
        found = self._sets.get(size)
        if found is None:
            found = {}
            for path in download_paths():
                name = path.rsplit("/", 1)[1]
                data = file_content(name, size, self.seed)
                found[path] = SignedFile(name, path, data, sign_file(self.key, data), flip_one_byte(data))
            while len(self._sets) >= _KEEP_SIZES:
                del self._sets[next(iter(self._sets))]
            self._sets[size] = found
        return found

    def index(self, size: int) -> list[FileEntry]:
        """The DownloadIndex entries: the rates, software and graphics files (not the OTA package)."""
        files = self.files(size)
        return [files[file_path(n)].entry for n in DOWNLOAD_FILES]
