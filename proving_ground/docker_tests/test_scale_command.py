"""`make bench-scale` runs end to end on the engine (one rung, one short run). It asserts
what the report contains, never how fast anything was."""

import re
import subprocess
import sys

from proving_ground.stacks.compose import ROOT


def test_bench_scale_prints_the_keepalive_table_and_a_rung():
    rung = "1 container, 3 workers"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "proving_ground",
            "bench-scale",
            "--no-swarm",
            "--runs",
            "1",
            "--seconds",
            "1",
            "--rungs",
            rung,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for variant in ("per-request DNS (shipped)", "upstream keepalive"):
        assert re.search(rf"^\| {re.escape(variant)} \| \d+ \|", out, re.M), out
    row = re.search(rf"^\| {rung} \| (\d+) \| (\d+) \|.* \| 0 \|$", out, re.M)
    assert row and int(row.group(1)) > 0, out
