"""The proving ground's one entry point, as the Makefile's targets call it:

    python -m proving_ground COMMAND [options]     # python -m proving_ground: the list

Each command is a module's main(): the stacks (stacks/), the faults and hostile inputs
(faults/), the measurements (experiments/) and the reports (reports/). Each parses its
options with reports.parser and reports through reports/; what a command cannot do (a
missing program, a bad compose file, an unknown server) it raises, and this prints it as
"error: ..." and exits 1."""

import importlib
import sys

from proving_ground.stacks.compose import ComposeError
from proving_ground.stacks.native import StackError

COMMANDS = {
    "native": "proving_ground.stacks.native",
    "faults": "proving_ground.faults",
    "failover": "proving_ground.faults.failover",
    "slow-client": "proving_ground.faults.slow_client",
    "storm": "proving_ground.faults.storm",
    "spread": "proving_ground.experiments.spread",
    "soak": "proving_ground.experiments.soak",
    "bench": "proving_ground.experiments.bench",
    "bench-clients": "proving_ground.experiments.bench_clients",
    "bench-memory": "proving_ground.experiments.bench_memory",
    "bench-profile": "proving_ground.experiments.bench_profile",
    "bench-fanout": "proving_ground.experiments.bench_fanout",
    "bench-presence": "proving_ground.experiments.bench_presence",
    "bench-scale": "proving_ground.experiments.scale",
    "lines": "proving_ground.reports.lines",
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: python -m proving_ground COMMAND [options]  (COMMAND --help: its options)"]
    for command, module in COMMANDS.items():
        summary = (importlib.import_module(module).__doc__ or "").strip().splitlines()[0]
        lines.append(f"  {command.ljust(width)}  {summary}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    command, *options = argv
    if command not in COMMANDS:
        print(f"proving_ground: no command {command!r}\n{usage()}", file=sys.stderr)
        return 2
    sys.argv = [f"python -m proving_ground {command}", *options]
    try:
        return importlib.import_module(COMMANDS[command]).main()
    except (StackError, ComposeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
