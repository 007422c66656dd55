"""Real alert receivers on 127.0.0.1 for tests: a webhook (aiohttp) and an SMTP server (aiosmtpd).

Usage::

    async with WebhookReceiver() as hook:           # json://127.0.0.1:<port>/hook
        hook.fail(3)                                # the next 3 requests answer 500
        await hook.stop(); await hook.start()       # down (connection refused) and up again, same port
        hook.bodies                                 # JSON bodies received with 2xx, in order
        await hook.wait_for(2)                      # until 2 bodies arrived (bounded wait)

    with SmtpReceiver(user="u", password="p") as smtp:   # mailto://u:p@localhost:<port>?smtp=127.0.0.1&mode=insecure
        smtp.messages                               # email.message.EmailMessage objects received
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import socket
import threading
import time
from email.message import EmailMessage
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebhookReceiver:
    """Records JSON POST bodies; can answer 500 for a number of requests or be stopped (refusing connections)."""

    def __init__(self, path: str = "/hook", *, user: str | None = None, password: str | None = None) -> None:
        self.path = path
        self.port = free_port()
        self.user, self.password = user, password
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []  # request headers of the accepted bodies, in order
        self.failed = 0  # requests answered with an error status
        self.requests = 0
        self._fail = 0
        self._status = 500
        self._runner: web.AppRunner | None = None
        self._arrived = asyncio.Event()

    def url(self, scheme: str = "json") -> str:
        auth = f"{self.user}:{self.password}@" if self.user else ""
        return f"{scheme}://{auth}127.0.0.1:{self.port}{self.path}"

    def fail(self, count: int, status: int = 500) -> None:
        self._fail, self._status = count, status

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.user is not None:
            expected = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            if request.headers.get("Authorization") != expected:
                self.failed += 1
                return web.Response(status=401)
        if self._fail > 0:
            self._fail -= 1
            self.failed += 1
            return web.Response(status=self._status, text="receiver told to fail")
        self.bodies.append(await request.json())
        self.headers.append(dict(request.headers))
        self._arrived.set()
        return web.json_response({"ok": True})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Until `count` bodies arrived or `timeout` passed; returns the bodies either way."""
        deadline = time.monotonic() + timeout
        while len(self.bodies) < count and time.monotonic() < deadline:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout=max(0.01, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                break
        return self.bodies

    async def __aenter__(self) -> WebhookReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


class _Recorder:
    def __init__(self, owner: SmtpReceiver) -> None:
        self.owner = owner

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
        with self.owner.lock:
            self.owner.messages.append(message)  # type: ignore[arg-type]
            self.owner.logins.append(getattr(session, "auth_data", None))
        return "250 Message accepted for delivery"


class SmtpReceiver:
    """aiosmtpd on 127.0.0.1 without TLS; with `user`/`password`, AUTH is required and checked."""

    def __init__(self, *, user: str | None = None, password: str | None = None) -> None:
        self.port = free_port()
        self.user, self.password = user, password
        self.messages: list[EmailMessage] = []
        self.logins: list[Any] = []
        self.lock = threading.Lock()
        kwargs: dict[str, Any] = {}
        if user is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True, auth_require_tls=False)
        self.controller = Controller(_Recorder(self), hostname="127.0.0.1", port=self.port, **kwargs)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == self.user
              and auth_data.password.decode() == self.password)
        return AuthResult(success=ok, handled=False)

    def url(self, *, to: str = "analyst@example.org", sender: str = "monitor@example.org") -> str:
        auth = f"{self.user}:{self.password}@" if self.user else ""
        return (f"mailto://{auth}localhost:{self.port}?smtp=127.0.0.1&mode=insecure"
                f"&from={sender}&to={to}")

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.messages

    def __enter__(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.controller.stop()


def mqtt_reachable(host: str = "127.0.0.1", port: int = 1883) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class MqttSubscriber:
    """A paho-mqtt client subscribed to `topic` on the local broker, recording payloads (text)."""

    def __init__(self, topic: str, host: str = "127.0.0.1", port: int = 1883) -> None:
        import paho.mqtt.client as mqtt

        self.topic = topic
        self.payloads: list[str] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = lambda c, u, msg: self.payloads.append(msg.payload.decode("utf-8", "replace"))
        self.host, self.port = host, port

    def __enter__(self) -> MqttSubscriber:
        self.client.connect(self.host, self.port)
        self.client.loop_start()
        if not self._subscribed.wait(5):
            raise RuntimeError("MQTT subscription not confirmed within 5 s")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.payloads) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.payloads


# ---- alert test data ----

def arms_match(quantity: int = 14, *, rule_id: str = "arms-pledges", channels: tuple[str, ...] = (),
               donors: tuple[str, ...] = ("Denmark", "Netherlands")) -> Any:
    from monitor.models import Match

    return Match(rule_id=rule_id, rule_title="Arms pledges", severity="high", channels=channels,
                 terms=("Leopard 2", "pledge"), entities={"donor": list(donors), "system": ["Leopard 2"]},
                 snippet=f"{' and '.join(donors)} **pledged** {quantity} **Leopard 2** tanks to Ukraine.",
                 fields={"quantity": quantity})


def quick_alerts(**kw: Any) -> Any:
    """AlertSettings with test-sized waits (retries in tens of milliseconds, claims after 0.1 s); `kw` overrides."""
    from monitor.settings import AlertSettings

    base = dict(retry_base=0.05, retry_max_delay=0.2, claim_idle=0.1, send_timeout=5, poll_interval=0.02)
    return AlertSettings(**{**base, **kw})


def wire_copy(i: int, *, title: str = "Denmark and Netherlands pledge Leopard 2 tanks") -> Any:
    from monitor.models import Article

    return Article(url=f"https://site{i}.example/news/leopard-{i}", title=title, source=f"Site {i}",
                   published="2026-11-20T09:30:00+00:00", text="full text " * 50)


class DripReceiver:
    """An HTTP service on 127.0.0.1 that answers its first `slow` requests one byte every `every` seconds (a service
    that drips), the rest at once. Records each request's alert id header and whether the client hung up early."""

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"

    def __init__(self, *, slow: int = 1_000_000, every: float = 0.25) -> None:
        self.port = free_port()
        self.slow, self.every = slow, every
        self.requests = 0
        self.open = 0  # connections still open
        self.hung_up = 0  # dripping answers the client stopped reading (closed the connection)
        self.completed = 0  # answers sent in full
        self.alert_ids: list[str] = []
        self._server: asyncio.AbstractServer | None = None

    def url(self, scheme: str = "json", path: str = "/hook") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            for line in head.decode("latin-1").split("\r\n"):
                if line.lower().startswith("x-monitor-alert-id:"):
                    self.alert_ids.append(line.split(":", 1)[1].strip())
            gone = asyncio.ensure_future(reader.read())  # ends (b"") when the client closes its side
            answer = self.ANSWER if self.requests <= self.slow else None
            if answer is None:
                writer.write(self.ANSWER)
                await writer.drain()
                self.completed += 1
                gone.cancel()
                return
            for i in range(len(answer)):
                if gone.done():
                    self.hung_up += 1
                    return
                writer.write(answer[i:i + 1])
                await writer.drain()
                await asyncio.sleep(self.every)
            self.completed += 1
            gone.cancel()
        except (ConnectionError, asyncio.IncompleteReadError):
            self.hung_up += 1
        finally:
            self.open -= 1
            writer.close()

    async def wait_closed(self, timeout: float = 10.0) -> None:
        """Until no connection is open (bounded wait)."""
        deadline = time.monotonic() + timeout
        while self.open and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def __aenter__(self) -> DripReceiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._server is not None:
            self._server.close()
