"""A throwaway certificate authority for mutual-TLS tests: a server certificate
for 127.0.0.1 and client certificates with chosen URI SANs (SPIFFE IDs, as
Istio's workload certificates carry; several, to test that every one counts),
all written as PEM files to a directory."""

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class Pair:
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(directory: Path, stem: str, cert: x509.Certificate, key) -> Pair:
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Pair(cert_path, key_path)


class Authority:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name("test mesh CA"))
            .issuer_name(_name("test mesh CA"))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.ca = _write(self.directory, "ca", self.cert, self.key).cert

    def issue(
        self,
        stem: str,
        *,
        ip: str | None = None,
        uri: str | list[str] | None = None,
        dns: list[str] | None = None,
        common_name: str | None = None,
    ) -> Pair:
        """A certificate for `ip` (a server) or with the URI SANs `uri`, then the DNS
        SANs `dns`, in that order (a client); its subject is `CN=<common_name>`
        (default: the stem)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        names = []
        if ip is not None:
            names.append(x509.IPAddress(ipaddress.ip_address(ip)))
        for one_uri in [uri] if isinstance(uri, str) else uri or []:
            names.append(x509.UniformResourceIdentifier(one_uri))
        for one_dns in dns or []:
            names.append(x509.DNSName(one_dns))
        usage = ExtendedKeyUsageOID.SERVER_AUTH if ip is not None else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name or stem))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        # RFC 5280: a subjectAltName has at least one name; none, no extension.
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return _write(self.directory, stem, cert, key)

    def downstream_tls(self, server: Pair, require_client_certificate: bool = True) -> dict:
        """A DownstreamTlsContext for Envoy that trusts this authority's clients."""
        return {
            "require_client_certificate": require_client_certificate,
            "common_tls_context": {
                "tls_certificates": [
                    {"certificate_chain": {"filename": str(server.cert)}, "private_key": {"filename": str(server.key)}}
                ],
                "validation_context": {"trusted_ca": {"filename": str(self.ca)}},
            },
        }
