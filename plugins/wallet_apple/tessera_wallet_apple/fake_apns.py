"""The fake APNs served like the real one, over HTTP/2 and TLS with client certificates: test material.

For tests and benchmarks only (it needs ``hypercorn``, from the ``test`` extra)::

    ca = ThrowawayCA("Test WWDR")
    cert_pem, key_pem = ca.issue_client("Pass Type ID: pass.com.shop.loyalty")
    with running_fake_apns(ca.ca_pem) as fake:
        push_updates(ctx, (cert_pem, key_pem), "pass.com.shop.loyalty", tokens,
                     base_url=fake.url, ca_pem=fake.ca_pem)
        fake.devices.pushes()

:func:`running_fake_apns` serves :func:`~tessera_wallet_apple.sandbox.create_sandbox_app` with
hypercorn in a background thread on ``127.0.0.1`` and a free port, ALPN ``h2`` only as APNs, with a
server certificate made at start for ``127.0.0.1`` and ``localhost`` by its own throwaway CA, and
client certificates required and verified against the CA the caller names. It stops with the block
(closing this process's cached APNs connections to it first). :func:`running_sandbox` serves the
bearer-mode app over plain HTTP instead, the way the core's ``/sandbox/...`` mount exposes it.
Client and fake share one process (and its GIL), so throughput measured this way is a floor:
run the fake in another process for a benchmark of the client.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fastapi import FastAPI
from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.types import Message, Receive, Scope, Send

from tessera_wallet_apple.apns import close_clients
from tessera_wallet_apple.sandbox import FakeDevices, SandboxState, create_sandbox_app

log = logging.getLogger(__name__)
STARTUP_TIMEOUT = 10.0
VALIDITY = datetime.timedelta(days=2)


class ThrowawayCA:
    """A certificate authority made in memory for one test run, issuing short-lived leaves.

    The certificates carry the extensions strict verifiers ask for (key identifiers, key usage,
    critical basic constraints), so they pass Python's ``VERIFY_X509_STRICT``.
    """

    def __init__(self, common_name: str) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        public = self._key.public_key()
        builder = _builder(name, name, public).add_extension(
            x509.BasicConstraints(ca=True, path_length=0), critical=True
        )
        builder = builder.add_extension(_key_usage(signing_certificates=True), critical=True)
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), False)
        self.certificate = builder.sign(self._key, hashes.SHA256())

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate, PEM: what a peer trusts to accept this CA's leaves."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue_server(self, names: Sequence[str] = ("127.0.0.1", "localhost")) -> tuple[bytes, bytes]:
        """A TLS server certificate for these host names and IP addresses; (certificate, key) as PEM."""
        alternatives: list[x509.GeneralName] = []
        for host in names:
            try:
                alternatives.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                alternatives.append(x509.DNSName(host))
        return self._issue(
            names[0], ExtendedKeyUsageOID.SERVER_AUTH, x509.SubjectAlternativeName(alternatives)
        )

    def issue_client(self, common_name: str, user_id: str | None = None) -> tuple[bytes, bytes]:
        """A TLS client certificate (``user_id`` as the subject UID, as Pass Type IDs have); PEM pair."""
        return self._issue(common_name, ExtendedKeyUsageOID.CLIENT_AUTH, None, user_id)

    def _issue(
        self,
        common_name: str,
        usage: x509.ObjectIdentifier,
        alternatives: x509.SubjectAlternativeName | None,
        user_id: str | None = None,
    ) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if user_id is not None:
            attributes.insert(0, x509.NameAttribute(NameOID.USER_ID, user_id))
        builder = _builder(x509.Name(attributes), self.certificate.subject, key.public_key())
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        builder = builder.add_extension(_key_usage(signing_certificates=False), critical=True)
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
        )
        if alternatives is not None:
            builder = builder.add_extension(alternatives, critical=False)
        certificate = builder.sign(self._key, hashes.SHA256())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def _builder(
    subject: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    """The fields every certificate here shares: names, key, serial, two days of validity."""
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate clock skew
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )


def _key_usage(*, signing_certificates: bool) -> x509.KeyUsage:
    """Key usage for a CA (signs certificates) or a TLS leaf (signs handshakes)."""
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=signing_certificates, crl_sign=signing_certificates,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip


@dataclass(frozen=True)
class FakeApns:
    """A running fake APNs: where it listens, the CA to trust for it, and its app and state."""

    url: str
    ca_pem: bytes
    app: FastAPI

    @property
    def devices(self) -> FakeDevices:
        """The fake's devices and pushes (one state: the TLS layer authenticated every client)."""
        state: SandboxState = self.app.state.apns
        return state.devices()


@contextmanager
def running_fake_apns(client_ca_pem: bytes, *, max_streams: int = 100) -> Iterator[FakeApns]:
    """Serve a fresh fake APNs over HTTP/2 + TLS on loopback while the block runs.

    Clients must present a certificate issued by ``client_ca_pem``; the TLS handshake refuses
    others. ``max_streams`` is the server's HTTP/2 concurrent stream limit.
    """
    app = create_sandbox_app(tls_client_auth=True)
    server_ca = ThrowawayCA("Tessera fake APNs CA")
    certificate_pem, key_pem = server_ca.issue_server()
    with tempfile.TemporaryDirectory(prefix="tessera-fake-apns-") as folder:
        # hypercorn reads certificates from files only; the directory is private (0700).
        files = {"cert.pem": certificate_pem, "key.pem": key_pem, "clients.pem": client_ca_pem}
        for name, content in files.items():
            (Path(folder) / name).write_bytes(content)
        config = Config()
        config.certfile, config.keyfile = f"{folder}/cert.pem", f"{folder}/key.pem"
        config.ca_certs = f"{folder}/clients.pem"
        config.verify_mode = ssl.CERT_REQUIRED
        config.alpn_protocols = ["h2"]  # APNs speaks HTTP/2 only
        config.h2_max_concurrent_streams = max_streams
        with _serving(app, config) as port:
            url = f"https://127.0.0.1:{port}"
            try:
                yield FakeApns(url=url, ca_pem=server_ca.ca_pem, app=app)
            finally:
                # An idle HTTP/2 client never reads the server's TLS close_notify, and hypercorn waits
                # for the answer (asyncio's 30 s SSL shutdown timeout): close ours first.
                close_clients(url)


@contextmanager
def running_sandbox() -> Iterator[tuple[str, FastAPI]]:
    """Serve the bearer-mode fake over plain HTTP on loopback, as the core's mount exposes it; (url, app).

    For tests of sandbox mode that do not start the whole core.
    """
    app = create_sandbox_app()
    with _serving(app, Config()) as port:
        yield f"http://127.0.0.1:{port}", app


@contextmanager
def _serving(app: FastAPI, config: Config) -> Iterator[int]:
    """Run hypercorn with ``config`` on 127.0.0.1 and a free port while the block runs; the port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # hypercorn sets TCP_NODELAY only on sockets it binds itself; accepted sockets inherit it from here.
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # connections wait in the backlog until hypercorn accepts them
    port: int = listener.getsockname()[1]
    config.bind = [f"fd://{listener.detach()}"]  # hypercorn owns the socket from here
    config.keep_alive_max_requests = 2**31  # APNs keeps a connection for as long as it is used
    config.keep_alive_timeout = 3600.0  # ... and open while idle, where hypercorn closes after 5 s
    config.graceful_timeout = 1.0
    config.accesslog = None
    config.errorlog = log
    server = _ServerThread(app, config)
    server.start()
    try:
        server.wait_started()
        yield port
    finally:
        server.stop()


class _ServerThread(threading.Thread):
    """hypercorn on its own event loop in a daemon thread, stoppable from another thread."""

    def __init__(self, app: FastAPI, config: Config) -> None:
        super().__init__(name="fake-apns", daemon=True)
        self.app, self.config = app, config
        self.started = threading.Event()
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the starting thread by wait_started
            self.error = exc
            self.started.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._shutdown = asyncio.Event()
        # hypercorn types ASGI apps more narrowly than Starlette does; the app is plain ASGI 3.
        app: Any = self._announcing_app
        await serve(app, self.config, shutdown_trigger=self._shutdown.wait, mode="asgi")

    async def _announcing_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app, telling ``started`` when its lifespan start-up is done (hypercorn then listens)."""

        async def forward(message: Message) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                self.started.set()

        await self.app(scope, receive, forward if scope["type"] == "lifespan" else send)

    def wait_started(self) -> None:
        """Return once serving; raise what stopped the server from starting."""
        if not self.started.wait(STARTUP_TIMEOUT):
            raise RuntimeError(f"The fake APNs did not start within {STARTUP_TIMEOUT} s.")
        if self.error is not None:
            raise RuntimeError(f"The fake APNs could not start: {self.error}") from self.error

    def stop(self) -> None:
        """Ask hypercorn to shut down and wait for the thread (open connections get a short grace)."""
        if self._loop is not None and self._shutdown is not None and self.is_alive():
            self._loop.call_soon_threadsafe(self._shutdown.set)
        self.join(STARTUP_TIMEOUT)
