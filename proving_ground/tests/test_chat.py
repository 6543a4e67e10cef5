"""The chat through nginx on the real stack: two worker processes, MySQL, Redis."""

import json
import uuid

from proving_ground.clients import one_per_worker
from proving_ground.faults import mysql_connect

from .conftest import open_socket, receive_until


async def join_on_distinct_workers(stack, path: str) -> list:
    """One socket to `path` on each Uvicorn worker."""

    async def connect():
        socket, history = await open_socket(stack, path)
        assert history["type"] == "history"
        return socket, history["worker_pid"]

    chosen, spares = await one_per_worker(stack.gunicorn_workers(), connect)
    for socket in spares:
        await socket.close()
    return list(chosen.values())


async def test_two_workers_chat_store_in_mysql_and_replay_as_history(stack):
    room = f"stack-{uuid.uuid4().hex[:10]}"
    path = f"/ws/talk/{room}/"
    ann, bob = await join_on_distinct_workers(stack, path)
    sent = {"ann": "こんにちは、世界 🍣🎉", "bob": "hello <b>back</b> 👋"}
    try:
        for nickname, sender in (("ann", ann), ("bob", bob)):
            await sender.send(
                json.dumps({"type": "message", "nickname": nickname, "text": sent[nickname]})
            )
            for socket in (ann, bob):
                frame = await receive_until(
                    socket, lambda f, who=nickname: f["type"] == "message" and f["nickname"] == who
                )
                assert frame["text"] == sent[nickname] and frame["room"] == room
    finally:
        await ann.close()
        await bob.close()

    connection = mysql_connect(stack)
    try:
        cursor = connection.cursor()
        cursor.execute(
            "SELECT m.nickname, m.text FROM talk_message m JOIN talk_room r ON r.id = m.room_id"
            " WHERE r.slug = %s ORDER BY m.id",
            [room],
        )
        assert cursor.fetchall() == (("ann", sent["ann"]), ("bob", sent["bob"]))
    finally:
        connection.close()

    late, history = await open_socket(stack, path)
    async with late:
        assert [(m["nickname"], m["text"]) for m in history["messages"]] == list(sent.items())


async def test_bad_room_name_through_nginx_is_refused_with_an_error(stack):
    socket, frame = await open_socket(stack, "/ws/talk/..%2F..%2Fetc/")
    async with socket:
        assert frame["type"] == "error" and "room names are" in frame["detail"]
        await socket.wait_closed()
        assert socket.close_code == 4400
