"""`regsync demo --console`: after the demo's runs, serve the web console on this machine until Ctrl-C."""

from __future__ import annotations

from worker.cli.common import console

DEFAULT_PORT = 8400


def serve_console(connection: str, port: int) -> None:
    """Make an operator key for ``connection`` (shown once, as `regsync apikey create` shows one), print the
    console's URL, and serve the web app on 127.0.0.1 until Ctrl-C (the demo's worker keeps running)."""
    import uvicorn

    from worker.api.app import create_app
    from worker.api.keys import create_key
    from worker.ledger.db import session_scope
    from worker.roles import Role

    with session_scope() as session:
        key = create_key(session, connections=[connection], role=Role.OPERATOR, actor="demo", label="demo")
    console.print(f"\n[bold]console[/]: http://127.0.0.1:{port}/console/login", highlight=False)
    console.print(
        f"sign in with this operator API key (shown once): {key.secret}", highlight=False, markup=False
    )
    console.print("serving until Ctrl-C", highlight=False)
    uvicorn.run(create_app(), host="127.0.0.1", port=port, log_level="warning")
