"""Every class of bad rule file gives an error naming the file, line, column and rule."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from streams.core.rules.loader import load_ruleset
from streams.core.rules.source import RuleFileError

GOOD_RULE = """\
required_engine_version: 1
lists:
  - id: bad_guys
    name: Bad guys
    category: custom
    source: tests
    version: "1"
    addresses: ["0xAAAA000000000000000000000000000000000000"]
rules:
  - id: bad-sender
    version: 1.0.0
    name: Bad sender
    description: A deposit from a bad guy.
    typology: sanctions
    severity: critical
    action: freeze
    events: [deposit]
    condition:
      field: from_addresses
      in_list: bad_guys
    summary: "{amount} {asset} from {matched_address}"
"""


def write(tmp_path: Path, text: str, name: str = "pack.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_for(tmp_path: Path, text: str) -> RuleFileError:
    write(tmp_path, text)
    with pytest.raises(RuleFileError) as caught:
        load_ruleset([tmp_path])
    return caught.value


def test_good_file_loads(tmp_path: Path) -> None:
    write(tmp_path, GOOD_RULE)
    ruleset = load_ruleset([tmp_path])
    assert [r.spec.id for r in ruleset.rules] == ["bad-sender"]
    assert len(ruleset.lists["bad_guys"]) == 1
    assert ruleset.version.startswith("rs-")


def test_version_is_deterministic_and_follows_content(tmp_path: Path) -> None:
    write(tmp_path, GOOD_RULE)
    first = load_ruleset([tmp_path]).version
    assert load_ruleset([tmp_path]).version == first
    write(tmp_path, GOOD_RULE.replace("severity: critical", "severity: high"))
    assert load_ruleset([tmp_path]).version != first


def test_bad_yaml(tmp_path: Path) -> None:
    error = error_for(tmp_path, "rules:\n  - id: x\n    name: [unclosed\n")
    assert "pack.yaml:" in str(error) and "not valid YAML" in str(error)


def test_unknown_key_names_line_and_rule(tmp_path: Path) -> None:
    error = error_for(
        tmp_path, GOOD_RULE.replace("    severity: critical\n", "    severity: critical\n    severty: high\n")
    )
    assert str(error).startswith(f"{tmp_path / 'pack.yaml'}:16:5: rule 'bad-sender': unknown key 'severty'")


def test_wrong_type(tmp_path: Path) -> None:
    error = error_for(tmp_path, GOOD_RULE.replace("severity: critical", "severity: urgent"))
    assert ":15:5: rule 'bad-sender': rules.0.severity:" in str(error)
    assert "'urgent'" in str(error)


def test_missing_key(tmp_path: Path) -> None:
    error = error_for(tmp_path, GOOD_RULE.replace("    typology: sanctions\n", ""))
    assert "rule 'bad-sender': required key 'rules.0.typology' is missing" in str(error)


def test_unknown_list(tmp_path: Path) -> None:
    error = error_for(tmp_path, GOOD_RULE.replace("in_list: bad_guys", "in_list: good_guys"))
    assert ":20:7: rule 'bad-sender': condition: unknown list 'good_guys' (lists: bad_guys)" in str(error)


def test_bad_regex(tmp_path: Path) -> None:
    error = error_for(
        tmp_path,
        GOOD_RULE.replace("field: from_addresses\n      in_list: bad_guys", "field: asset\n      matches: '(unclosed'"),
    )
    assert ":20:7: rule 'bad-sender': condition: bad regular expression" in str(error)


def test_duplicate_rule_id(tmp_path: Path) -> None:
    write(tmp_path, GOOD_RULE, "a.yaml")
    second = GOOD_RULE.split("rules:\n")[1]
    write(tmp_path, "required_engine_version: 1\nrules:\n" + second, "b.yaml")
    with pytest.raises(RuleFileError) as caught:
        load_ruleset([tmp_path])
    assert "b.yaml:3:5: rule 'bad-sender': duplicate rule id (first defined at" in str(caught.value)


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    error = error_for(tmp_path, GOOD_RULE.replace("    action: freeze\n", "    action: freeze\n    action: review\n"))
    assert ":17:5: duplicate key 'action'" in str(error)


def test_unknown_placeholder_in_summary(tmp_path: Path) -> None:
    error = error_for(tmp_path, GOOD_RULE.replace("{matched_address}", "{matched_adress}"))
    assert "rule 'bad-sender': unknown placeholder {matched_adress}" in str(error)


def test_engine_version_too_new(tmp_path: Path) -> None:
    error = error_for(tmp_path, GOOD_RULE.replace("required_engine_version: 1", "required_engine_version: 99"))
    assert ":1:1: needs engine version 99; this engine is version 1" in str(error)


def test_python_tags_are_refused(tmp_path: Path) -> None:
    error = error_for(tmp_path, "required_engine_version: !!python/object/apply:os.system ['true']\n")
    assert "not valid YAML" in str(error)


def test_list_needs_file_or_addresses(tmp_path: Path) -> None:
    error = error_for(
        tmp_path, GOOD_RULE.replace('    addresses: ["0xAAAA000000000000000000000000000000000000"]\n', "")
    )
    assert "list 'bad_guys' needs exactly one of 'file' or 'addresses'" in str(error)


def test_missing_list_file(tmp_path: Path) -> None:
    error = error_for(
        tmp_path,
        GOOD_RULE.replace('addresses: ["0xAAAA000000000000000000000000000000000000"]', "file: lists/none.txt"),
    )
    assert ":3:5: list 'bad_guys':" in str(error) and "cannot read list file" in str(error)


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match="no rule files"):
        load_ruleset([tmp_path])


def test_not_a_mapping(tmp_path: Path) -> None:
    error = error_for(tmp_path, "- just\n- a list\n")
    assert "must be a YAML mapping" in str(error)


@pytest.mark.parametrize(
    ("condition", "words"),
    [
        ("{field: amount, gte: lots}", "'lots' is not a number"),
        ("{field: amont, gte: 1}", "unknown field 'amont'"),
        ("{field: amount, gte: 1, lte: 2}", "exactly one operator"),
        ("{field: amount, about: 1}", "unknown operator 'about'"),
        ("{field: asset, gt: BTC}", "gt applies to numbers"),
        ("{field: amount, matches: '1+'}", "matches applies to text fields"),
        ("{field: asset, matches: '(a)\\1'}", "no backreferences or lookaround"),
        ("{field: asset, matches: '^(?=ETH)'}", "invalid perl operator"),
        ("{field: asset, matches: 'x{3,1}'}", "bad regular expression"),
        ("{field: asset, in_list: bad_guys}", "in_list applies to address fields"),
        ("{field: from_addresses, eq: x}", "use in_list or all_in_list"),
        ("{all: []}", "'all' takes a non-empty list"),
        ("{all: [{field: amount, gte: 1}], any: []}", "unexpected key"),
        ("{whatever: 1}", "unknown condition"),
        ("[]", "valid dictionary"),
    ],
)
def test_bad_conditions(tmp_path: Path, condition: str, words: str) -> None:
    text = GOOD_RULE.replace(
        "    condition:\n      field: from_addresses\n      in_list: bad_guys\n",
        f"    condition: {condition}\n",
    )
    error = error_for(tmp_path, text)
    assert "rule 'bad-sender'" in str(error)
    assert words in str(error)


CORRELATION = GOOD_RULE.replace(
    """    condition:
      field: from_addresses
      in_list: bad_guys
""",
    """    correlation:
      type: distinct_count
      field: from_addresses
      timespan: 1h
      condition: {gte: 10}
""",
)


def test_correlation_loads(tmp_path: Path) -> None:
    write(tmp_path, CORRELATION)
    [rule] = load_ruleset([tmp_path]).rules
    assert rule.spec.kind == "correlation"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (("timespan: 1h", "timespan: 1 hour"), "':1 hour' is not a duration".lstrip("':")),
        (("timespan: 1h", "timespan: 60"), "rules.0.correlation.timespan"),
        (("type: distinct_count", "type: median"), "rules.0.correlation.type"),
        (("      field: from_addresses\n", ""), "a distinct_count correlation needs 'field'"),
        (("field: from_addresses", "field: amont"), "correlation: unknown field 'amont'"),
        (("type: distinct_count", "type: sum"), "sum needs a number field"),
        (("condition: {gte: 10}", "condition: {gte: ten}"), "'ten' is not a number"),
        (("condition: {gte: 10}", "condition: {about: 10}"), "rules.0.correlation.condition"),
        (("group_by", "group_by"), ""),
    ],
)
def test_bad_correlations(tmp_path: Path, change: tuple[str, str], words: str) -> None:
    text = CORRELATION.replace(
        "      field: from_addresses\n", "      field: from_addresses\n      group_by: account_id\n"
    )
    text = text.replace(*change)
    write(tmp_path, text)
    if not words:
        load_ruleset([tmp_path])
        return
    with pytest.raises(RuleFileError) as caught:
        load_ruleset([tmp_path])
    assert "rule 'bad-sender'" in str(caught.value)
    assert words in str(caught.value)


def test_group_by_other_than_account_is_refused(tmp_path: Path) -> None:
    text = CORRELATION.replace("      timespan: 1h\n", "      timespan: 1h\n      group_by: to_address\n")
    error = error_for(tmp_path, text)
    assert "rules.0.correlation.group_by" in str(error) and "account_id" in str(error)


SEQUENCE = GOOD_RULE.replace(
    """    events: [deposit]
    condition:
      field: from_addresses
      in_list: bad_guys
""",
    """    events: [deposit, withdrawal]
    sequence:
      maxspan: 30m
      start: {event: deposit, condition: {field: usd_value, gte: 1000}}
      then: {event: withdrawal, total: usd_value, reaches: 0.8}
""",
)


def test_sequence_loads(tmp_path: Path) -> None:
    write(tmp_path, SEQUENCE)
    assert load_ruleset([tmp_path]).rules[0].spec.kind == "sequence"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (("maxspan: 30m", "maxspan: soon"), "'soon' is not a duration"),
        ((", reaches: 0.8", ""), "'total' and 'reaches' go together"),
        (
            ("events: [deposit, withdrawal]", "events: [deposit]"),
            "step 'then' is a withdrawal, which is not in",
        ),
        (("gte: 1000}", "gte: lots}"), "sequence.start.condition: 'lots' is not a number"),
        (("start: {event: deposit,", "start: {event: transfer,"), "rules.0.sequence.start.event"),
        (
            ("    sequence:\n", "    condition: {field: amount, gte: 1}\n    sequence:\n"),
            "a sequence puts its conditions on",
        ),
    ],
)
def test_bad_sequences(tmp_path: Path, change: tuple[str, str], words: str) -> None:
    error = error_for(tmp_path, SEQUENCE.replace(*change))
    assert "rule 'bad-sender'" in str(error)
    assert words in str(error)


def test_sequence_and_correlation_together_are_refused(tmp_path: Path) -> None:
    text = SEQUENCE.replace(
        "    sequence:\n",
        "    correlation: {type: event_count, timespan: 1h, condition: {gte: 2}}\n    sequence:\n",
    )
    assert "one of correlation, sequence and exposure, not correlation and sequence" in str(error_for(tmp_path, text))


def test_single_event_rule_needs_a_condition(tmp_path: Path) -> None:
    text = GOOD_RULE.replace("    condition:\n      field: from_addresses\n      in_list: bad_guys\n", "")
    assert "a single-event rule needs 'condition'" in str(error_for(tmp_path, text))


MACROS = """\
macros:
  - id: big
    condition: {field: amount, gte: 100}
  - id: big_eth
    condition: {all: [{macro: big}, {field: asset, eq: ETH}]}
"""


def test_macros_are_shared_across_files(tmp_path: Path) -> None:
    write(tmp_path, "required_engine_version: 1\n" + MACROS, "a.yaml")
    write(
        tmp_path,
        GOOD_RULE.replace("field: from_addresses\n      in_list: bad_guys", "macro: big_eth"),
        "b.yaml",
    )
    load_ruleset([tmp_path])


def test_unknown_macro(tmp_path: Path) -> None:
    error = error_for(tmp_path, GOOD_RULE.replace("field: from_addresses\n      in_list: bad_guys", "macro: huge"))
    assert ":19:7: rule 'bad-sender': condition: unknown macro 'huge' (macros: none defined)" in str(error)


def test_cyclic_macros(tmp_path: Path) -> None:
    text = GOOD_RULE.replace("rules:\n", MACROS.replace("{macro: big}", "{macro: big_eth}") + "rules:\n")
    text = text.replace("field: from_addresses\n      in_list: bad_guys", "macro: big_eth")
    error = error_for(tmp_path, text)
    assert "macros refer to each other in a cycle: big_eth -> big_eth" in str(error)


def test_error_inside_a_macro_points_at_the_macro(tmp_path: Path) -> None:
    text = GOOD_RULE.replace("rules:\n", MACROS.replace("gte: 100", "gte: lots") + "rules:\n")
    error = error_for(tmp_path, text)
    assert ":11:32: macro 'big': 'lots' is not a number" in str(error)


def test_duplicate_macro(tmp_path: Path) -> None:
    write(tmp_path, "required_engine_version: 1\n" + MACROS, "a.yaml")
    write(tmp_path, "required_engine_version: 1\n" + MACROS, "b.yaml")
    with pytest.raises(
        RuleFileError, match=r"b\.yaml:3:5: duplicate macro id 'big' \(first defined at .*a\.yaml:3:5\)"
    ):
        load_ruleset([tmp_path])


def test_exception_condition_errors_name_the_exception(tmp_path: Path) -> None:
    text = GOOD_RULE.replace(
        "    summary:",
        "    exceptions:\n      - {id: desk, reason: OTC, condition: {field: acount_id, eq: x}}\n    summary:",
    )
    error = error_for(tmp_path, text)
    assert "rule 'bad-sender': exceptions.0.condition: unknown field 'acount_id'" in str(error)


def test_bad_test_case(tmp_path: Path) -> None:
    text = GOOD_RULE + "    tests:\n      - name: t\n        events: [{type: deposit, at: never}]\n        expect: []\n"
    error = error_for(tmp_path, text)
    assert "rule 'bad-sender': rules.0.tests.0.events.0.at: 'never' is not a duration" in str(error)
