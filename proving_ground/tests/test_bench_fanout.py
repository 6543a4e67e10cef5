"""`make bench-fanout` end to end (smoke mode), and its bare WebSocket client against the
real stack. It asserts what the report contains, never how fast anything was."""

import asyncio
import json

from proving_ground.experiments.bench_fanout import ROUTES, Socket

from .test_bench import smoke


def test_bench_fanout_smoke_measures_each_layer_on_each_route(tmp_path):
    result, folder = smoke("bench-fanout", tmp_path)
    data = json.loads((folder / "fanout.json").read_text())
    rows = {(r["layer"], r["route"]): r for r in data["results"]}
    layers = ("core", "pubsub", "fanout")
    assert list(rows) == [(layer, route) for layer in layers for route in ROUTES]
    for name, row in rows.items():
        # Every broadcast sent was complete on every socket: the run waits for each.
        assert row["broadcasts"] >= 1 and len(row["completions_ms"]) == row["broadcasts"], name
        assert row["deliveries_per_s"] > 0 and 0 < row["p50_ms"] <= row["p95_ms"], name
        # Seconds of broadcasts: the worker's CPU is many clock ticks.
        assert row["worker_us"] > 0 and row["redis_us"] >= 0, name
    report = (folder / "fanout.md").read_text()
    assert "| layer | route | deliveries/s |" in report and report in result.stdout


async def test_the_bare_client_speaks_websocket_with_the_stack(stack):
    # Handshake, a masked frame from the client, unmasked ones back, as the echo says.
    socket = await Socket.open(stack.django_url.replace("http", "ws") + "/ws/echo/", stack.http_url)
    try:
        opcode, hello = await asyncio.wait_for(socket.frame(), 10)
        assert opcode == 0x1 and json.loads(hello)["type"] == "hello"
        text = "x" * 300  # past the 126-byte length form both ways
        socket.send(json.dumps({"type": "echo", "text": text}).encode())
        _, echo = await asyncio.wait_for(socket.frame(), 10)
        assert json.loads(echo)["text"] == text
    finally:
        socket.close()
