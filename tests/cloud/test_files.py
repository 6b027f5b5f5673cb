"""proxy_lab.cloud.files: deterministic content, signatures made once per size, single-byte corruption."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from proxy_lab.cloud.files import FileStore, file_content, flip_one_byte
from proxy_lab.protocol import messages as m


def test_file_content_is_deterministic_per_name_size_and_seed() -> None:
    a = file_content("rates-gb.bin", 4096, seed=1)
    assert a == file_content("rates-gb.bin", 4096, seed=1)
    assert len(a) == 4096
    assert a != file_content("rates-gb.bin", 4096, seed=2)
    assert a != file_content("software.bin", 4096, seed=1)
    assert file_content("rates-gb.bin", 100, seed=1) == a[:100]  # SHAKE output is a prefix stream


def test_flip_one_byte_changes_exactly_one_byte() -> None:
    data = bytes(1000)
    flipped = flip_one_byte(data)
    assert len(flipped) == 1000 and sum(x != y for x, y in zip(data, flipped, strict=True)) == 1
    assert flip_one_byte(b"") == b""


def test_store_signs_every_file_and_lists_the_index_without_the_ota_package() -> None:
    key = Ed25519PrivateKey.generate()
    store = FileStore(key, seed=7)
    files = store.files(2048)
    assert set(files) == {
        "/files/rates-gb.bin",
        "/files/software.bin",
        "/files/graphics.bin",
        "/ota/update.bin",
    }
    for f in files.values():
        m.verify_file(key.public_key(), f.data, f.signature)
        assert f.corrupt != f.data
    index = store.index(2048)
    assert [e.name for e in index] == list(m.DOWNLOAD_FILES)
    assert index[0].sha256 == hashlib.sha256(file_content("rates-gb.bin", 2048, 7)).hexdigest()
    assert store.files(2048) is files  # made once per size


def test_store_keeps_only_the_last_few_sizes_and_makes_older_ones_again() -> None:
    store = FileStore(Ed25519PrivateKey.generate())
    first = store.files(1)
    for size in range(2, 10):
        store.files(size)
    last = store.files(9)
    assert store.files(9) is last  # a recent size is kept
    again = store.files(1)
    assert again is not first  # the oldest was let go, and is made (and signed) again
    assert again["/ota/update.bin"].data == first["/ota/update.bin"].data
