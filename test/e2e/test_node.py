"""Contract 14 (Node): runs `node --test test/e2e/node/` (ws client) against a demo server."""

import os
import shutil
import subprocess

import pytest

from helpers import E2E_DIR, REPO_ROOT, t

NODE_DIR = E2E_DIR / "node"


def node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (apt-get install nodejs)")
    if not (NODE_DIR / "node_modules" / "ws" / "package.json").exists():
        pytest.skip("npm module ws is missing: run test/e2e/setup-node-deps.sh")
    return node


@pytest.mark.node
def test_node_ws_client(server):
    node = node_or_skip()
    env = dict(os.environ, AGENTWS_PORT=str(server.port))
    proc = subprocess.run(
        [node, "--test", "--test-reporter=spec", os.path.relpath(NODE_DIR, REPO_ROOT) + "/"],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=t(90),
    )
    output = proc.stdout + proc.stderr
    print(output)
    assert proc.returncode == 0, f"node --test failed (exit {proc.returncode}):\n{output}"
    assert "# fail 0" in output or "ℹ fail 0" in output, output
