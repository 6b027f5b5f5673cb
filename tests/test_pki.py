"""The PKI writes both lab CAs and the signing key once, with private keys mode 0600; files signed
with its key verify, and tampered or foreign ones do not."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from proxy_lab.pki import CORP_CA_NAME, PB_ROOT_NAME, PKI
from proxy_lab.protocol.messages import sign_file, verify_file


def test_certs_are_written_once_with_private_keys_mode_0600(tmp_path: Path) -> None:
    pki = PKI(tmp_path / "certs")
    written = pki.ensure()
    assert pki.pb_root.cert in written and pki.corp_ca.key in written
    for key in (pki.pb_root.key, pki.corp_ca.key, pki.signing_key_path):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert pki.ensure() == []  # second run reuses everything


def test_the_corporate_ca_says_it_is_a_lab_ca(tmp_path: Path) -> None:
    pki = PKI.load(tmp_path)
    corp = x509.load_pem_x509_certificate(pki.corp_ca.cert.read_bytes())
    assert "LAB ONLY" in corp.subject.rfc4514_string() and CORP_CA_NAME in corp.subject.rfc4514_string()
    root = x509.load_pem_x509_certificate(pki.pb_root.cert.read_bytes())
    assert PB_ROOT_NAME in root.subject.rfc4514_string()


def test_host_certificates_are_signed_by_the_pb_root_and_not_by_the_corporate_ca(tmp_path: Path) -> None:
    pki = PKI.load(tmp_path)
    path = pki.host_cert("distservp1.pb.com")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    leaf = x509.load_pem_x509_certificates(path.read_bytes())[0]
    root = x509.load_pem_x509_certificate(pki.pb_root.cert.read_bytes())
    corp = x509.load_pem_x509_certificate(pki.corp_ca.cert.read_bytes())
    leaf.verify_directly_issued_by(root)
    with pytest.raises((ValueError, InvalidSignature)):
        leaf.verify_directly_issued_by(corp)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["distservp1.pb.com"]


def test_the_device_context_trusts_the_pb_root_only(tmp_path: Path) -> None:
    pki = PKI.load(tmp_path)
    ctx = pki.device_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    subjects = [dict(x[0] for x in c["subject"]).get("organizationalUnitName") for c in ctx.get_ca_certs()]
    assert subjects == [PB_ROOT_NAME]


def test_a_file_signed_by_the_lab_key_verifies_and_a_tampered_or_foreign_one_is_rejected(
    tmp_path: Path,
) -> None:
    pki = PKI.load(tmp_path)
    public = pki.signing_public_key()
    data = b"rates-gb: 1st class 100 g 0.85"
    signature = sign_file(pki.signing_key(), data)
    verify_file(public, data, signature)  # the genuine file verifies

    tampered = bytes([data[0] ^ 0x01]) + data[1:]  # one bit of one byte changed
    with pytest.raises(ValueError, match="does not verify"):
        verify_file(public, tampered, signature)
    bad_signature = signature[:-1] + bytes([signature[-1] ^ 0x80])
    with pytest.raises(ValueError, match="does not verify"):
        verify_file(public, data, bad_signature)
    foreign = sign_file(Ed25519PrivateKey.generate(), data)  # the same file, signed by another key
    with pytest.raises(ValueError, match="does not verify"):
        verify_file(public, data, foreign)


def test_a_second_lab_directory_has_its_own_signing_key(tmp_path: Path) -> None:
    data = b"software.bin"
    ours, other = PKI.load(tmp_path / "a"), PKI.load(tmp_path / "b")
    verify_file(ours.signing_public_key(), data, sign_file(ours.signing_key(), data))
    with pytest.raises(ValueError, match="does not verify"):
        verify_file(ours.signing_public_key(), data, sign_file(other.signing_key(), data))
