"""The Tryton server the session starts: a real trytond answering JSON-RPC on 127.0.0.1."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.tryton


def test_server_answers_json_rpc_and_checks_passwords(tryton_server) -> None:
    version = httpx.post(f"{tryton_server.url}/rpc/", json={"id": 1, "method": "common.server.version",
                                                            "params": []}).json()
    assert version["result"].startswith("8.2")
    login = f"{tryton_server.url}/{tryton_server.database}/rpc/"
    good = httpx.post(login, json={"id": 2, "method": "common.db.login",
                                   "params": [tryton_server.user, {"password": tryton_server.password}]})
    assert good.status_code == 200 and isinstance(good.json()["result"][0], int)
    bad = httpx.post(login, json={"id": 3, "method": "common.db.login",
                                  "params": [tryton_server.user, {"password": "wrong-password"}]})
    assert bad.status_code == 401
