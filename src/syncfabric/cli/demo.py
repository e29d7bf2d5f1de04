"""The demos and the SAP S/4HANA emulator: ``demo``, ``sap-sandbox``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from syncfabric.cli.common import (
    _boundary,
    app,
    console,
)
from syncfabric.errors import ConfigError


@app.command()
def demo(
    seed: Annotated[int, typer.Option(help="Seed of the simulated data.")] = 7,
    items: Annotated[int, typer.Option(help="Items in the simulated legacy ERP.")] = 200,
    keep: Annotated[Path | None, typer.Option(help="Build the demo estate in this folder and keep it.")] = None,
    stream: Annotated[bool, typer.Option(
        "--stream", help="Continuous delivery instead: stream to the planning platform through an outage.")] = False,
    outage_seconds: Annotated[float, typer.Option(help="With --stream: how long the platform is down.")] = 5.0,
    walking_skeleton: Annotated[bool, typer.Option(
        "--walking-skeleton", help="The walking skeleton instead: one legacy ERP to the planning platform.")] = False,
    duration: Annotated[float, typer.Option(
        help="Global manufacturer: real seconds the two simulated days take at least.")] = 30.0,
    keep_running: Annotated[bool, typer.Option(
        "--keep-running", help="Global manufacturer: keep the simulated systems running at the end.")] = False,
    erp_europe: Annotated[str, typer.Option(
        "--erp-europe", help="Global manufacturer: ERP Europe is the JSON ERP (sandbox) or a real Tryton (tryton; "
                             "needs the Tryton environment, .venv-tryton or SYNCFABRIC_TRYTON_VENV).")] = "sandbox",
    mes: Annotated[str, typer.Option(
        "--mes", help="Global manufacturer: how the plants' MES publish: auto (MQTT when mosquitto and aiomqtt are "
                      "installed, webhooks otherwise), mqtt or webhooks.")] = "auto",
) -> None:
    """The global manufacturer (three ERPs, four plants' MES, logistics, suppliers, planning) under hybrid sync and
    under nightly batch, measured side by side; or, with --walking-skeleton / --stream, the smaller demos."""
    from syncfabric.sandbox.demo import run_demo

    with _boundary():
        if stream and walking_skeleton:
            raise ConfigError(["--stream and --walking-skeleton are two different demos: choose one"])
        if not (stream or walking_skeleton):
            from syncfabric.sandbox.global_demo import run_global_demo

            transports = {"auto": None, "mqtt": True, "webhooks": False}
            if mes not in transports:
                raise ConfigError([f"--mes is auto, mqtt or webhooks, not {mes!r}"])
            run_global_demo(console, duration=duration, seed=seed, keep_running=keep_running, folder=keep,
                            erp_europe=erp_europe, mqtt=transports[mes])
            return
        if stream:
            from syncfabric.sandbox.stream_demo import run_stream_demo

            run_stream_demo(console, seed=seed, items=items, outage_seconds=outage_seconds, folder=keep)
            return
        run_demo(console, seed=seed, items=items, folder=keep)


@app.command("sap-sandbox")
def sap_sandbox(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 to serve on.")] = 8710,
    user: Annotated[str, typer.Option(help="Basic-auth user.")] = "INTEGRATION",
    password: Annotated[str, typer.Option(envvar="S4_PASSWORD", help="Basic-auth password.")] = "Welcome1!",
    seed: Annotated[int, typer.Option(help="Seed of the simulated company's data.")] = 42,
) -> None:
    """Serve the SAP S/4HANA OData v2 emulator (products, stock, purchase and production orders, suppliers) until
    interrupted; examples/sap-s4hana/estate.yaml points at it."""
    import time

    from syncfabric.sandbox.sap_odata import ROOT, create_app
    from syncfabric.sandbox.server import serve

    with serve(create_app({user: password}, seed=seed), port=port) as url:
        console.print(f"SAP S/4HANA emulator on [bold]{url}{ROOT}/[/] (user {user}); Ctrl-C to stop")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
