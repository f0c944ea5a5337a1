def test_status_end_to_end(bot, hub, slack):
    hub.add_space("acme/chat", hardware="t4-medium", sleep=3600)
    seen = bot.command("/space status acme/chat")
    assert "running" in seen["text"]
    assert [r.path for r in hub.calls("GET")] == ["/api/spaces/acme/chat/runtime"]
