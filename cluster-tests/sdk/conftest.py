"""Starts a real mock provider and a real Tollgate node (the built binaries) for the SDK tests."""

import os
import pathlib
import subprocess
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN_DIR = pathlib.Path(os.environ.get("TOLLGATE_BIN_DIR", ROOT / "target" / "debug"))
MASTER_KEY = "sk-sdk-test-master"

MOCK_YAML = """
faults:
  - { model: rate-limited, kind: "429" }
"""

NODE_YAML = """
model_list:
  - model_name: gpt-4o-mini
    litellm_params: {{ model: openai/mock-gpt, api_base: "{mock}/v1", api_key: sk-upstream }}
  - model_name: text-embedding-3-small
    litellm_params: {{ model: openai/mock-embedding, api_base: "{mock}/v1" }}
  - model_name: limited
    litellm_params: {{ model: openai/rate-limited, api_base: "{mock}/v1" }}
  - model_name: priced
    litellm_params: {{ model: openai/mock-gpt, api_base: "{mock}/v1", input_cost_per_token: 0.000001, output_cost_per_token: 0.000002 }}
general_settings: {{ master_key: {key} }}
"""


def _start(args, workdir):
    log = open(workdir / (pathlib.Path(args[0]).name + ".log"), "w")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True, cwd=workdir)
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"{args[0]} did not start: {line!r}; see {log.name}")
    return proc, line.removeprefix("listening on ")


@pytest.fixture(scope="session")
def gateway():
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="tollgate-sdk-"))
    (workdir / "mock.yaml").write_text(MOCK_YAML)
    mock, mock_url = _start(
        [str(BIN_DIR / "tollgate-mock-provider"), "--host", "127.0.0.1", "--port", "0",
         "--config", str(workdir / "mock.yaml")],
        workdir,
    )
    (workdir / "config.yaml").write_text(NODE_YAML.format(mock=mock_url, key=MASTER_KEY))
    node, node_url = _start(
        [str(BIN_DIR / "tollgate"), "serve", "--admin-port", "0", "--config", str(workdir / "config.yaml"),
         "--host", "127.0.0.1", "--port", "0", "--data-dir", str(workdir / "data")],
        workdir,
    )
    try:
        yield node_url
    finally:
        for proc in (node, mock):
            proc.terminate()
        assert node.wait(timeout=10) == 0, "the node exits 0 on SIGTERM"
        mock.wait(timeout=10)
