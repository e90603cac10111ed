"""What the OAuth2 and TLS tests run against, all on 127.0.0.1: a private CA (made per test
with `cryptography`), and a token server that plays Microsoft's identity platform (OpenID
configuration + client-credentials token endpoint, over HTTPS signed by that CA, since msal
talks only HTTPS), Google's token endpoint (refresh token and service-account JWT), and the
introspection endpoint Dovecot's oauth2 passdb asks (plain HTTP, loopback)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from mailbot.context import Context
from mailbot.outbox.planner import Thread, plan_reply
from mailbot.outcome import Reply
from mailbot.states import Status

TENANT = "tenant-1"
CLIENT_ID = "app-1"
CLIENT_SECRET = "app-secret"
GOOGLE_CLIENT = "google-client"
GOOGLE_SECRET = "google-secret"
REFRESH_TOKEN = "refresh-1"
SECRET_ENV = "MAILBOT_TEST_APP_SECRET"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class TestCA:
    """A CA and one server certificate for 127.0.0.1 and localhost, as PEM files in
    `folder`: ca.pem (what `ca_file` names), server.pem and server.key."""

    __test__ = False

    def __init__(self, folder: Path, name: str = "mailbot test CA") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)
        self.key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        server_key = _key()
        server = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(subject)
            .public_key(server_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = folder / "ca.pem"
        self.cert_file = folder / "server.pem"
        self.key_file = folder / "server.key"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
        self.key_file.write_bytes(_pem_key(server_key))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def app_certificate(folder: Path) -> tuple[Path, rsa.RSAPublicKey]:
    """An app's certificate credential (self-signed, as Entra ID takes): one PEM file with the
    private key and the certificate, and the public key the token server checks with."""
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailbot app")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    path = folder / "app.pem"
    path.write_bytes(_pem_key(key) + cert.public_bytes(serialization.Encoding.PEM))
    return path, key.public_key()


def service_account(folder: Path, token_uri: str) -> tuple[Path, rsa.RSAPublicKey]:
    """A Google service-account key file as the console downloads it."""
    key = _key()
    path = folder / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "client_email": "mailbot@project.iam.gserviceaccount.com",
                "private_key_id": "kid-1",
                "private_key": _pem_key(key).decode(),
                "token_uri": token_uri,
            }
        ),
        encoding="utf-8",
    )
    return path, key.public_key()


@dataclass
class Issued:
    user: str | None
    expires_at: float
    revoked: bool = False


@dataclass
class TokenServer:
    """Issues tokens and answers introspection (the refresh token is code's). `now` is the server's clock (seconds), moved
    by tests; `grants` are the mailboxes an app token may open (Exchange's
    Add-MailboxPermission), a user token opens its own user's."""

    ca: TestCA
    lifetime: float = 3600.0
    now: float = 1_000_000.0
    grants: set[str] = field(default_factory=lambda: {"code"})
    app_key: rsa.RSAPublicKey | None = None
    service_key: rsa.RSAPublicKey | None = None
    issued: dict[str, Issued] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)
    introspected: list[str] = field(default_factory=list)
    refuse_next: int = 0

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self._https = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._https.socket = self.ca.server_context().wrap_socket(
            self._https.socket, server_side=True
        )
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        for server in (self._https, self._http):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self._https.server_address[1]}"

    @property
    def authority(self) -> str:
        return f"{self.base}/{TENANT}"

    @property
    def google_token_uri(self) -> str:
        return f"{self.base}/google/token"

    @property
    def introspection_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/introspect"

    def close(self) -> None:
        for server in (self._https, self._http):
            server.shutdown()
            server.server_close()

    def issue(self, user: str | None) -> str:
        with self.lock:
            token = f"tok-{len(self.issued) + 1}"
            self.issued[token] = Issued(user, self.now + self.lifetime)
            return token

    def revoke_all(self) -> None:
        with self.lock:
            for issued in self.issued.values():
                issued.revoked = True

    def user_of(self, token: str, login: str | None = None) -> str | None:
        """Whom a bearer token lets in: its user, or for an app's token the login asked for
        if granted (Dovecot asks without one: the one mailbox granted); None when the token
        is unknown, expired, revoked or not for that login."""
        with self.lock:
            issued = self.issued.get(token)
            if issued is None or issued.revoked or self.now >= issued.expires_at:
                return None
            user = issued.user
            if user is None:
                if login is None:
                    return next(iter(self.grants)) if len(self.grants) == 1 else None
                user = login if login.split("@", 1)[0] in self.grants else None
            if login is not None and user != login:
                return None
            return user

    def token_answer(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, object]]:
        self.requests.append({"path": path} | form)
        if self.refuse_next:
            self.refuse_next -= 1
            return 400, {"error": "invalid_client", "error_description": "AADSTS7000215: bad"}
        if path == f"/{TENANT}/oauth2/v2.0/token":
            if form.get("grant_type") != "client_credentials" or form.get("client_id") != (
                CLIENT_ID
            ):
                return 400, {"error": "unauthorized_client"}
            if "client_assertion" in form:
                try:
                    jwt.decode(
                        form["client_assertion"],
                        self.app_key,  # type: ignore[arg-type]
                        algorithms=["RS256", "PS256"],
                        audience=f"{self.authority}/oauth2/v2.0/token",
                    )
                except jwt.PyJWTError as exc:
                    return 401, {"error": "invalid_client", "error_description": str(exc)}
            elif form.get("client_secret") != CLIENT_SECRET:
                return 401, {"error": "invalid_client", "error_description": "AADSTS7000215"}
            return 200, self._token(None)
        if path == "/google/token":
            if form.get("grant_type") == "refresh_token":
                if (
                    form.get("client_id"),
                    form.get("client_secret"),
                    form.get("refresh_token"),
                ) != (
                    GOOGLE_CLIENT,
                    GOOGLE_SECRET,
                    REFRESH_TOKEN,
                ):
                    return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
                return 200, self._token("code")
            try:
                claims = jwt.decode(
                    form.get("assertion", ""),
                    self.service_key,  # type: ignore[arg-type]
                    algorithms=["RS256"],
                    audience=self.google_token_uri,
                    options={"verify_exp": False, "verify_iat": False},
                )
            except jwt.PyJWTError as exc:
                return 400, {"error": "invalid_grant", "error_description": str(exc)}
            return 200, self._token(str(claims["sub"]).split("@", 1)[0])
        return 404, {"error": "not_found"}

    def _token(self, user: str | None) -> dict[str, object]:
        return {
            "token_type": "Bearer",
            "expires_in": int(self.lifetime),
            "access_token": self.issue(user),
        }


def _handler(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            if path == "/introspect":
                credentials = self.headers.get("Authorization") or ""
                self._introspect(path, credentials.removeprefix("Bearer ").strip())
                return
            if self.path.startswith(f"/{TENANT}/v2.0/.well-known/openid-configuration"):
                base = server.authority
                self._answer(
                    200,
                    {
                        "issuer": f"{base}/v2.0",
                        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                        "token_endpoint": f"{base}/oauth2/v2.0/token",
                        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                    },
                )
                return
            self._answer(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            path = urllib.parse.urlsplit(self.path).path
            if path == "/introspect":
                self._introspect(path, form.get("token", ""))
                return
            self._answer(*server.token_answer(path, form))

        def _introspect(self, path: str, token: str) -> None:
            server.introspected.append(token)
            user = server.user_of(token)
            self._answer(200, {"active": True, "username": user} if user else {"active": False})

    return Handler


def microsoft(server: TokenServer, ca: TestCA, table: str, **extra: str) -> str:
    """An `oauth2` table (TOML, named `table`) for the test's Microsoft endpoint with the app's
    secret in SECRET_ENV; `extra` adds or replaces keys ("" drops one)."""
    keys = {
        "provider": "microsoft",
        "tenant": TENANT,
        "client_id": CLIENT_ID,
        "client_secret_env": SECRET_ENV,
        "authority": server.authority,
        "ca_file": str(ca.ca_file),
    } | extra
    return f"[{table}]\n" + "".join(f'{k} = "{v}"\n' for k, v in keys.items() if v)


def plan_one(ctx: Context, sender: str = "code@occto.or.jp") -> None:
    """One receipt to a@example.co.jp on a new case, From `sender` (one of our mailboxes)."""
    now = ctx.now()
    with ctx.store.transaction():
        case_id = ctx.store.create_case(
            now,
            procedure="operator_code_application",
            status=Status.RECEIVED,
            sender="a@example.co.jp",
            subject="【容量市場向け事業者コード申請】",
            received_at=now.isoformat(),
        )
        reply = Reply(
            "receipt",
            "receipt",
            {
                "received_at": now,
                "wrong_mailbox": False,
                "next_steps": "",
                "attachment_names": [],
            },
        )
        thread = Thread(
            recipient="a@example.co.jp", message_id="<q@example.jp>", mailbox_address=sender
        )
        plan_reply(ctx, ctx.store.case(case_id), reply, thread, now)
