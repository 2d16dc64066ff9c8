"""``[supervision]`` in node.toml: the grace and the holiday calendar, checked by ``gwx node check``
as the node would at start — a malformed or missing calendar is a typed refusal, never a traceback."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from node.config import CONFIG_NAME, load_config
from tests.support import REPO, node_check_config_ok, run_gwx

EXAMPLES = REPO / "deploy" / "examples"


def node_with(tmp_path: Path, block: str, calendar: bytes | None = None) -> Path:
    text = (EXAMPLES / "node.toml").read_text("utf-8")
    (tmp_path / CONFIG_NAME).write_text(text + "\n[supervision]\n" + block + "\n", "utf-8")
    if calendar is not None:
        (tmp_path / "holidays.toml").write_bytes(calendar)
    return tmp_path


def test_the_example_calendar_loads_and_node_check_reports_it(tmp_path):
    node = node_with(tmp_path, 'grace_working_days = 2\ncalendar = "holidays-2026.toml"')
    shutil.copy(EXAMPLES / "holidays-2026.toml", node / "holidays-2026.toml")
    settings = load_config(node).supervision
    assert settings.grace_working_days == 2 and not settings.calendar.is_working_day(dt.date(2026, 10, 1))
    assert settings.calendar.is_working_day(dt.date(2026, 10, 10))  # a 调休 Saturday
    out = run_gwx("node", "check", "--dir", node)
    assert node_check_config_ok(out), out.stdout.decode() + out.stderr.decode()
    assert "督办: escalated after 2 working days, calendar" in out.stdout.decode()
    assert "33 holidays, 6 adjusted working days" in out.stdout.decode()


def test_without_a_section_the_default_is_three_working_days_and_weekends(tmp_path):
    (tmp_path / CONFIG_NAME).write_text((EXAMPLES / "node.toml").read_text("utf-8"), "utf-8")
    settings = load_config(tmp_path).supervision
    assert settings.grace_working_days == 3 and settings.calendar_path is None


@pytest.mark.parametrize("block, calendar, code, words", [
    ('calendar = "holidays.toml"', b'holidays = ["2026-10-32"]', "CALENDAR_INVALID", "is not a date"),
    ('calendar = "holidays.toml"', b"workdays = [2026-10-09]", "CALENDAR_INVALID", "Saturday or Sunday"),
    ('calendar = "holidays.toml"', b"holidays = [", "CALENDAR_INVALID", "not UTF-8 TOML"),
    ('calendar = "missing.toml"', None, "CALENDAR_INVALID", "cannot read the holiday calendar"),
    ("grace_working_days = -1", None, "NODE_CONFIG", "grace_working_days"),
    ('grace_working_days = "3"', None, "NODE_CONFIG", "grace_working_days"),
    ("sweep_seconds = 0", None, "NODE_CONFIG", "sweep_seconds"),
    ("grace = 3", None, "NODE_CONFIG", "unknown keys in [supervision]: grace"),
])
def test_node_check_refuses_a_bad_section_or_calendar(tmp_path, block, calendar, code, words):
    node = node_with(tmp_path, block, calendar)
    out = run_gwx("node", "check", "--dir", node)
    err = out.stderr.decode()
    assert out.returncode == 2 and code in err and words in err and "Traceback" not in err, err
