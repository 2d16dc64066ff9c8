"""The network directory's 督办 rules win over node.toml's where they are set (node.supervision.settings
.rules_in_force): a node whose node.toml says 3 working days on weekends only escalates on the day
those rules say — unless the directory it holds names the three days after the deadline holidays,
then it waits; the grace it leaves to the node. The real document service, sweep, SQLite store and
a directory signed by the network's signer; the only fake is the clock."""

from __future__ import annotations

import dataclasses
import datetime as dt

from exchange_protocol.supervision import (
    WEEKENDS_ONLY,
    NetworkSupervision,
    WorkCalendar,
    deadline_day,
    escalation_due_at,
)
from node.federation.routing import DirectoryRouter
from node.supervision.settings import rules_in_force
from pki.keystore import write_public_file
from tests.exchange_protocol.directory_support import signed
from tests.node.api.local_api_support import meta, send
from tests.node.supervision.test_escalation import run, supervised_env


def test_the_directorys_calendar_wins_over_node_toml_and_its_grace_is_left_to_the_node(tmp_path):
    env, clock, _ = supervised_env(tmp_path)
    deadline = dt.datetime.fromisoformat(meta()["deadline"])
    due_by_node_toml = escalation_due_at(deadline, WEEKENDS_ONLY, 3)
    grace_days = {WEEKENDS_ONLY.add_working_days(deadline_day(deadline), n) for n in (1, 2, 3)}
    network = NetworkSupervision(calendar=WorkCalendar(frozenset(grace_days)))
    write_public_file(env.config.network_directory_path, signed(supervision=network))
    env.ctx = dataclasses.replace(env.ctx, router=DirectoryRouter(env.config))

    async def scenario(client) -> None:
        escalator = env.service.processor.escalator
        escalator.ctx = env.ctx
        rules = rules_in_force(env.ctx)
        assert (rules.grace_working_days, rules.grace_from, rules.calendar_from) == (3, "node.toml", "directory")
        await send(client, env)
        clock.now = due_by_node_toml
        assert (await escalator.sweep())["escalated"] == 0  # the three days were the network's holidays
        clock.now = escalation_due_at(deadline, network.calendar, 3)
        assert clock.now > due_by_node_toml
        assert (await escalator.sweep())["escalated"] == 1
    run(env, scenario)
