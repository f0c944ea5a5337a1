"""A Socket Mode emulator: a local WebSocket server speaking Slack's envelope format.

The Slack Web API emulator's `apps.connections.open` answers its `ws://` URL; the bot's Socket Mode client
connects, gets `hello`, and acknowledges each envelope the test sends with `{"envelope_id": …}`.
`stop_answering_pings()` makes the sessions open now deaf: the socket stays open, pings get no pong (a
"deaf" connection); sessions opened afterwards answer again.
"""

from __future__ import annotations

import itertools
import json
import threading
import time

from websockets.frames import Opcode
from websockets.sync.server import serve


class SocketModeEmulator:
    def __init__(self):
        self._ids = itertools.count(1)
        self._lock = threading.Condition()
        self.connections: list = []
        self.acks: dict[str, dict] = {}
        self.sessions = 0  # sessions opened so far (a reconnect adds one)
        self._deaf: set[int] = set()  # ids of the connections that no longer answer pings
        self.server = serve(self._session, "127.0.0.1", 0)
        self.port = self.server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="socket-mode-emulator")
        self._thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link/?ticket=emulated"

    def _session(self, websocket) -> None:
        # websockets answers pings inside its protocol object; the one place to keep a pong from going out.
        protocol = websocket.protocol
        send_frame = protocol.send_frame

        def maybe_send(frame):
            if frame.opcode is Opcode.PONG and id(websocket) in self._deaf:
                return
            send_frame(frame)

        protocol.send_frame = maybe_send
        websocket.send(json.dumps({"type": "hello", "num_connections": 1,
                                   "debug_info": {"host": "emulator", "approximate_connection_time": 3600},
                                   "connection_info": {"app_id": "A1"}}))
        with self._lock:
            self.connections.append(websocket)
            self.sessions += 1
            self._lock.notify_all()
        try:
            for message in websocket:
                try:
                    data = json.loads(message)
                except ValueError:
                    continue
                with self._lock:
                    if data.get("envelope_id"):
                        self.acks[data["envelope_id"]] = data
                    self._lock.notify_all()
        except Exception:  # noqa: BLE001 — the client went away
            pass
        finally:
            with self._lock:
                if websocket in self.connections:
                    self.connections.remove(websocket)

    def stop_answering_pings(self) -> None:
        with self._lock:
            self._deaf.update(id(ws) for ws in self.connections)

    def wait(self, predicate, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        with self._lock:
            while not (result := predicate()) and time.monotonic() < deadline:
                self._lock.wait(0.05)
            return result

    def send(self, kind: str, payload: dict, accepts_response_payload: bool = False) -> str:
        """Send one envelope to the connected client; returns its envelope id."""
        envelope_id = f"env-{next(self._ids)}"
        assert self.wait(lambda: self.connections), "no Socket Mode client connected"
        self.connections[-1].send(json.dumps({"envelope_id": envelope_id, "type": kind, "payload": payload,
                                              "accepts_response_payload": accepts_response_payload}))
        return envelope_id

    def close(self) -> None:
        self.server.shutdown()
        self._thread.join(5)
