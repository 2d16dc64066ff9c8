"""Fixtures of the clerks' CLI tests: a real local API server in a thread, and a clerk's files to send."""

from __future__ import annotations

import json
import os

import pytest

from tests.node.api.local_api_support import PDF, ThreadedServer, make_env, meta


@pytest.fixture
def node(tmp_path):
    env = make_env(tmp_path)
    with ThreadedServer(env) as server:
        yield env, server


@pytest.fixture
def files(tmp_path):
    d = tmp_path / "files"
    d.mkdir()
    (d / "META.json").write_text(json.dumps(meta(), ensure_ascii=False), "utf-8")
    (d / "body.pdf").write_bytes(PDF)
    (d / "附件1：检查表.xlsx").write_bytes(os.urandom(3000))
    (d / "notes.txt").write_bytes(b"second")
    return d
