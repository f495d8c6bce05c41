"""TLS and mutual TLS (POSTS_TLS_CERT / POSTS_TLS_KEY / POSTS_TLS_CLIENT_CA), with
a throwaway CA made here: who is served, who is refused."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import os
import pathlib
import subprocess

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.processes import ROOT
from tests.support import DEFAULT_WAIT, Api, Tenant

# isort: split
from posts.v1 import posts_pb2_grpc

SECRET_KEY = "tls-secret-key-0123456789abcdef-0123456789"


# ------------------------------------------------------------------ the PKI


@dataclasses.dataclass
class Pair:
    """A certificate and its private key, as PEM, and the files holding them."""

    cert: bytes
    key: bytes
    cert_path: str
    key_path: str


def _pair(directory: pathlib.Path, name: str, issuer: tuple | None = None, *,
          ca: bool = False, usage=None) -> tuple[Pair, tuple]:  # fmt: skip
    """A certificate for ``name`` signed by ``issuer`` (a (certificate, key) from
    an earlier call), or self-signed; returns it and its (certificate, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_cert, issuer_key = issuer or (None, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, encipher_only=False,
                          decipher_only=False),
            critical=True,
        )  # fmt: skip
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    certificate = builder.sign(issuer_key, hashes.SHA256())
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(key_pem)
    return Pair(cert_pem, key_pem, str(cert_path), str(key_path)), (certificate, key)


@dataclasses.dataclass
class Pki:
    ca: Pair
    server: Pair
    client: Pair  # signed by ``ca``
    stranger: Pair  # a client certificate from another CA

    def credentials(self, client: Pair | None = None) -> grpc.ChannelCredentials:
        """A client trusting ``ca``, presenting ``client`` (None: no certificate)."""
        if client is None:
            return grpc.ssl_channel_credentials(root_certificates=self.ca.cert)
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.cert, private_key=client.key, certificate_chain=client.cert
        )


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, ca_signer = _pair(directory, "ca", ca=True)
    other_ca = _pair(directory, "other-ca", ca=True)[1]
    return Pki(
        ca=ca,
        server=_pair(directory, "server", ca_signer, usage=ExtendedKeyUsageOID.SERVER_AUTH)[0],
        client=_pair(directory, "client", ca_signer, usage=ExtendedKeyUsageOID.CLIENT_AUTH)[0],
        stranger=_pair(directory, "stranger", other_ca, usage=ExtendedKeyUsageOID.CLIENT_AUTH)[0],
    )


# --------------------------------------------------------------- the servers


@dataclasses.dataclass
class Servers:
    mutual: str  # address of the server requiring client certificates
    tls: str  # address of the server with TLS and no client CA
    tenant: Tenant


@pytest.fixture(scope="module")
def servers(pki, tmp_path_factory) -> Servers:
    """Two servers on one database: mutual TLS, and TLS without a client CA."""
    from service import admin, db, migrations
    from service.config import Config
    from service.server import create_server

    var_dir = tmp_path_factory.mktemp("var-tls")
    env = {
        "POSTS_LISTEN": "127.0.0.1:0",
        "POSTS_DATABASE_URL": f"sqlite:///{var_dir}/posts.db",
        "POSTS_VAR_DIR": str(var_dir),
        "POSTS_SECRET_KEY": SECRET_KEY,
        "POSTS_TLS_CERT": pki.server.cert_path,
        "POSTS_TLS_KEY": pki.server.key_path,
    }
    mutual_config = Config.from_env({**env, "POSTS_TLS_CLIENT_CA": pki.ca.cert_path})
    tls_config = Config.from_env(env)
    db.init(tls_config)
    migrations.migrate()
    started = []
    try:
        addresses = []
        for config in (mutual_config, tls_config):
            # No delivery side: these tests publish nothing.
            server, port = create_server(config, lambda post_id, token: None)
            server.start()
            started.append(server)
            addresses.append(f"127.0.0.1:{port}")
        workspace_id = admin.create_workspace("tls")
        tenant = Tenant(workspace_id, admin.create_api_key([workspace_id]),
                        admin.create_account(workspace_id, "x", "tls", sandbox=True))  # fmt: skip
        yield Servers(*addresses, tenant)
    finally:
        for server in started:
            server.stop(grace=2.0)
        db.close()


def _health(channel: grpc.Channel) -> int:
    """The health check's answer (SERVING), or the RPC's error code name when refused."""
    try:
        return health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=DEFAULT_WAIT
        ).status
    except grpc.RpcError as error:
        return error.code().name


SERVING = health_pb2.HealthCheckResponse.SERVING


def _served_with_a_key(channel: grpc.Channel, tenant: Tenant) -> None:
    """A PostService call and its read back, with the tenant's API key."""
    api = Api(posts_pb2_grpc.PostServiceStub(channel))
    post = api.create(tenant, text="over TLS")
    assert api.get(tenant, post.post_id).post_id == post.post_id


# ------------------------------------------------------------------ the tests


def test_mutual_tls_serves_a_client_with_a_certificate_signed_by_the_ca(servers, pki):
    with grpc.secure_channel(servers.mutual, pki.credentials(pki.client)) as channel:
        assert _health(channel) == SERVING
        _served_with_a_key(channel, servers.tenant)


def test_mutual_tls_refuses_a_client_without_a_certificate(servers, pki):
    with grpc.secure_channel(servers.mutual, pki.credentials()) as channel:
        assert _health(channel) == "UNAVAILABLE"


def test_mutual_tls_refuses_a_certificate_from_another_ca(servers, pki):
    with grpc.secure_channel(servers.mutual, pki.credentials(pki.stranger)) as channel:
        assert _health(channel) == "UNAVAILABLE"


def test_tls_without_a_client_ca_serves_a_client_without_a_certificate(servers, pki):
    with grpc.secure_channel(servers.tls, pki.credentials()) as channel:
        assert _health(channel) == SERVING
        _served_with_a_key(channel, servers.tenant)


@pytest.mark.parametrize("which", ["mutual", "tls"])
def test_plaintext_is_refused(servers, which):
    with grpc.insecure_channel(getattr(servers, which)) as channel:
        assert _health(channel) == "UNAVAILABLE"


def test_the_readme_grpcurl_flags_reach_a_mutual_tls_server(servers, pki):
    grpcurl = os.path.join(ROOT, ".venv", "bin", "grpcurl")
    if not os.path.exists(grpcurl):
        pytest.skip("grpcurl is not installed beside the virtual environment's Python")
    checked = subprocess.run(
        [grpcurl, "-cacert", pki.ca.cert_path, "-cert", pki.client.cert_path,
         "-key", pki.client.key_path, servers.mutual, "grpc.health.v1.Health/Check"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert '"status": "SERVING"' in checked.stdout
