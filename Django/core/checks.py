"""Readiness checks: each asks one dependency a real question and times the answer."""

import asyncio
import time
from dataclasses import asdict, dataclass, field

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


@dataclass
class CheckResult:
    ok: bool
    ms: float
    detail: dict = field(default_factory=dict)
    error: str = ""


def _database_probe() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    # MySQL's backend knows the full server string ("10.11.19-MariaDB-..."), others a tuple.
    version = getattr(connection, "mysql_server_info", None) or ".".join(
        map(str, connection.get_database_version())
    )
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return {
        "vendor": connection.vendor,
        "is_mariadb": bool(getattr(connection, "mysql_is_mariadb", False)),
        "version": version,
        "pending_migrations": len(pending),
    }


database_probe = database_sync_to_async(_database_probe)


async def channel_layer_round_trip(timeout: float = 2.0) -> dict:
    """Send a message to a fresh channel through the layer and read it back."""
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("CHANNEL_LAYERS has no default layer")
    channel = await layer.new_channel()
    async with asyncio.timeout(timeout):
        await layer.send(channel, {"type": "readiness.ping"})
        await layer.receive(channel)
    backend = type(layer)
    return {"backend": f"{backend.__module__}.{backend.__qualname__}"}


async def _timed(probe) -> CheckResult:
    start = time.perf_counter()
    try:
        detail = await probe()
    except Exception as error:  # a readiness probe reports every failure, never raises
        return CheckResult(False, _ms_since(start), error=f"{type(error).__name__}: {error}")
    return CheckResult(True, _ms_since(start), detail)


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


async def readiness() -> dict[str, CheckResult]:
    database, layer = await asyncio.gather(_timed(database_probe), _timed(channel_layer_round_trip))
    if database.ok and database.detail["pending_migrations"]:
        database.ok = False
        database.error = f"{database.detail['pending_migrations']} migrations not applied"
    return {"database": database, "channel_layer": layer}


def as_dict(results: dict[str, CheckResult]) -> dict:
    return {name: asdict(result) for name, result in results.items()}
