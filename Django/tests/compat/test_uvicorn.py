"""compat.uvicorn replaces parts of Uvicorn's WebSocket protocol. What it mends is shown
against real servers in ../proving_ground/tests (test_hostile.py, test_websocket.py)."""

import inspect

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


def test_uvicorn_still_closes_at_once_after_a_protocol_error():
    # The defect WebSocketProtocol works around: upstream closes the transport
    # straight after its close frame. If this line is gone, re-check test_hostile.py
    # without the subclass.
    source = inspect.getsource(WebSocketsSansIOProtocol.handle_parser_exception)
    assert "self.transport.close()" in source


def test_uvicorns_slow_client_internals_are_still_there():
    # WebSocketProtocol's slow-client close replaces keepalive_timeout and waits on the
    # private `writable` event that send() waits on.
    assert "self.conn.fail(1011" in inspect.getsource(WebSocketsSansIOProtocol.keepalive_timeout)
    assert "await self.writable.wait()" in inspect.getsource(WebSocketsSansIOProtocol.send)
    init = inspect.getsource(WebSocketsSansIOProtocol.__init__)
    assert "self.pong_timer" in init and "self.close_timeout" in init
