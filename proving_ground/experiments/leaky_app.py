"""The stack's ASGI app plus a known leak: every WebSocket session leaves LEAK_KIB behind.

Only the soak's regression test serves it (proving_ground/tests/test_soak.py), to prove that its
bound fails a leak of the size one once found here; nothing in Django/ imports it.
"""

import os

from channels_tutorial.asgi import application as stack_application

LEAK_KIB = float(os.environ.get("LEAK_KIB", "4"))
_kept: list[bytes] = []


async def application(scope, receive, send):
    if scope["type"] == "websocket":
        _kept.append(os.urandom(int(LEAK_KIB * 1024)))  # touched pages: counted in RSS
    await stack_application(scope, receive, send)
