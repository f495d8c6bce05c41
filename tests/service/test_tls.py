"""TLS and mutual TLS (POSTS_TLS_CERT / POSTS_TLS_KEY / POSTS_TLS_CLIENT_CA), with
a throwaway CA made here: who is served, who is refused."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import subprocess

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.pki import Pair, issue
from tests.processes import ROOT
from tests.support import DEFAULT_WAIT, Api, Tenant

# isort: split
from posts.v1 import posts_pb2_grpc

SECRET_KEY = "tls-secret-key-0123456789abcdef-0123456789"


# ------------------------------------------------------------------ the PKI


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
    ca = issue(directory, "ca", ca=True)
    other_ca = issue(directory, "other-ca", ca=True)
    loopback = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    return Pki(
        ca=ca,
        server=issue(directory, "server", ca, san=loopback, usage=ExtendedKeyUsageOID.SERVER_AUTH),
        client=issue(directory, "client", ca, usage=ExtendedKeyUsageOID.CLIENT_AUTH),
        stranger=issue(directory, "stranger", other_ca, usage=ExtendedKeyUsageOID.CLIENT_AUTH),
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
        tenant = Tenant(
            workspace_id,
            admin.create_api_key([workspace_id]),
            admin.create_account(workspace_id, "x", "tls", sandbox=True),
        )
        yield Servers(*addresses, tenant)
    finally:
        for server in started:
            server.stop(grace=2.0)
        db.close()


def _health(channel: grpc.Channel) -> int:
    """The health check's answer (SERVING), or the RPC's error code name when refused."""
    try:
        return (
            health_pb2_grpc.HealthStub(channel)
            .Check(health_pb2.HealthCheckRequest(), timeout=DEFAULT_WAIT)
            .status
        )
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
        [
            grpcurl,
            "-cacert",
            pki.ca.cert_path,
            "-cert",
            pki.client.cert_path,
            "-key",
            pki.client.key_path,
            servers.mutual,
            "grpc.health.v1.Health/Check",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert '"status": "SERVING"' in checked.stdout
