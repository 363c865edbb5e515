"""Contract 14 (browser): headless Chromium's WebSocket against the demo via playwright-core."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import E2E_DIR, t

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))


@pytest.mark.browser
def test_browser_echo(server):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (apt-get install nodejs)")
    if not (E2E_DIR / "node" / "node_modules" / "playwright-core" / "package.json").exists():
        pytest.skip("npm module playwright-core is missing: run test/e2e/setup-node-deps.sh")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    env = dict(os.environ, AGENTWS_PORT=str(server.port), CHROMIUM_PATH=str(CHROMIUM))
    proc = subprocess.run(
        [node, str(E2E_DIR / "browser" / "run_echo.mjs")],
        cwd=E2E_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=t(90),
    )
    assert proc.returncode == 0, f"browser driver failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(result, indent=1))
    assert result["errors"] == [], result
    assert result.get("opened"), result
    assert result.get("protocol") == "agentws.v1", result
    assert result.get("textIsString") and result.get("textOk"), result
    for i in range(2):
        assert result.get(f"binary{i}IsArrayBuffer") and result.get(f"binary{i}Ok"), result
    assert result.get("closeCode") == 1000, result
    assert result.get("wasClean") is True, result
