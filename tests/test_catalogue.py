"""One hardware catalogue for every replica: refreshed hourly by the poll leader, kept in Redis, the last
good copy kept when the Hub fails; the parser and the cost rule of every replica read it."""

from __future__ import annotations

import json

from bot.core.flavors import Catalogue, catalogue_from_json, catalogue_json
from tests.test_approvals import ask, message

ROLES = {"SPACEOPS_APPROVERS": "UAPP", "SPACEOPS_ADMINS": "UADM"}
HARDWARE_LIST = "/api/spaces/hardware"
T0 = 1_800_000_000.0


def catalogue_reads(hub) -> int:
    return len(hub.calls("GET", HARDWARE_LIST))


def test_catalogue_round_trips_and_decodes_tolerantly():
    shipped = Catalogue()
    back = catalogue_from_json(catalogue_json(shipped))
    assert [(f.name, f.price_per_hour) for f in back] == [(f.name, f.price_per_hour) for f in shipped]
    assert catalogue_from_json("not json") is None and catalogue_from_json('{"flavors": 3}') is None
    partly = catalogue_from_json(json.dumps({"v": 2, "flavors": [["x1", "X", "oops", ""], ["x2", "X2", 1.5]]}))
    assert [f.name for f in partly] == ["x2"]


def test_a_flavor_the_hub_added_is_known_to_every_replica_after_the_leaders_refresh(make_bot, hub, slack):
    hub.add_space("acme/chat", hardware="t4-small")
    hub.add_flavor("b300", 9.0, "Nvidia B300")
    leader, other = make_bot(**ROLES), make_bot(**ROLES)

    # Before any refresh, the other replica treats it as unknown (paid at an unknown price).
    before = ask(other, slack, "hw acme/chat b300", user="U1")
    assert "unknown" in json.dumps(message(slack, before)["blocks"])
    other.command(f"approvals cancel {before.id}", user="U1")

    leader.ctx.watcher.tick(T0)
    assert catalogue_reads(hub) == 1
    other.ctx.watcher.tick(T0 + 1)  # not the leader: no refresh
    assert catalogue_reads(hub) == 1
    pending = ask(other, slack, "hw acme/chat b300", user="U1")
    shown = json.dumps(message(slack, pending)["blocks"], ensure_ascii=False)
    assert "$9.00/h · $216.00/day" in shown and "unknown" not in shown
    assert [r.method for r in hub.requests if r.method != "GET"] == []

    # Hourly, not every tick.
    leader.ctx.watcher.tick(T0 + 600)
    assert catalogue_reads(hub) == 1
    leader.ctx.watcher.tick(T0 + 3601)
    assert catalogue_reads(hub) == 2


def test_the_last_good_copy_stays_when_the_hub_fails(make_bot, hub, slack):
    hub.add_flavor("b300", 9.0, "Nvidia B300")
    leader, other = make_bot(), make_bot()
    leader.ctx.watcher.tick(T0)
    hub.hardware_endpoint_up = False
    leader.ctx.watcher.tick(T0 + 3700)
    assert catalogue_reads(hub) == 2
    leader.ctx.watcher.tick(T0 + 3800)  # retried after 5 min, not on every tick
    assert catalogue_reads(hub) == 2
    assert other.ctx.catalogues.current.price("b300") == 9.0
    seen = other.command("flavors")["text"]
    assert "`b300` Nvidia B300" in seen and "$9.00/h" in seen
    assert other.ctx.catalogues.current.source == "hub"
    hub.hardware_endpoint_up = True
    leader.ctx.watcher.tick(T0 + 4000)
    assert catalogue_reads(hub) == 4  # the failed `flavors` read above, then the retry
