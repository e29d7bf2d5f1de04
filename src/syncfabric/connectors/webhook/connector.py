"""Receives signed event deliveries over HTTP and answers each one only after it is durably in the store.

A plain ASGI app served by uvicorn (on its own thread) takes ``POST <path_prefix>/<source>`` with one JSON event,
or a JSON array of events (answered once all are committed: ``{"status": "stored", "events": N}``, or 202 with
the index and reasons of each one quarantined). The signature and the timestamp are checked first
(:mod:`.signature`); a refused delivery is logged and answered 401 (409 when replayed) and never processed. An
accepted one is handed to the flow as one :class:`Received` (an array's events as its rows, not an object per
event), which the flow commits in a batch with others (group commit) and then answers through its ``ack``:

    200 {"status": "stored"}                         in the store
    202 {"status": "quarantined", "reasons": [...]}   kept in quarantine with its reasons (sending again won't help)
    503 {"detail": ...}                              not committed in time: send it again (events are idempotent)

One endpoint per system serves every flow subscribed to it (one path each).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from typing import Any

import msgspec

from syncfabric.connectors.base import Acknowledgement, Capability, Connector, Received, RejectedRaw
from syncfabric.connectors.inbox import Inbox, Subscription
from syncfabric.connectors.webhook.configuration import WebhookConfig
from syncfabric.connectors.webhook.exceptions import DeliveryRefused
from syncfabric.connectors.webhook.signature import Verifier
from syncfabric.errors import PermanentError, TransientError

log = logging.getLogger("syncfabric.webhook")


class WebhookConnector(Connector):
    kind = "webhook"
    capabilities = Capability.SUBSCRIBE
    config_type = WebhookConfig
    config: WebhookConfig
    secret_names = ("secret",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._inboxes: dict[str, Inbox] = {}
        self._server: ExitStack | None = None
        self._lock = threading.Lock()
        self.url = ""
        """The endpoint's base URL once it listens (``http://127.0.0.1:8800``)."""

    def path(self, source: str) -> str:
        return f"{self.config.path_prefix}/{source}"

    def subscribe(self, entity: str, *, durable: str, batch_size: int = 500, max_wait: float = 0.02,
                  poll: float = 0.5) -> Subscription:
        with self._lock:  # flows subscribe from threads of their own
            if entity in self._inboxes:
                raise PermanentError(f"two flows listen on {self.path(entity)}", system=self.system, entity=entity)
            inbox = self._inboxes[entity] = Inbox()  # before the server starts, so no early POST gets a 404
            try:
                self._listen()
            except BaseException:
                del self._inboxes[entity]
                raise
        return Subscription(inbox, batch_size=batch_size, max_wait=max_wait, poll=poll,
                            on_close=lambda: self._unsubscribe(entity))

    def test_connection(self) -> None:
        self._verifier()

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()

    def _unsubscribe(self, entity: str) -> None:
        with self._lock:
            self._inboxes.pop(entity, None)
            if not self._inboxes:
                self.close()

    def _verifier(self) -> Verifier:
        secret = self.secrets.get("secret")
        if not secret:
            raise PermanentError("a webhook endpoint needs the credential secret (secret: {env: NAME})",
                                 system=self.system)
        return Verifier(secret, signature_header=self.config.signature_header,
                        timestamp_header=self.config.timestamp_header, tolerance=self.config.tolerance_seconds)

    def _listen(self) -> None:
        if self._server is not None:
            return
        from syncfabric.sandbox.server import serve

        app = self._app(self._verifier())
        stack = ExitStack()
        try:
            self.url = stack.enter_context(serve(app, self.config.host, self.config.port))
        except RuntimeError as exc:
            stack.close()
            raise TransientError(f"cannot listen on {self.config.host}:{self.config.port}: {exc}",
                                 system=self.system) from exc
        self._server = stack

    def _app(self, verifier: Verifier) -> Asgi:
        """The endpoint as a plain ASGI app: one POST route per flow, nothing else between uvicorn and the check of
        the signature (a web framework's routing, request objects and middleware cost more per request here than
        the signature does)."""
        config = self.config
        prefix = config.path_prefix + "/"
        wanted = {config.signature_header.lower().encode(): config.signature_header,
                  config.timestamp_header.lower().encode(): config.timestamp_header}
        limit = config.max_body_bytes

        async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
            if scope["type"] == "lifespan":
                await _lifespan(receive, send)
                return
            if scope["type"] != "http":
                return
            path: str = scope["path"]
            source = path[len(prefix):] if path.startswith(prefix) else ""
            if not source or "/" in source:
                await _answer(send, 404, {"detail": "Not Found"})
                return
            if scope["method"] != "POST":
                await _answer(send, 405, {"detail": "Method Not Allowed"}, ((b"allow", b"POST"),))
                return
            client = scope.get("client")
            where = f"POST {self.path(source)} from {client[0] if client else '?'}"
            inbox = self._inboxes.get(source)
            if inbox is None:
                await _answer(send, 404, {"detail": f"nothing listens on {self.path(source)}"})
                return
            headers = {wanted[name]: value.decode("latin-1") for name, value in scope["headers"] if name in wanted}
            try:
                body = await _body(receive, limit)
                signature = verifier.verify(headers, body)
            except DeliveryRefused as refused:
                log.warning("webhook %s refused %s: %s", self.system, where, refused.reason)
                await _answer(send, refused.status, {"detail": refused.reason})
                return
            loop = asyncio.get_running_loop()
            location = f"{where} at {headers.get(config.timestamp_header)}"
            delivery, answers, single = self._events(body, location, loop)
            if not delivery.rows:  # an empty array: nothing to wait for
                await _answer(send, 200, {"status": "stored", "events": 0})
                return
            inbox.put(delivery)  # one hand-over for the whole request
            try:
                outcomes = await asyncio.wait_for(answers.future, config.answer_timeout_seconds)
            except TimeoutError:
                verifier.forget(signature)
                await _answer(send, 503, {"detail": "not stored in time; send it again"})
                return
            await _answer(send, *_outcome(outcomes, single))

        return app

    @staticmethod
    def _events(body: bytes, location: str, loop: asyncio.AbstractEventLoop) -> tuple[Received, _Answers, bool]:
        """The events of a body (one JSON object, or a JSON array of them) as one delivery, its answers, and
        whether it was a single event. An array's events are the decoded array itself, checked to be objects by
        the decoder; an element's location (``<location> [<index>]``) is made here only for one refused."""
        def unreadable(reason: str, raw: str) -> tuple[Received, _Answers, bool]:
            answers = _Answers(loop, 1)
            problem = RejectedRaw(raw=raw, reason=reason, location=location)
            return Received([{}], location, answers.ack, {0: problem}), answers, True

        problems: dict[int, RejectedRaw] | None = None
        try:
            data = _decode_events(body)
        except msgspec.DecodeError:  # not JSON, or not objects: the plain decoding tells which
            try:
                data = _decode(body)
            except msgspec.DecodeError as exc:
                return unreadable(f"body is not JSON: {exc}", body.decode("utf-8", "replace"))
            if isinstance(data, list):
                problems = {
                    index: RejectedRaw(raw=_encode(element).decode(), location=f"{location} [{index}]",
                                       reason=f"event must be a JSON object, got {type(element).__name__} @ $[{index}]")
                    for index, element in enumerate(data) if element.__class__ is not dict}
        if isinstance(data, dict):
            answers = _Answers(loop, 1)
            return Received([data], location, answers.ack), answers, True
        if not isinstance(data, list):
            return unreadable(f"body must be a JSON object (one event) or an array of them, got {type(data).__name__}",
                              body.decode("utf-8", "replace"))
        answers = _Answers(loop, len(data))
        return Received(data, location, answers.ack, problems or None, numbered=True), answers, False


Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Asgi = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]
_JSON = ((b"content-type", b"application/json"),)
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_decode_events = msgspec.json.Decoder(dict[str, Any] | list[dict[str, Any]]).decode
"""A body as the usual delivery is: one event, or an array of events, every one an object."""


def _outcome(outcomes: list[Acknowledgement], single: bool) -> tuple[int, dict[str, Any]]:
    """The status and answer of a delivery whose events were all committed."""
    if single:
        [outcome] = outcomes
        if outcome.status == "stored":
            return 200, {"status": "stored"}
        return 202, {"status": outcome.status, "reasons": list(outcome.reasons)}
    refused = [{"index": index, "reasons": list(outcome.reasons)}
               for index, outcome in enumerate(outcomes) if outcome.status != "stored"]
    if not refused:
        return 200, {"status": "stored", "events": len(outcomes)}
    return 202, {"status": "quarantined" if len(refused) == len(outcomes) else "partly quarantined",
                 "events": len(outcomes), "quarantined": refused}


async def _body(receive: Receive, limit: int) -> bytes:
    """The request's body; :class:`DeliveryRefused` (413) as soon as it grows past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise DeliveryRefused(400, "the sender disconnected before the body was complete")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise DeliveryRefused(413, f"body exceeds max_body_bytes ({limit})")
        chunks.append(chunk)
        if not message.get("more_body"):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _answer(send: Send, status: int, content: dict[str, Any],
                  headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    body = _encode(content)
    await send({"type": "http.response.start", "status": status,
                "headers": [*_JSON, (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class _Answers:
    """The acks of one delivery's events: the request's future resolves, on the server's loop, once every event of
    the delivery is acknowledged (one wake-up of the loop per request, not per event). Acknowledged a part at a
    time (each event once): all at once, or in the parts of a delivery split across batches."""

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[list[Acknowledgement]] = loop.create_future()
        self._outcomes: list[Acknowledgement | None] = [None] * count
        self._left = count
        self._lock = threading.Lock()

    def ack(self, first: int, outcomes: list[Acknowledgement]) -> None:
        """The acknowledgements of the delivery's events from index ``first`` on, in order."""
        with self._lock:
            self._outcomes[first:first + len(outcomes)] = outcomes
            self._left -= len(outcomes)
            if self._left:
                return
            done: list[Any] = self._outcomes  # every one acknowledged by now
        with contextlib.suppress(RuntimeError):  # the server stopped; the sender will send it again
            self.loop.call_soon_threadsafe(self._resolve, done)

    def _resolve(self, outcomes: list[Acknowledgement]) -> None:
        if not self.future.done():
            self.future.set_result(outcomes)
