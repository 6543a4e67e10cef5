"""The benchmark command runs end to end (smoke mode). It asserts what the report
contains, never how fast anything was: figures come from `make bench`."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from proving_ground import reports
from proving_ground.experiments import bench, bench_clients, bench_profile
from proving_ground.stacks.compose import ROOT


def smoke(command: str, out: Path) -> tuple[subprocess.CompletedProcess, Path]:
    """`python -m proving_ground <command> --mode smoke`, as `make <command>` runs it: its
    output, and the folder it wrote under `out`."""
    result = subprocess.run(
        [sys.executable, "-m", "proving_ground", command, "--mode", "smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (folder,) = out.iterdir()
    return result, folder


def test_bench_smoke_writes_table_json_and_plots(tmp_path):
    result, folder = smoke("bench", tmp_path)
    data = json.loads((folder / "results.json").read_text())
    assert data["machine"]["cores"] and data["machine"]["packages"]["channels"]
    tests = {(row["config"], row["test"], row["target"]) for row in data["rows"]}
    for config in ("ours", "book", "book, our workers", "daphne"):
        assert (config, "http /api/ping", "nginx") in tests
        assert (config, "ws echo", "direct") in tests
        assert (config, "broadcast max N=10", "nginx") in tests
    assert ("ours+pubsub", "broadcast@50/s N=10", "nginx") in tests
    assert ("ours+fanout", "broadcast@50/s N=10", "nginx") in tests
    assert ("bare ASGI", "http", "direct") in tests
    assert all(row["rate"] > 0 for row in data["rows"])
    assert all(row["client_cpu"] is not None for row in data["rows"])
    assert data["facts"]["idle KiB per WebSocket"] > 0
    report = (folder / "results.md").read_text()
    assert "| config | test |" in report and "Targets:" in report
    # nginx's share of the server's CPU, per request and per round trip, is printed.
    assert re.search(r"ws echo: nginx costs -?\d+% .* CPU per round trip: nginx \d+ us", report)
    assert re.search(r"http /api/ping: nginx costs -?\d+% .* CPU per request: nginx", report)
    for plot in ("http.png", "ws_echo.png", "broadcast.png"):
        assert (folder / plot).stat().st_size > 0
    assert "Targets:" in result.stdout


def test_bench_names_the_package_when_wrk_is_missing(tmp_path):
    # Only this Python's own folder on PATH: no wrk.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "proving_ground",
            "bench",
            "--mode",
            "smoke",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        env={"PATH": str(Path(sys.executable).parent)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "wrk (Debian package: wrk)" in result.stderr
    assert "sudo apt-get install wrk" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir()), "nothing is written"


def test_the_keepalive_variant_of_bench_scale_differs_only_in_how_nginx_reaches_django(
    tmp_path,
):
    # `make bench-scale` compares the shipped template with one upstream-keepalive block;
    # the variant must stay a valid config, otherwise the same.
    from proving_ground.experiments.scale import KeepaliveStack
    from proving_ground.stacks.native import NativeStack, free_port

    ports = {"http_port": free_port(), "django_port": free_port()}
    status_port = free_port()
    texts = []
    for cls in (NativeStack, KeepaliveStack):
        stack = cls(run_dir=tmp_path, **ports)  # the same paths: only the config differs
        stack.nginx_status_port = status_port
        assert stack.nginx_test().returncode == 0
        texts.append(set((stack.run_dir / "nginx/conf.d/default.conf").read_text().splitlines()))
    shipped, variant = texts
    assert {line.strip() for line in variant - shipped} == {
        "upstream django_keepalive {",
        f"server 127.0.0.1:{ports['django_port']};",
        "keepalive 32;",
        "keepalive_timeout 60s;",
        "proxy_pass http://django_keepalive;",
    }
    assert {line.strip() for line in shipped - variant} == {"proxy_pass http://$django_upstream;"}


def test_spread_prints_both_sides_per_worker_and_their_broadcast():
    result = subprocess.run(
        [sys.executable, "-m", "proving_ground", "spread", "--sockets", "40", "--receivers", "20"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for side in ("a socket per worker (shipped)", "one shared socket"):
        for opened in ("one after another", "all at once"):
            # Two workers: the sockets each held, adding up to all 40.
            row = re.search(rf"\| {re.escape(side)} \| {opened} \| (\d+) / (\d+) \|", result.stdout)
            assert row and int(row[1]) + int(row[2]) == 40, result.stdout
        assert re.search(
            rf"\| {re.escape(side)} \| \d+ \| [\d.]+ \| [\d.]+ \| \d+ \|", result.stdout
        )


def test_bench_clients_smoke_serves_every_server_and_reports_each_step(tmp_path):
    # make bench-clients, smoke mode: every server of the table, from one run; the
    # figures themselves come from the command, never from here.
    result, folder = smoke("bench-clients", tmp_path)
    data = json.loads((folder / "clients.json").read_text())
    servers = {r["server"]: r for r in data["results"]}
    assert list(servers) == [
        "stack, fanout layer",
        "stack, fanout layer, chat room",
        "stack, core layer",
        "stack, pub/sub layer",
        "daphne, same app",
        "Node, ws",
        "Python, websockets",
    ]
    for name, run in servers.items():
        # Steps of 20 clients, each measured, until the mode's 40 or a p95 past the bound.
        # Whether a step's 8 broadcasts stay within 500 ms is timing (one stall of the
        # machine can pass it), so either verdict is a working command; an error is not.
        steps = [s["clients"] for s in run["steps"]]
        if run["stopped"] == "client bound (40)":
            assert steps == [20, 40] and run["served"] == 40, name
        else:
            assert run["stopped"] == f"p95 over {bench_clients.LIMIT_MS} ms", (name, run)
            assert (steps, run["served"]) in (([20], 0), ([20, 40], 20)), (name, run)
        for step in run["steps"]:
            assert 0 < step["p50_ms"] <= step["p95_ms"] <= step["max_ms"]
            # CPU comes in clock ticks: a smoke's few deliveries may use less than one.
            assert step["cpu_us_per_delivery"] >= 0 and step["kib_per_client"] is not None
    assert data["machine"]["servers"]["node"].startswith("node v")
    report = (folder / "clients.md").read_text()
    assert "| server | via | processes | most clients served | of Node ws's |" in report
    assert "What differs between the sides" in report
    node, ours = servers["Node, ws"]["served"], servers["stack, fanout layer"]["served"]
    ratio = f"{ours / node:.2f}" if node else "-"
    assert f"stack, fanout layer: {ours} clients; Node, ws: {node}; ratio {ratio}" in result.stdout
    assert (folder / "clients.png").stat().st_size > 0
    assert report in result.stdout


def bench_clients_refusing(*args: str, **options) -> subprocess.CompletedProcess:
    """`python -m proving_ground bench-clients ARGS`, which must refuse to run: exit
    status 1 and a message, no traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "proving_ground", "bench-clients", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        **options,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    return result


def test_bench_clients_runs_the_servers_asked_for_and_names_the_others():
    chosen = bench_clients.servers_under_test(["node", "fanout"])
    assert [server.name for server in chosen] == ["stack, fanout layer", "Node, ws"]
    result = bench_clients_refusing("--servers", "fanout,nod")
    assert "no server nod; the servers are fanout, fanout-chat, core," in result.stderr


def test_bench_clients_names_the_package_when_node_is_missing(tmp_path):
    path = {"PATH": str(Path(sys.executable).parent)}
    result = bench_clients_refusing("--out", str(tmp_path), env=path)
    assert "node (Debian package: nodejs)" in result.stderr
    assert not list(tmp_path.iterdir())


def test_bench_memory_smoke_puts_each_sockets_bytes_down_to_who_asked(tmp_path):
    # make bench-memory, smoke mode: the breakdown adds up, each socket's server and
    # Channels objects among it.
    result, folder = smoke("bench-memory", tmp_path)
    layers = json.loads((folder / "memory.json").read_text())
    assert list(layers) == ["core", "fanout"]
    for layer, data in layers.items():
        assert data["sockets"] == 100 and data["rss_kib"] > 0
        owners = data["owners"]
        assert sum(owners.values()) == pytest.approx(data["traced_kib"])
        # The server's and Channels' own objects: each open socket has them.
        for owner in ("uvicorn", "websockets", "channels"):
            assert owners[owner] > 0.5, (layer, owners)
        assert 10 < data["traced_kib"] < 200, (layer, owners)
    # channels-redis's receive buffers are per socket on its layer only.
    assert layers["core"]["owners"]["channels_redis"] > 0.5
    report = (folder / "memory.md").read_text()
    assert "| who asked for it | KiB per socket | share |" in report
    assert "## What the fanout layer takes away per socket, against core" in report
    assert report in result.stdout


def test_bench_presence_smoke_counts_redis_commands_on_both_sides(tmp_path):
    # make bench-presence, smoke mode: presence on costs Redis commands per idle socket
    # (its refreshes: ZADD, EXPIRE, ZRANGEBYSCORE), off costs none of those; both sides
    # broadcast.
    result, folder = smoke("bench-presence", tmp_path)
    on, off = json.loads((folder / "presence.json").read_text())
    assert (on["name"], off["name"]) == ("presence on", "presence off")
    for command in ("zadd", "expire", "zrangebyscore"):
        assert on["by_command"].get(command, 0) > 0, on["by_command"]
        assert off["by_command"].get(command, 0) <= 0, off["by_command"]
    assert on["commands_per_socket_minute"] > off["commands_per_socket_minute"]
    assert on["deliveries"] > 0 and off["deliveries"] > 0
    report = (folder / "presence.md").read_text()
    assert report in result.stdout


def test_bench_profile_smoke_samples_the_workers_during_broadcasts(tmp_path):
    # make bench-profile, smoke mode: py-spy ran on each worker in each profiled window and
    # its samples came back, every one put down to code the workers run; with metrics off,
    # nothing counts. Which packages a window's samples fall in is chance, so that is not
    # asserted here: test_bench_profile.py proves the attribution on recorded samples.
    # Samples are certain: each window holds at least 0.05 s of the workers' CPU, sampled
    # at 1000 a second (MODES["smoke"]): 50 samples or more expected (70 to 255 seen), and
    # none at all with odds of e**-50, about 2e-22, per window. A sample py-spy read as it
    # changed (bench_profile.UNREADABLE) is chance too: 1 in about 200 seen; a fifth of a
    # window's 50 or more, at even 1 in 100, has odds under 1e-12.
    result, folder = smoke("bench-profile", tmp_path)
    data = json.loads((folder / "profile.json").read_text())
    latency = data["latency"]
    assert latency["unprofiled"]["p99 ms"] > 0 and latency["profiled"]["p99 ms"] > 0
    profile = latency["profile"]
    assert profile["deliveries"] == 10 * 50
    workers = latency["workers"]
    windows = {"latency": profile, **data["metrics"]}
    for name, window in windows.items():
        assert len(window["workers"]) == workers, (name, window["workers"])
        assert window["samples"] == sum(window["workers"]) > 0, name
        assert sum(window["owners"].values()) == window["samples"], name
        owners = window["owners"]
        unreadable = owners.get(bench_profile.UNREADABLE, 0)
        assert unreadable <= window["samples"] / 5, (name, owners)
        unknown = [
            owner
            for owner in owners
            if owner != bench_profile.UNREADABLE and not bench_profile.is_known(owner)
        ]
        assert not unknown, (name, owners)
        assert window["cpu_s"] > 0, name
    off = data["metrics"]["metrics off"]
    counting = [f for f in off["functions"] if "Tally" in f or "(prometheus_client/" in f]
    assert not counting, counting
    report = (folder / "profile.md").read_text()
    assert "| who runs | us per delivery | share |" in report
    assert report in result.stdout


def test_median_interval_is_the_sign_tests():
    # The 95% sign-test intervals: the 4th and 13th of 16 values, the 2nd and 9th of 10.
    assert reports.median_interval([float(v) for v in range(16, 0, -1)]) == (4.0, 13.0)
    assert reports.median_interval(list(range(1, 11))) == (2, 9)
    with pytest.raises(ValueError, match="too few"):
        reports.median_interval([1, 2, 3, 4, 5])


def test_the_metrics_cost_line_gives_the_median_its_interval_and_the_verdict():
    def side(config, paired):
        extra = {"django us per op": 100.0, **({"paired": paired} if paired else {})}
        return bench.Row(config, "broadcast max N=100", "nginx", 1000.0, extra=extra)

    # 16 rounds: costs 1% to 16%, CPU +0.1% to +1.6%; the control's all 0.
    costs = [(n / 100, n / 1000) for n in range(1, 17)]
    rows = [
        side("ours", costs),
        side("ours, metrics off", None),
        side("ours, control", [(0.0, 0.0)] * 16),
    ]
    line, control = [
        line for line in bench.targets(rows, {}) if line.lstrip().startswith(("broad", "control"))
    ]
    assert "metrics on cost 8.5% of the throughput" in line
    assert "target <= 3%: missed" in line
    assert "95% interval of the median 4.0% to 13.0%" in line
    assert "95% interval of the median +0.4% to +1.3%" in line
    assert "95% interval of the median 0.0% to 0.0%" in control
    rows[0] = side("ours", [(cost / 10, cpu) for cost, cpu in costs])
    (line,) = [line for line in bench.targets(rows, {}) if line.startswith("broad")]
    assert "metrics on cost 0.9% of the throughput" in line and "3%: met" in line
