"""README's "OA systems over SOAP" example works as written, against a real node hosting the
units it names: only the node's address and directory are filled in."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from node.localnet import LocalNetwork, notice_pdf

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]
UNITS = [{"code": "91350100M000100Y43", "name": "福州市人民政府办公厅"},
         {"code": "11100000000013127D", "name": "临沂市人民政府办公室"},
         {"code": "11370000MB00000015", "name": "临沂市应急管理局"}]


def test_the_readme_zeep_example_runs_as_written(tmp_path, monkeypatch, capsys):
    readme = (ROOT / "README.md").read_text("utf-8")
    code = re.search(r"^## OA systems over SOAP\n.*?```python\n(.*?)```", readme, re.M | re.S).group(1)
    net = LocalNetwork(tmp_path / "net")
    node = net.add_node("fuzhou", UNITS)
    net.start(node)
    try:
        work = tmp_path / "oa"
        (work / "deploy" / "examples").mkdir(parents=True)
        shutil.copy(ROOT / "deploy" / "examples" / "META.json", work / "deploy" / "examples" / "META.json")
        (work / "正文.pdf").write_bytes(notice_pdf())
        (work / "重点单位名单.txt").write_text("临沂市应急管理局\n临沂市财政局\n", "utf-8")
        monkeypatch.chdir(work)
        exec(code.replace("http://127.0.0.1:7080", node.ready["local_url"])  # the README's own code
             .replace("NODE_DIR", str(node.directory)), {"__name__": "readme"})
    finally:
        net.stop_all()
    printed = capsys.readouterr().out.splitlines()
    assert "待签收" in printed[0] or "已送达" in printed[0]
    assert "('11100000000013127D', '已签收')" in printed[-1]
    assert len(list(work.glob("*.pdf"))) == 2  # the body the receiver saved beside 正文.pdf
