"""The OA field mapping: the example file codes every field as a 2009 OA expects, pre-2012 kind
and urgency names resolve through the legacy tables, and every bad file is refused whole at load
with OA_MAPPING_INVALID naming the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from adapters.oa_push.errors import OaMappingInvalid
from adapters.oa_push.mapping import ReceivedDocument, StatusChange, load_mapping, parse_mapping
from pki.unit_code import make_unit_code

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "examples" / "oa-mapping.toml"
SENDER = make_unit_code("11110000MB0123456")
RECEIVER = make_unit_code("11110000MB0654321")


def example_raw() -> dict:
    return tomllib.loads(EXAMPLE.read_text("utf-8"))


def document(**meta) -> ReceivedDocument:
    base = {"kind": "通知", "title": "关于做好冬季防火工作的通知", "doc_number": "临政发〔2026〕12号",
            "issuers": [SENDER], "to": [RECEIVER], "written_on": "2026-11-20", "urgency": None,
            "classification": "非密", "deadline": "2026-11-23T09:00:00Z"}
    return ReceivedDocument(doc_id="gw.2026.0001", event_id="node-a:17", unit=RECEIVER, from_unit=SENDER,
                            received_at="2026-11-30T02:03:04+00:00", meta=base | meta, body=b"%PDF-1.7 body",
                            attachments=(("附件1.pdf", b"one"), ("附件2.ofd", b"two")), from_unit_name="临江市人民政府")


def test_example_codes_every_field_of_a_received_document():
    args = load_mapping(EXAMPLE).received_arguments(document())
    assert args == {
        "gwbs": "gw.2026.0001", "sjbs": "node-a:17", "wjbt": "关于做好冬季防火工作的通知", "wz": "01", "jjcd": "3",
        "mj": "0", "fwzh": "临政发〔2026〕12号", "fwdw": f"{SENDER[8:16]}-{SENDER[16]}", "fwdwmc": "临江市人民政府",
        "swdw": f"{RECEIVER[8:16]}-{RECEIVER[16]}", "cwrq": "20261120",
        "blsx": "2026-11-23 17:00:00",  # +08:00, as the OA reads times
        "sdsj": "2026-11-30 10:03:04", "zw": b"%PDF-1.7 body",
        "fj": {"Fujian": [{"fjmc": "附件1.pdf", "fjnr": b"one"}, {"fjmc": "附件2.ofd", "fjnr": b"two"}]},
        "lyxt": "GWX"}


@pytest.mark.parametrize(("kind", "code"), [
    ("纪要", "06"),  # the OA calls it 会议纪要 (renamed in 2012)
    ("意见", "08"),  # the OA has only 指示 (lossy legacy kind)
    ("决议", "99"),  # no name for it at this OA: kind_other
    ("命令", "10"), ("令", "10"),
])
def test_kinds_reach_the_oa_through_the_legacy_table(kind, code):
    assert load_mapping(EXAMPLE).received_arguments(document(kind=kind))["wz"] == code


def test_lossy_legacy_choices_are_noted_for_the_operator():
    notes = load_mapping(EXAMPLE).notes
    assert len(notes) == 1 and notes[0].startswith("指示 stands for 意见")


@pytest.mark.parametrize(("urgency", "code"), [("特急", "1"), ("加急", "2"), (None, "3")])
def test_urgency_codes_by_the_oas_old_grade_names(urgency, code):
    assert load_mapping(EXAMPLE).received_arguments(document(urgency=urgency))["jjcd"] == code


def test_secrecy_level_with_a_period_is_coded_by_its_level():
    assert load_mapping(EXAMPLE).received_arguments(document(classification="机密★1年"))["mj"] == "2"


def test_the_closest_name_wins_whatever_the_order():
    raw = example_raw()
    raw["kinds"] = {"条例": "21", "规定": "22", "通知": "01", "意见": "30", "指示": "08", "纪要": "31",
                    "会议纪要": "06"}
    mapping = parse_mapping(raw)
    assert mapping.received_arguments(document(kind="通知"))["wz"] == "01"
    assert mapping.received_arguments(document(kind="意见"))["wz"] == "30"
    assert mapping.received_arguments(document(kind="纪要"))["wz"] == "31"
    assert mapping.notes == ()


def test_status_change_arguments():
    change = StatusChange(doc_id="gw.2026.0001", event_id="node-a:20", unit=SENDER, status="returned",
                          recipient_unit=RECEIVER, when="2026-11-30T01:00:00Z", who="王五", reason="非本单位职责")
    args = load_mapping(EXAMPLE).status_arguments(change)
    assert args == {"gwbs": "gw.2026.0001", "sjbs": "node-a:20", "zt": "TH", "jsdw": f"{RECEIVER[8:16]}-{RECEIVER[16]}",
                    "czr": "王五", "czsj": "2026-11-30 09:00:00", "yy": "非本单位职责"}


def test_attachments_as_a_plain_list_and_as_base64():
    raw = example_raw()
    raw["received"]["fj"] = {"attachments": {"mc": "name", "nr": "content_base64"}}
    raw["received"]["zw"] = "body_base64"
    args = parse_mapping(raw).received_arguments(document())
    assert args["fj"] == [{"mc": "附件1.pdf", "nr": "b25l"}, {"mc": "附件2.ofd", "nr": "dHdv"}]
    assert args["zw"] == "JVBERi0xLjcgYm9keQ=="


def test_unit_code_formats_and_the_oas_own_ids():
    raw = example_raw()
    raw["unit_codes"] = {"format": "organization_code", "names": {SENDER.lower(): "OA-0007"}}
    args = parse_mapping(raw).received_arguments(document())
    assert args["fwdw"] == "OA-0007" and args["swdw"] == RECEIVER[8:17]
    raw["unit_codes"] = {}
    assert parse_mapping(raw).received_arguments(document())["swdw"] == RECEIVER


def _refused(change, key_fragment: str, message_fragment: str) -> None:
    raw = example_raw()
    change(raw)
    with pytest.raises(OaMappingInvalid) as caught:
        parse_mapping(raw)
    assert caught.value.code == "OA_MAPPING_INVALID"
    assert key_fragment in caught.value.details["key"]
    assert message_fragment in caught.value.message


@pytest.mark.parametrize(("change", "key", "message"), [
    (lambda r: r.pop("kind_other"), "kinds", "no code for 决议"),
    (lambda r: r["kinds"].update({"指令": "77"}), "kinds.指令", "neither one of the 15 kinds"),
    (lambda r: r["kinds"].update({"令": "11"}), "kinds", "both stand for 命令"),
    (lambda r: r["kinds"].update({"通知": 1}), "kinds.通知", "must be a string"),
    (lambda r: r["urgency"].pop("平件"), "urgency", "平件 (no urgency)"),
    (lambda r: r["urgency"].update({"普通": "4"}), "urgency.普通", "same grade"),
    (lambda r: r["urgency"].update({"十万火急": "0"}), "urgency.十万火急", "none of 特急"),
    (lambda r: r["secrecy"].pop("绝密"), "secrecy", "no code for 绝密"),
    (lambda r: r["secrecy"].update({"内部": "9"}), "secrecy.内部", "not 非密"),
    (lambda r: r["status"].pop("failed"), "status", "no code for failed"),
    (lambda r: r["status"].update({"registered": "DJ"}), "status.registered", "none of"),
    (lambda r: r.pop("status_change"), "status", "without a [status_change]"),
    (lambda r: r["dates"].update({"date": "%Y%m"}), "dates.date", "lacks %d"),
    (lambda r: r["dates"].update({"datetime": "%Y-%m-%d %I:%M %p"}), "dates.datetime", "%I is not one of"),
    (lambda r: r["dates"].update({"timezone": "Asia/Shanghai"}), "dates.timezone", "an offset"),
    (lambda r: r["unit_codes"].update({"format": "uscc"}), "unit_codes.format", "none of gb32100"),
    (lambda r: r["unit_codes"].update({"names": {"12345": "X"}}), "unit_codes.names", "18 characters"),
    (lambda r: r["received"].update({"bt": "titel"}), "received.bt", "not one of doc_id"),
    (lambda r: r["received"].update({"bt": 3}), "received.bt", "must be one of our values"),
    (lambda r: r["status_change"].update({"fj": {"attachments": {"mc": "name"}}}), "status_change.fj",
     "must be one of our values"),
    (lambda r: r["received"].update({"fj": {"attachments": {"mc": "filename"}}}), "received.fj", "attachments ="),
    (lambda r: r["received"].update({"fj": {"attachments": {"mc": "name"}, "item": ""}}), "received.fj", "item"),
    (lambda r: r["received"].pop("gwbs"), "received", "must give the OA doc_id"),
    (lambda r: r["status_change"].pop("sjbs"), "status_change", "must give the OA event_id"),
    (lambda r: r.update({"answer": {"busy": ["2"]}}), "answer.accepted", "at least one"),
    (lambda r: r.update({"answer": {"accepted": ["1"], "busy": ["1"]}}), "answer.busy", "both accepted and busy"),
    (lambda r: r.update({"answer": {"accepted": [1]}}), "answer.accepted", "list of the OA's answers"),
    (lambda r: r.update({"answer": {"accepted": ["1"], "ok": ["1"]}}), "answer", "unknown keys in [answer]"),
    (lambda r: r.update({"recieved": {}}), "recieved", "unknown keys"),
    (lambda r: r.pop("received"), "received", "must be a table"),
])
def test_a_bad_mapping_is_refused_naming_the_key(change, key, message):
    _refused(change, key, message)


def test_a_kind_and_its_old_name_together_are_not_ambiguous():
    raw = example_raw()
    raw["kinds"]["纪要"] = "77"
    assert parse_mapping(raw).received_arguments(document(kind="纪要"))["wz"] == "77"


def test_status_change_without_status_codes_is_refused():
    _refused(lambda r: r.pop("status"), "status", "must be a table")


def test_load_names_the_file(tmp_path):
    with pytest.raises(OaMappingInvalid, match="does not exist"):
        load_mapping(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[kinds\n", "utf-8")
    with pytest.raises(OaMappingInvalid, match="cannot be read as TOML") as caught:
        load_mapping(bad)
    assert caught.value.details["file"] == str(bad)
    broken = tmp_path / "broken.toml"
    raw = EXAMPLE.read_text("utf-8").replace('"绝密" = "3"', "")
    broken.write_text(raw, "utf-8")
    with pytest.raises(OaMappingInvalid) as caught:
        load_mapping(broken)
    assert str(broken) in caught.value.message and caught.value.details["key"] == "secrecy"


def test_the_examples_commented_answer_table_loads_when_uncommented():
    text = EXAMPLE.read_text("utf-8")
    head, tail = text.split("# [answer]", 1)
    text = head + "[answer]" + tail.replace("\n# ", "\n")
    answer = parse_mapping(tomllib.loads(text)).answer
    assert answer.accepted == ("成功", "重复", "1") and answer.busy == ("系统繁忙",) and answer.field == "jg"
    assert answer.text_of({"jg": " 1 "}) == "1"
