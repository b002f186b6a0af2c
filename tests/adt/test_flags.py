"""The command layer's flag parsers (``adt.flags``): ``--quota``, ``--max-overlap`` (and ``--filter``, see
test_filter_grammar) parse here, and the form spec takes their results."""

from __future__ import annotations

from pathlib import Path

import pytest

from adt.flags import (
    overlap_form,
    parse_backend_args,
    parse_filters,
    parse_overlap_flag,
    parse_quota_flag,
    parse_quotas,
)
from adtbase.errors import InputError
from sampler import FormSpec


def test_quota_flag_parsing_fractions_counts_and_percentages() -> None:
    assert parse_quota_flag("language=zh:0.7,en:0.3") == ("language", {"zh": 0.7, "en": 0.3})
    assert parse_quota_flag("frequency_tier=high:10%,low:50%") == ("frequency_tier", {"high": 0.1, "low": 0.5})
    key, amounts = parse_quota_flag("domain=math:120,law:30")
    assert amounts == {"math": 120, "law": 30} and all(isinstance(v, int) for v in amounts.values())
    assert parse_overlap_flag("round6:0.2") == ("round6", 0.2)
    for bad in ("language", "language=zh", "language=zh:abc", "language=zh:0.5,zh:0.5"):
        with pytest.raises(InputError, match="--quota"):
            parse_quota_flag(bad)


def test_repeated_quota_keys_the_later_flag_wins() -> None:
    assert parse_quotas(["language=zh:0.5", "domain=math:3", "language=en:1.0"]) == {
        "language": {"en": 1.0}, "domain": {"math": 3}}


def test_overlap_flag_errors_and_form_name() -> None:
    assert overlap_form("round-6:0.2") == "round-6" and overlap_form("round-6") == "round-6"
    with pytest.raises(InputError, match=r"--max-overlap 'round6': expected FORM:FRACTION"):
        parse_overlap_flag("round6")
    with pytest.raises(InputError, match="is not a count, fraction or percentage"):
        parse_overlap_flag("round6:lots")


def test_flag_texts_give_the_spec_file_s_spec(tmp_path: Path) -> None:
    path = tmp_path / "round7.yaml"
    path.write_text("size: 600\nquotas:\n  language: {zh: 0.7, en: 0.3}\n  frequency_tier: {high: 0.1, medium: 0.4,"
                    " low: 0.5}\ninclude: {domain: [math, law]}\noverlap:\n  - {form: round6, max_fraction: 0.2}\n"
                    "seed: 7\n", encoding="utf-8")
    earlier = {"round6": ["a", "b"]}
    from_file = FormSpec.from_yaml(path, earlier_forms=earlier)
    from_flags = FormSpec.from_cli(
        size=600, quotas=parse_quotas(["language=zh:70%,en:30%", "frequency_tier=high:0.1,medium:0.4,low:0.5"]),
        filters=parse_filters(["domain=math,law"]), max_overlap=[parse_overlap_flag("round6:0.2")], seed=7,
        earlier_forms=earlier)
    assert from_file.canonical_json() == from_flags.canonical_json()


def test_parse_backend_args() -> None:
    assert parse_backend_args(["theta=0.5", "model=Llama-3", "skip_missing=true", "stop=[\"\\n\"]"]) == {
        "theta": 0.5, "model": "Llama-3", "skip_missing": True, "stop": ["\n"]}
    with pytest.raises(InputError, match="KEY=VALUE"):
        parse_backend_args(["nokey"])
