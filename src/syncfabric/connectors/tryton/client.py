"""A small JSON-RPC client for Tryton: login, the session header, re-login on expiry, typed values, warnings.

    client = TrytonClient(config, password, system="erp-tryton")
    client.login()                                   # common.db.login, then res.user.get_preferences
    rows = client.execute("product.product", "search_read", [], 0, 100, [["id", "ASC"]], ["code"])
    client.close()                                   # common.db.logout

``execute`` appends the user's context (company, language, ...) as Tryton expects; ``context=`` adds keys to it
for one call (``{"locations": [3]}`` for stock quantities). Values travel in Tryton's JSON encoding
(``{"__class__": "Decimal", "decimal": "2.40"}``); answers come back decoded for mapping: decimals as text (exact),
dates and date-times as ISO 8601 text (date-times in UTC, with ``Z``), durations as ``{"seconds", "days"}``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import threading
import time
from decimal import Decimal
from typing import Any

import httpx

from syncfabric.connectors.http import http_client
from syncfabric.connectors.tryton.configuration import TrytonConfig
from syncfabric.connectors.tryton.exceptions import TrytonFault, translate_error, translate_fault
from syncfabric.errors import ConnectorError, PermanentError, TransientError
from syncfabric.flows.retry import RetryPolicy

_READS = frozenset({"search", "search_read", "search_count", "read", "get_preferences", "on_change",
                    "on_change_with", "fields_get", "version"})
"""Methods that change nothing: tried again after any transient failure."""
_REFUSED = frozenset({429, 503})
_SESSIONS: dict[tuple[str, str, str, str], tuple[str, int, dict[str, Any]]] = {}
"""Sessions kept for the next client of the same server, database and user (``reuse_session``)."""
_SESSIONS_LOCK = threading.Lock()
"""Answers that say the server did not run the call."""


class _Refused(TransientError):
    """The server refused the call without running it: safe to send again, whatever it does."""


class TrytonClient:
    def __init__(self, config: TrytonConfig, password: str, *, system: str) -> None:
        self.config = config
        self.system = system
        self._password = password
        self._http = http_client(system, config.url, timeout=config.timeout_seconds, verify=config.verify_tls,
                                 limits=config.limits)
        self._ids = itertools.count(1)
        self._authorization: str | None = None
        self.user_id: int | None = None
        self.context: dict[str, Any] = {}
        """The user's preferences (company, companies, language, ...), sent with every model call."""
        self.logins = 0
        """How many times this client logged in (the first login and every re-login after a session expired)."""

    # ---- session -----------------------------------------------------------------------------------------------

    def login(self) -> None:
        result = self._post(f"/{self.config.database}/rpc/", "common.db.login",
                            [self.config.user, {"password": self._password}], authorize=False)
        if not isinstance(result, list) or len(result) < 2:
            raise PermanentError(f"Tryton login answered {result!r}, not [user id, session]", system=self.system)
        self.user_id, session = int(result[0]), str(result[1])
        token = base64.b64encode(f"{self.config.user}:{self.user_id}:{session}".encode()).decode()
        self._authorization = f"Session {token}"
        self.logins += 1
        preferences = self._post(f"/{self.config.database}/rpc/", "model.res.user.get_preferences", [True, {}])
        self.context = dict(preferences) if isinstance(preferences, dict) else {}
        if self.config.reuse_session:
            with _SESSIONS_LOCK:
                _SESSIONS[self._session_key] = (self._authorization, self.user_id, dict(self.context))

    @property
    def _session_key(self) -> tuple[str, str, str, str]:
        secret = hashlib.sha256(self._password.encode()).hexdigest()
        return (self.config.url.rstrip("/"), self.config.database, self.config.user, secret)

    def _session(self) -> None:
        """Log in, or (``reuse_session``) take the session an earlier client of this process left."""
        if self.config.reuse_session:
            with _SESSIONS_LOCK:
                kept = _SESSIONS.get(self._session_key)
            if kept is not None:
                self._authorization, self.user_id, context = kept
                self.context = dict(context)
                return
        self.login()

    def close(self) -> None:
        try:
            if self._authorization is not None and not self.config.reuse_session:
                self._post(f"/{self.config.database}/rpc/", "common.db.logout", [])
        except ConnectorError:  # logging out is a courtesy; the session expires by itself
            pass
        finally:
            self._authorization = None
            self._http.close()

    def server_version(self) -> str:
        return str(self._post("/rpc/", "common.server.version", [], authorize=False))

    # ---- calls -------------------------------------------------------------------------------------------------

    def execute(self, model: str, method: str, *args: Any, context: dict[str, Any] | None = None,
                entity: str = "", key: str = "") -> Any:
        """``model.<model>.<method>(*args, context)``; a session that expired is renewed once, and a warning is
        accepted and the call retried when the configuration says so."""
        if self._authorization is None:
            self._session()
        accepted: set[str] = set()
        while True:
            try:
                return self._call(model, method, args, context, entity, key)
            except TrytonFault as fault:
                name = fault.warning_name
                if name is None or not self.config.accept_warnings or name in accepted:
                    raise translate_fault(fault, system=self.system, entity=entity, key=key) from None
                accepted.add(name)
                self._call("res.user.warning", "create", ([{"user": self.user_id, "name": name, "always": False}],),
                           None, entity, key)

    def _call(self, model: str, method: str, args: tuple[Any, ...], context: dict[str, Any] | None,
              entity: str, key: str) -> Any:
        params = [*args, {**self.context, **(context or {})}]
        return self._post(f"/{self.config.database}/rpc/", f"model.{model}.{method}", params, entity=entity,
                          key=key, faults=True)

    def _post(self, path: str, method: str, params: list[Any], *, authorize: bool = True, entity: str = "",
              key: str = "", faults: bool = False) -> Any:
        """One call, tried again when it failed transiently and trying again cannot do anything twice: the server
        refused it (429, 503), or it only reads."""
        reads = method.rsplit(".", 1)[-1] in _READS or method.startswith("common.")
        policy = RetryPolicy(max_attempts=self.config.max_attempts, max_delay=self.config.max_retry_delay_seconds)
        attempt = 1
        while True:
            try:
                return self._post_once(path, method, params, authorize=authorize, entity=entity, key=key,
                                       faults=faults)
            except TransientError as exc:
                if attempt >= policy.max_attempts or not (reads or isinstance(exc, _Refused)):
                    raise
                time.sleep(policy.delay(attempt, exc.retry_after))
                attempt += 1

    def _post_once(self, path: str, method: str, params: list[Any], *, authorize: bool = True, entity: str = "",
                   key: str = "", faults: bool = False, renewed: bool = False) -> Any:
        body = {"id": next(self._ids), "method": method, "params": encode(params)}
        headers = {"Authorization": self._authorization} if authorize and self._authorization else {}
        try:
            response = self._http.post(path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise translate_error(exc, system=self.system, entity=entity, key=key) from exc
        if response.status_code in (401, 403) and authorize and not renewed:
            self.login()  # the session expired or was dropped: log in again, once
            return self._post_once(path, method, params, entity=entity, key=key, faults=faults, renewed=True)
        if response.status_code != 200:
            error = translate_error(response, system=self.system, entity=entity, key=key)
            if response.status_code in _REFUSED and isinstance(error, TransientError):
                refused = _Refused(str(error), retry_after=error.retry_after)
                refused.system, refused.entity, refused.key = error.system, error.entity, error.key
                raise refused
            raise error
        try:
            answer = response.json()
        except ValueError:
            raise PermanentError(f"Tryton answered {method} with something that is not JSON: {response.text[:200]}",
                                 system=self.system, entity=entity, key=key) from None
        if isinstance(answer, dict) and answer.get("error") is not None:
            fault = TrytonFault(answer["error"])
            if faults:
                raise fault
            raise translate_fault(fault, system=self.system, entity=entity, key=key)
        return decode(answer.get("result") if isinstance(answer, dict) else answer)


def encode(value: Any) -> Any:
    """Python values in Tryton's JSON encoding."""
    if isinstance(value, dict):
        return {key: encode(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [encode(item) for item in value]
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return {"__class__": "datetime", "year": value.year, "month": value.month, "day": value.day,
                "hour": value.hour, "minute": value.minute, "second": value.second,
                "microsecond": value.microsecond}
    if isinstance(value, dt.date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    if isinstance(value, dt.timedelta):
        return {"__class__": "timedelta", "seconds": value.total_seconds()}
    return value


def decode(value: Any) -> Any:
    """Tryton's typed JSON values as text mapping can read exactly (see the module docstring)."""
    if isinstance(value, list):
        return [decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    kind = value.get("__class__")
    if kind == "Decimal":
        return str(value["decimal"])
    if kind == "date":
        return dt.date(value["year"], value["month"], value["day"]).isoformat()
    if kind == "datetime":
        stamp = dt.datetime(value["year"], value["month"], value["day"], value.get("hour", 0),
                            value.get("minute", 0), value.get("second", 0), value.get("microsecond", 0))
        return stamp.isoformat(timespec="microseconds") + "Z"
    if kind == "time":
        return dt.time(value.get("hour", 0), value.get("minute", 0), value.get("second", 0),
                       value.get("microsecond", 0)).isoformat()
    if kind == "timedelta":
        seconds = float(value.get("seconds", 0))
        return {"seconds": seconds, "days": str(Decimal(str(seconds)) / 86400)}
    if kind == "bytes":
        return value.get("base64")
    return {key: decode(item) for key, item in value.items()}
