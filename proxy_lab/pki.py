"""PKI: the lab's certificate authorities, host certificates and file-signing key, kept under certs/.

- the *lab PB root* signs every simulated back-end host; the device trusts it and nothing else;
- the *corporate inspection CA* is what `tls_inspect` (mitmproxy) re-signs with; its name says it
  is a lab CA, and it must never be installed anywhere;
- the *signing key* (Ed25519) signs rates and software files, verified by the device before use.

Everything is made with trustme and cryptography, written once, and reused on later runs.
Private keys are created with mode 0600.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from proxy_lab.outcomes import CertSummary

PB_ROOT_NAME = "proxy-lab PB Root (lab only)"
CORP_CA_NAME = "proxy-lab Corp Inspection CA - LAB ONLY - never install"

DEFAULT_CERTS_DIR = Path(os.environ.get("PROXY_LAB_CERTS", "certs"))


class PKIError(RuntimeError):
    """Certificates could not be written or read: a setup failure, not an outcome."""


def _write_private(path: Path, data: bytes) -> None:
    """Write a private key readable by its owner only (mode 0600 from the first byte)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)


def summarize(cert: x509.Certificate | bytes) -> CertSummary:
    """Subject, issuer, SHA-256 fingerprint and validity of a certificate (DER bytes or object)."""
    if isinstance(cert, bytes | bytearray):
        cert = x509.load_der_x509_certificate(bytes(cert))
    der = cert.public_bytes(serialization.Encoding.DER)
    return CertSummary(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        sha256=hashlib.sha256(der).hexdigest(),
        not_before=cert.not_valid_before_utc.isoformat(),
        not_after=cert.not_valid_after_utc.isoformat(),
    )


@dataclass(frozen=True)
class CAFiles:
    cert: Path
    key: Path


class PKI:
    """The lab's CAs and keys under one directory; `PKI.load(dir)` creates what is missing."""

    _lock = threading.Lock()

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.pb_root = CAFiles(directory / "pb-root.pem", directory / "pb-root.key")
        self.corp_ca = CAFiles(directory / "corp-ca.pem", directory / "corp-ca.key")
        self.signing_key_path = directory / "signing.key"
        self.signing_pub_path = directory / "signing.pub"
        self.hosts_dir = directory / "hosts"
        self._pb_ca: trustme.CA | None = None

    @classmethod
    def load(cls, directory: Path | None = None) -> PKI:
        pki = cls(Path(directory) if directory is not None else DEFAULT_CERTS_DIR)
        pki.ensure()
        return pki

    # -- creation ---------------------------------------------------------------------------
    def ensure(self) -> list[Path]:
        """Create every missing file; return the paths written (empty when all existed)."""
        written: list[Path] = []
        with self._lock:
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
                self.hosts_dir.mkdir(exist_ok=True)
                for files, name in ((self.pb_root, PB_ROOT_NAME), (self.corp_ca, CORP_CA_NAME)):
                    if not (files.cert.exists() and files.key.exists()):
                        ca = trustme.CA(organization_name="proxy-lab", organization_unit_name=name)
                        _write_private(files.key, ca.private_key_pem.bytes())
                        files.cert.write_bytes(ca.cert_pem.bytes())
                        written += [files.cert, files.key]
                        if files is self.pb_root:  # host certificates of an old root are stale
                            for old in self.hosts_dir.glob("*.pem"):
                                old.unlink()
                if not self.signing_key_path.exists():
                    key = Ed25519PrivateKey.generate()
                    _write_private(
                        self.signing_key_path,
                        key.private_bytes(
                            serialization.Encoding.PEM,
                            serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption(),
                        ),
                    )
                    self.signing_pub_path.write_bytes(
                        key.public_key().public_bytes(
                            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                        )
                    )
                    written += [self.signing_key_path, self.signing_pub_path]
            except OSError as exc:
                raise PKIError(f"cannot write certificates under {self.dir}: {exc}") from exc
        return written

    def _ca(self, files: CAFiles) -> trustme.CA:
        return trustme.CA.from_pem(files.cert.read_bytes(), files.key.read_bytes())

    @property
    def pb_ca(self) -> trustme.CA:
        if self._pb_ca is None:
            self._pb_ca = self._ca(self.pb_root)
        return self._pb_ca

    def host_cert(self, host: str) -> Path:
        """Path of a PEM file (key + leaf + chain) for `host`, signed by the PB root; made once."""
        path = self.hosts_dir / f"{host.lower()}.pem"
        if not path.exists():
            with self._lock:
                if not path.exists():
                    try:
                        leaf = self.pb_ca.issue_cert(host, organization_name="proxy-lab simulated PB cloud")
                    except UnicodeError:
                        # trustme encodes names with IDNA 2008 (UTS 46), which refuses ASCII labels
                        # with '--' in positions 3-4 such as 'r1---sn-8pgbpohxqp5-auol.gvt1.com'.
                        # Such a host gets its parent's wildcard, as the real one does (*.gvt1.com).
                        leaf = self.pb_ca.issue_cert(
                            "*." + host.split(".", 1)[1], organization_name="proxy-lab simulated PB cloud"
                        )
                    tmp = path.with_suffix(".tmp")
                    _write_private(tmp, leaf.private_key_and_cert_chain_pem.bytes())
                    tmp.replace(path)
        return path

    def corp_ca_combined(self) -> Path:
        """The corporate CA as mitmproxy's confdir wants it: `mitmproxy-ca.pem` (key + cert)."""
        confdir = self.dir / "mitmproxy"
        confdir.mkdir(exist_ok=True)
        combined = confdir / "mitmproxy-ca.pem"
        if not combined.exists() or combined.stat().st_mtime < self.corp_ca.cert.stat().st_mtime:
            _write_private(combined, self.corp_ca.key.read_bytes() + self.corp_ca.cert.read_bytes())
            (confdir / "mitmproxy-ca-cert.pem").write_bytes(self.corp_ca.cert.read_bytes())
        return confdir

    # -- use ---------------------------------------------------------------------------------
    def device_context(self) -> ssl.SSLContext:
        """A client context that trusts the PB root and nothing else (the meter's pinning)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_verify_locations(cafile=str(self.pb_root.cert))
        return ctx

    def server_context(self, host: str) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.host_cert(host)))
        return ctx

    def signing_key(self) -> Ed25519PrivateKey:
        key = serialization.load_pem_private_key(self.signing_key_path.read_bytes(), password=None)
        assert isinstance(key, Ed25519PrivateKey)
        return key

    def signing_public_key(self) -> Ed25519PublicKey:
        key = serialization.load_pem_public_key(self.signing_pub_path.read_bytes())
        assert isinstance(key, Ed25519PublicKey)
        return key

    def root_summary(self) -> CertSummary:
        return summarize(x509.load_pem_x509_certificate(self.pb_root.cert.read_bytes()))

    def expected_chain(self, host: str) -> list[CertSummary]:
        """The chain the genuine back end presents for `host`: its PB-signed leaf, then the PB root."""
        path = self.hosts_dir / f"{host.lower()}.pem"
        chain: list[CertSummary] = []
        if path.exists():
            certs = x509.load_pem_x509_certificates(path.read_bytes())
            chain.append(summarize(certs[0]))
        chain.append(self.root_summary())
        return chain
