"""ntlm.py against published test vectors: MD4 (RFC 1320 appendix A.5) and NTLMv2 (MS-NLMP 4.2.4)."""

from __future__ import annotations

import struct

import pytest

from proxy_lab.proxy import ntlm


@pytest.mark.parametrize(
    ("message", "digest"),
    [
        (b"", "31d6cfe0d16ae931b73c59d7e0c089c0"),
        (b"a", "bde52cb31de33e46245e05fbdbd6fb24"),
        (b"abc", "a448017aaf21d8525fc10ae87aa6729d"),
        (b"message digest", "d9130a8164549fe818874806e1c7014b"),
        (b"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"),
        (b"1234567890" * 8, "e33b4ddc9c38f2199c3e7b164fcc0536"),
    ],
)
def test_md4_gives_rfc_1320s_digests(message: bytes, digest: str) -> None:
    assert ntlm.md4(message).hex() == digest


# MS-NLMP 4.2.4: user "User", domain "Domain", password "Password", server challenge 0123456789abcdef,
# client challenge aaaaaaaaaaaaaaaa, time 0, target information naming domain "Domain" and server "Server".
SERVER_CHALLENGE = bytes.fromhex("0123456789abcdef")
TARGET_INFO = bytes.fromhex("02000c0044006f006d00610069006e0001000c0053006500720076006500720000000000")
BLOB = b"\x01\x01" + bytes(6) + bytes(8) + bytes.fromhex("aaaaaaaaaaaaaaaa") + bytes(4) + TARGET_INFO + bytes(4)
NT_PROOF = bytes.fromhex("68cd0ab851e51c96aabc927bebef6a1c")


def test_ntowfv2_and_the_nt_proof_match_ms_nlmp() -> None:
    assert ntlm.ntowf_v2("Password", "User", "Domain").hex() == "0c868a403bfd7a93a3001ef22ef02e3f"
    auth = ntlm.Authenticate("User", "Domain", "COMPUTER", NT_PROOF + BLOB, bytes(24))
    assert ntlm.verify(auth, "Password", SERVER_CHALLENGE)
    assert not ntlm.verify(auth, "password", SERVER_CHALLENGE)  # passwords are exact
    assert not ntlm.verify(auth, "Password", bytes(8))  # another challenge
    assert ntlm.verify(ntlm.Authenticate("USER", "Domain", "", NT_PROOF + BLOB, b""), "Password", SERVER_CHALLENGE)


def test_an_ntlmv1_response_is_never_accepted() -> None:
    assert not ntlm.verify(ntlm.Authenticate("User", "Domain", "", bytes(24), bytes(24)), "Password", SERVER_CHALLENGE)


def test_the_challenge_carries_its_challenge_domain_and_target_information() -> None:
    message = ntlm.challenge_message(SERVER_CHALLENGE, "corp", "proxy-lab")
    assert ntlm.message_type(message) == ntlm.CHALLENGE
    name_len, _, name_at = struct.unpack_from("<HHI", message, 12)
    assert message[name_at : name_at + name_len].decode("utf-16-le") == "CORP"
    assert message[24:32] == SERVER_CHALLENGE
    info_len, _, info_at = struct.unpack_from("<HHI", message, 40)
    info = message[info_at : info_at + info_len]
    assert info.startswith(b"\x02\x00\x08\x00" + "CORP".encode("utf-16-le")) and info.endswith(b"\x00\x00\x00\x00")


@pytest.mark.parametrize(
    ("token", "error"),
    [
        (b"HTTP/1.1", "no NTLMSSP signature"),
        (ntlm.SIGNATURE + struct.pack("<I", 9), "an NTLM message of an unknown type"),
        (ntlm.SIGNATURE + struct.pack("<I", 1) + bytes(60), "expected an NTLM AUTHENTICATE message"),
        (ntlm.SIGNATURE + struct.pack("<I", 3) + struct.pack("<HHI", 24, 24, 4000) + bytes(44), "runs past its end"),
    ],
)
def test_a_malformed_message_is_an_error_that_names_what_is_wrong(token: bytes, error: str) -> None:
    with pytest.raises(ntlm.NtlmError, match=error):
        ntlm.parse_authenticate(token)
