"""SeaweedFS's side doors, closed: only the S3 gateway takes a request without the team's keys.

`weed mini` runs five servers in one process, each with an HTTP and a gRPC port, and also
serves every gRPC port on a Unix socket in /tmp. Only the S3 gateway checks identities;
left as they come, the filer answers `curl -F file=@x http://127.0.0.1:<filer>/buckets/...`
with 201, the master hands out write tokens (/dir/assign) and deletes collections
(/col/delete), and every gRPC port edits metadata for anyone. Loopback is no boundary:
every local user and process reaches 127.0.0.1. What closes each door, and why that one:

- **volume HTTP, the data path** (every byte the S3 gateway reads or writes goes over it):
  JWT. The master and filer sign a token per file id for each read and each write
  (`jwt.signing`, `jwt.signing.read`); the volume server checks it with one HMAC-SHA256 and
  answers 401 without it. Bytes stay plain on loopback, so closing this door costs the S3
  path a hash per request, not a cipher per byte (bench.team measures it against the open
  configuration in the same run). Left open on that port: /status and /healthz, which
  give disk and volume counts, never an object's name or a byte of it.
- **master, filer and admin HTTP** (nothing on the S3 path uses them): HTTPS that requires a
  client certificate from the team's CA, and `-disableHttp` switches the master's and
  filer's APIs off even behind it. A plain request gets "HTTP request to an HTTPS server";
  a TLS client without the certificate fails the handshake.
- **every gRPC port, TCP and /tmp socket alike**: mutual TLS with the team's CA. The
  gateway's metadata calls run over connections held open, so the handshake is paid once.
  It also makes a socket planted in /tmp under one of those names useless: a server
  without the team's certificate fails the client's handshake.

Not chosen: the `guard.white_list` checks the client's IP, which on loopback is every
local process; weed mini binds all its listeners to one address, and its /tmp sockets
are hard-coded, so no listener can be moved where others cannot reach; TLS on the volume
port would encrypt every byte the S3 path moves.

The CA, the certificate and the four JWT keys are made new on every start and live only
in `team/s3-security/` (0700, files 0600), weed's working folder, whence it reads
`./security.toml`: never in an environment or on a command line, and nothing to rotate.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from fakenews.team.layout import write_private

JWT_KEYS = ("jwt.signing", "jwt.signing.read", "jwt.filer_signing", "jwt.filer_signing.read")
GRPC_COMPONENTS = ("master", "volume", "filer", "s3", "admin", "worker", "client")
HTTPS_COMPONENTS = ("master", "filer", "admin")  # not the volume: the S3 path's bytes
CERTIFICATE_DAYS = 3650  # new ones on every start anyway
TOKEN_SECONDS = 10  # how long a signed file id stays good


@dataclass(frozen=True)
class WeedSecurity:
    """security.toml and the certificates it names, in `folder` (weed's working folder)."""

    folder: Path

    @property
    def config(self) -> Path:
        return self.folder / "security.toml"

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def certificate(self) -> Path:
        return self.folder / "weed.pem"

    @property
    def key(self) -> Path:
        return self.folder / "weed.key"

    def write(self) -> None:
        """A new CA, certificate and JWT keys, and the security.toml that uses them."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        ca_pem, cert_pem, key_pem = certificate_chain()
        for path, text in ((self.ca, ca_pem), (self.certificate, cert_pem), (self.key, key_pem)):
            write_private(path, text)
        write_private(self.config, self.toml({name: secrets.token_hex(32) for name in JWT_KEYS}))

    def toml(self, jwt_keys: dict[str, str]) -> str:
        sections = [
            f'[{name}]\nkey = "{key}"\nexpires_after_seconds = {TOKEN_SECONDS}\n'
            for name, key in jwt_keys.items()
        ]
        pair = f'cert = "{self.certificate}"\nkey = "{self.key}"\n'
        sections += [
            "[access]\nui = false\n",
            "[filer.expose_directory_metadata]\nenabled = false\n",
            f'[grpc]\nca = "{self.ca}"\n',
            *(f"[grpc.{component}]\n{pair}" for component in GRPC_COMPONENTS),
            *(f'[https.{c}]\n{pair}ca = "{self.ca}"\n' for c in HTTPS_COMPONENTS),
        ]
        return "\n".join(sections)

    def remove(self) -> None:
        for path in (self.config, self.ca, self.certificate, self.key):
            path.unlink(missing_ok=True)


def certificate_chain(name: str = "fakenews team") -> tuple[str, str, str]:
    """(CA certificate, server+client certificate, its private key) as PEM text: one pair
    for every weed component, as weed allows (it checks no host name)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, key, issuer=None, issuer_key=None, ca: bool = False):
        name_of = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name_of)
            .issuer_name(issuer.subject if issuer else name_of)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CERTIFICATE_DAYS))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            loopback = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), *map(x509.IPAddress, loopback)]
                ),
                critical=False,
            ).add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        return builder.sign(issuer_key or key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build(f"{name} CA", ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build(name, key, ca, ca_key)
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return ca.public_bytes(pem).decode(), cert.public_bytes(pem).decode(), key_pem
