"""``adt generate`` against a live OpenAI-compatible server: `vllm serve` of the tiny random local model (the
server the runners' live tests use, from .venv-vllm). The tiny model writes no valid item, so this proves the
path a real server takes end to end: calls and tokens counted from the server's usage, every output kept
(as a rejected item with the parse error, or a draft if it ever parsed), the bank verifying afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from adt.cli import cli
from itembank import open_bank
from runners.vllm_backend import DEFAULT_WORKER_PYTHON

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(not DEFAULT_WORKER_PYTHON.exists(),
                       reason=f"{DEFAULT_WORKER_PYTHON} absent: `make install` builds the vLLM CPU environment"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from runners import build_tiny_model
    from runners.vllm_server import LocalVLLMServer

    model = build_tiny_model(tmp_path_factory.mktemp("tiny_llama"), seed=0)
    with LocalVLLMServer(model, served_name="tiny", startup_timeout_s=420) as srv:
        yield srv


def test_generate_against_vllm_serve_keeps_every_output(server, tmp_path: Path) -> None:  # noqa: ANN001
    bank = tmp_path / "b.duckdb"
    run = CliRunner().invoke
    assert run(cli, ["--bank", str(bank), "init"]).exit_code == 0
    res = run(cli, ["--bank", str(bank), "generate", "topic", "domain=finance", "--n", "3", "--seed", "4",
                    "--max-new-tokens", "24", "--backend", "openai", "--model", "tiny",
                    "--backend-arg", f"base_url={server.base_url}", "--json"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    out = json.loads(res.output)
    assert out["calls"] == 3 and out["failed"] is None
    assert out["tokens_in"] > 3 * 50 and 0 < out["tokens_out"] <= 3 * 24   # the server's own usage figures
    assert out["drafts"] + out["rejected"] + out["duplicates"] == 3
    with open_bank(bank) as b:
        assert len(b.items(include_retired=True)) == out["drafts"] + out["rejected"]
        reasons = [d["reason"] for d in b.review_decisions(out["rejected_ids"]).values()]
        assert b.verify().ok
    assert all(r.startswith("malformed generator output: ") for r in reasons)
