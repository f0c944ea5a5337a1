"""REDIS_URL chooses the client: one server, a Redis Cluster, or Sentinel; bad URLs get a sentence."""

from __future__ import annotations

import pytest

from bot.core.errors import ConfigError
from bot.core.redisurl import parse_redis_url
from bot.core.settings import Settings


def test_single_server_urls_are_read_by_redis_py_as_before():
    for url in ("redis://localhost:6379/0", "rediss://bot:s3cret@redis.example.com:6380/2", "unix:///tmp/r.sock"):
        target = parse_redis_url(url)
        assert (target.kind, target.url) == ("single", url)
    assert parse_redis_url("rediss://h:1/0").tls


def test_cluster_by_scheme_or_flag():
    target = parse_redis_url("redis+cluster://bot:p%40ss@10.0.0.1:7000,10.0.0.2:7001,10.0.0.3")
    assert target.kind == "cluster"
    assert target.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 7001), ("10.0.0.3", 6379))
    assert (target.username, target.password, target.tls) == ("bot", "p@ss", False)
    assert parse_redis_url("rediss+cluster://h:7000").tls
    assert parse_redis_url("redis://h:7000/0", cluster=True).nodes == (("h", 7000),)
    settings = Settings.from_env({"REDIS_URL": "redis://h:7000", "SPACEOPS_REDIS_CLUSTER": "1"})
    assert settings.redis_cluster
    assert Settings.from_env({"REDIS_URL": "redis+cluster://h:7000"}).redis_cluster
    assert not Settings.from_env({"REDIS_URL": "redis://h:7000"}).redis_cluster


def test_sentinel_names_its_primary():
    target = parse_redis_url("redis+sentinel://:pw@s1:26379,s2,s3:26381/mymaster/3")
    assert target.kind == "sentinel" and target.master == "mymaster" and target.db == 3
    assert target.nodes == (("s1", 26379), ("s2", 26379), ("s3", 26381))
    assert (target.username, target.password) == (None, "pw")


@pytest.mark.parametrize("env, words", [
    ({"REDIS_URL": "http://h:6379"}, "REDIS_URL must start with redis://"),
    ({"REDIS_URL": "redis+sentinel://s1:26379,s2:26379"}, "must name the primary"),
    ({"REDIS_URL": "redis+sentinel://s1:26379/m/x"}, "database number"),
    ({"REDIS_URL": "redis+cluster://h:7000/3"}, "only database 0"),
    ({"REDIS_URL": "redis+cluster://h:port"}, "bad host:port"),
    ({"REDIS_URL": "unix:///tmp/r.sock", "SPACEOPS_REDIS_CLUSTER": "1"}, "not a unix socket"),
    ({"REDIS_URL": "redis://h", "SPACEOPS_REDIS_CLUSTER": "maybe"}, "SPACEOPS_REDIS_CLUSTER='maybe' must be 1 or 0"),
])
def test_bad_urls_are_a_sentence_naming_the_variable(env, words):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert words in caught.value.sentence


def test_a_password_never_appears_in_the_sentence():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"REDIS_URL": "http://bot:hunter2@h:6379"})
    assert "hunter2" not in caught.value.sentence and "bot:***@h:6379" in caught.value.sentence


def test_require_names_every_missing_setting_at_once():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({}).require("SLACK_BOT_TOKEN", "HF_TOKEN",
                                      either=(("SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"),))
    sentence = caught.value.sentence
    for name in ("SLACK_BOT_TOKEN", "HF_TOKEN", "SLACK_SIGNING_SECRET or SLACK_APP_TOKEN"):
        assert name in sentence
    Settings.from_env({"SLACK_BOT_TOKEN": "xoxb-1", "HF_TOKEN": "hf", "SLACK_APP_TOKEN": "xapp-1"}).require(
        "SLACK_BOT_TOKEN", "HF_TOKEN", either=(("SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"),))


def test_no_script_runs_inside_a_pipeline():
    """Redis Cluster pipelines cannot carry scripts: every registered script is called on the client itself."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    registered = 0
    for path in list((root / "bot").rglob("*.py")) + list((root / "handlers").rglob("*.py")):
        text = path.read_text()
        for name in re.findall(r"self\.(\w+) = \w+\.register_script\(", text):
            registered += 1
            for call in re.finditer(rf"self\.{name}\((.*?)\)\s*$", text, re.M | re.S):
                # A pipeline is allowed only on the branch that a Redis Cluster never takes.
                guarded = "redis.cluster.RedisCluster" in text[max(0, call.start() - 600):call.start()]
                assert "client=" not in call.group(1) or guarded, f"{path.name}: {name} runs in a pipeline"
    assert registered >= 5
