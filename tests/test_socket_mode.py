"""Socket Mode: the same app answers a slash command envelope (no WebSocket needed to test the wiring)."""

from __future__ import annotations

from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.socket_mode.request import SocketModeRequest


def test_socket_mode_envelope_runs_the_command(bot, hub, slack):
    hub.add_space("acme/chat")
    handler = SocketModeHandler(bot.app, app_token="xapp-test")
    sent = []
    # Capture what would go back over the WebSocket instead of opening one.
    handler.client.send_socket_mode_response = sent.append
    envelope = {"envelope_id": "E1", "type": "slash_commands", "accepts_response_payload": True, "payload": {
        "team_id": "T1", "channel_id": "C1", "user_id": "U1", "command": "/space", "text": "restart acme/chat",
        "response_url": f"{slack.base}/respond/sock", "trigger_id": "trig.sock"}}
    handler.handle(handler.client, SocketModeRequest.from_dict(envelope))
    assert sent and sent[0].envelope_id == "E1"
    reply = slack.wait(lambda: slack.posts("C1"))          # a followed change: posted by the bot itself
    assert reply[0]["text"].startswith("<@U1> restarted `acme/chat`: now building. The Hub now reports")
    assert len(hub.calls("POST", "/api/spaces/acme/chat/restart")) == 1
