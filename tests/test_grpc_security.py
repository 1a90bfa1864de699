"""TLS (server certificate, and mutual TLS) and bearer-token authentication."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from serving_fixtures import TINY_MODEL, encoded_image

from stylecast.cli import main
from stylecast.errors import StylecastError
from stylecast.serving.auth import bearer_metadata
from stylecast.serving.client import ServerError, StylecastClient
from stylecast.serving.health import SERVICE_NAME

pytest_plugins = ("serving_fixtures",)

TOKENS = ("s3cret-token", "rotated-token")


def make_certificate(
    name: str, issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A CA certificate (``issuer`` None) or a loopback leaf certificate signed by ``issuer``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[1].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        ).add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    signer = issuer[0] if issuer else key
    return key, builder.sign(signer, hashes.SHA256())


def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate and a client certificate, as PEM files."""
    folder = tmp_path_factory.mktemp("pki")
    ca = make_certificate("stylecast test CA")
    files = {"ca": pem_cert(ca[1])}
    for role in ("server", "client"):
        key, cert = make_certificate(f"stylecast test {role}", issuer=ca)
        files[f"{role}_key"], files[f"{role}_cert"] = pem_key(key), pem_cert(cert)
    paths = {}
    for name, data in files.items():
        paths[name] = folder / f"{name}.pem"
        paths[name].write_bytes(data)
    return paths


def tls_settings(pki: dict[str, Path]) -> dict[str, str]:
    return {"tls_cert": str(pki["server_cert"]), "tls_key": str(pki["server_key"])}


def test_tls_round_trip(start_server, pki):
    server = start_server(**tls_settings(pki))
    with StylecastClient(server.address, root_certificates=pki["ca"].read_bytes()) as client:
        assert client.health() == "SERVING"
        assert client.stylise(encoded_image(64), TINY_MODEL).image.width == 64
        frames = [(i, encoded_image(64)) for i in (1, 2)]
        replies = client.stream(frames, TINY_MODEL, max_pending=2, max_in_flight=2)
        assert [r.sequence for r in replies] == [1, 2]
    with StylecastClient(server.address, timeout=3) as plaintext:
        with pytest.raises(ServerError) as info:
            plaintext.models()
        assert info.value.code == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_requires_a_client_certificate(start_server, pki):
    server = start_server(**tls_settings(pki), tls_client_ca=str(pki["ca"]))
    root = pki["ca"].read_bytes()
    with StylecastClient(server.address, root_certificates=root, timeout=3) as anonymous:
        with pytest.raises(ServerError) as info:
            anonymous.models()
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
    with StylecastClient(
        server.address,
        root_certificates=root,
        client_key=pki["client_key"].read_bytes(),
        client_cert=pki["client_cert"].read_bytes(),
    ) as client:
        assert [m.name for m in client.models()] == [TINY_MODEL]


@pytest.mark.parametrize("tls", [False, True], ids=["plaintext", "tls"])
def test_bearer_token_authentication(start_server, pki, tls):
    server = start_server(auth_tokens=TOKENS, **(tls_settings(pki) if tls else {}))
    root = pki["ca"].read_bytes() if tls else None
    image = encoded_image(64)

    def connect(token: str | None) -> StylecastClient:
        return StylecastClient(server.address, token=token, root_certificates=root, timeout=10)

    for token in (None, "wrong-token", TOKENS[0] + "x"):
        with connect(token) as client:
            for call in (
                lambda c: c.stylise(image, TINY_MODEL),
                lambda c: c.models(),
                lambda c: c.reload(),
                lambda c: list(c.stream([(1, image)], TINY_MODEL)),
            ):
                with pytest.raises(ServerError) as info:
                    call(client)
                assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
            assert client.health() == "SERVING"  # probes need no token
    for token in TOKENS:
        with connect(token) as client:
            assert client.stylise(image, TINY_MODEL).image.width == 64
            assert [r.sequence for r in client.stream([(1, image)], TINY_MODEL)] == [1]
    rejected = {"method": "Stylise", "model": "", "code": "UNAUTHENTICATED"}
    assert server.metrics.value("stylecast_requests_total", rejected) == 3


def test_reflection_needs_the_token_too(start_server):
    server = start_server(auth_tokens=TOKENS)
    with grpc.insecure_channel(server.address) as channel:
        with pytest.raises(grpc.RpcError) as info:
            ProtoReflectionDescriptorDatabase(channel).get_services()
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # grpcurl -H 'authorization: Bearer ...' works: reflection with the metadata.
    channel = grpc.intercept_channel(
        grpc.insecure_channel(server.address), _MetadataInterceptor(bearer_metadata(TOKENS[1]))
    )
    with channel:
        assert SERVICE_NAME in ProtoReflectionDescriptorDatabase(channel).get_services()


class _MetadataInterceptor(grpc.StreamStreamClientInterceptor):
    """Adds fixed metadata to stream-stream calls (reflection is one)."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.metadata = metadata

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        details = client_call_details._replace(
            metadata=(*(client_call_details.metadata or ()), *self.metadata)
        )
        return continuation(details, request_iterator)


def test_tls_key_that_does_not_match_its_certificate_is_named(start_server, pki, tiny_models_dir,
                                                              capsys):  # fmt: skip
    mismatched = {"tls_cert": str(pki["server_cert"]), "tls_key": str(pki["client_key"])}
    with pytest.raises(StylecastError, match="TLS key does not match certificate"):
        start_server(**mismatched)
    args = ["serve", "--models-dir", str(tiny_models_dir), "--host", "127.0.0.1", "--port", "0",
            "--tls-cert", mismatched["tls_cert"], "--tls-key", mismatched["tls_key"]]  # fmt: skip
    assert main(args) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "TLS key does not match certificate" in error
    assert "bind" not in error


def test_tls_files_that_are_not_pem_are_refused_clearly(start_server, pki, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(StylecastError, match="cannot use TLS files"):
        start_server(tls_cert=str(junk), tls_key=str(pki["server_key"]))
    with pytest.raises(StylecastError, match="cannot use TLS files"):
        start_server(**tls_settings(pki), tls_client_ca=str(junk))
    with pytest.raises(StylecastError, match="cannot read TLS file"):
        start_server(tls_cert=str(tmp_path / "missing.pem"), tls_key=str(pki["server_key"]))
