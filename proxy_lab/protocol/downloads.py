"""Signed files and the download index: what dlsdlp1.pb.com lists, pbdlsp1*.pb.com and
pb-ota.redbend.com serve, and the Ed25519 signatures the device verifies before use.

The guide: "Incoming data and files are signed and verified prior to use." Each file at
`/files/<name>` (or `/ota/update.bin`) has its detached raw signature at `<path>.sig`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from proxy_lab.protocol.fields import FILE_NAME, SHA256, check, count
from proxy_lab.protocol.xmldoc import attr, build, expect_root

# Files served by the download hosts (pbdlsp1*.pb.com) under /files/<name> and listed by
# dlsdlp1.pb.com's DownloadIndex; the OTA package lives on pb-ota.redbend.com.
DOWNLOAD_FILES = ("rates-gb.bin", "software.bin", "graphics.bin")
OTA_PATH = "/ota/update.bin"
SIGNATURE_BYTES = 64  # a raw Ed25519 signature (RFC 8032 §5.1.6)


def file_path(name: str) -> str:
    """Where a download host serves the file `name`: `/files/<name>`."""
    return "/files/" + check(FILE_NAME, name, "file name", "a file name")


def signature_path(path: str) -> str:
    """The detached signature of the file at `path`: `<path>.sig`."""
    return path + ".sig"


@dataclass(frozen=True)
class FileEntry:
    """One file of the DownloadIndex."""

    name: str
    size: int
    sha256: str

    def __post_init__(self) -> None:
        check(FILE_NAME, self.name, "file name", "a file name")
        count(self.size, f"file {self.name} size")
        check(SHA256, self.sha256, f"file {self.name} sha256", "64 lowercase hex digits")

    @property
    def path(self) -> str:
        return file_path(self.name)


def download_index(entries: Iterable[FileEntry]) -> bytes:
    """`<DownloadIndex><File name=".." size="N" sha256="H"/>...</DownloadIndex>`."""
    return build(
        "DownloadIndex",
        {},
        (("File", {"name": e.name, "size": str(e.size), "sha256": e.sha256}) for e in entries),
    )


def parse_download_index(body: bytes) -> list[FileEntry]:
    """-> the files listed, in order."""
    el = expect_root(body, "DownloadIndex", children="File")
    entries: list[FileEntry] = []
    for i, child in enumerate(el):
        try:
            entries.append(
                FileEntry(
                    attr(child, "name"), count(attr(child, "size"), "size"), attr(child, "sha256").lower()
                )
            )
        except ValueError as exc:
            raise ValueError(f"<File> #{i}: {exc}") from exc
    return entries


def sign_file(key: Ed25519PrivateKey, data: bytes) -> bytes:
    """The detached raw 64-byte Ed25519 signature of `data`."""
    return key.sign(bytes(data))


def verify_file(public_key: Ed25519PublicKey, data: bytes, signature: bytes) -> None:
    """Raise ValueError unless `signature` is the lab key's Ed25519 signature of `data`."""
    if len(signature) != SIGNATURE_BYTES:
        raise ValueError(f"signature is {len(signature)} bytes; an Ed25519 signature is {SIGNATURE_BYTES}")
    try:
        public_key.verify(bytes(signature), bytes(data))
    except InvalidSignature as exc:
        raise ValueError(f"Ed25519 signature does not verify over the {len(data)} bytes received") from exc
