"""scripts/gpu/calibrate.sh, the prepared device call of the gpu profile's calibration: run for real at smoke size
on CPU, so that a lent GPU's 15 minutes are not spent on a wrong flag."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow          # every step trains or benches at smoke size: about two minutes on 2 cores
def test_the_gpu_calibration_script_runs_every_step_at_smoke_size(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PROFILE": "smoke", "PACE_S": "30"}
    done = subprocess.run(["bash", "scripts/gpu/calibrate.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    for variant in ("trans3dhead", "dad3dnet"):
        text = (out / f"bench-train-{variant}.txt").read_text()
        assert f"for smoke/{variant}" in text and text.rstrip().endswith("exit 0"), text[-2000:]
    assert (out / "convergence.txt").read_text().rstrip().endswith("exit 0")
    assert "plan for table3 (profile smoke" in (out / "table3-plan.txt").read_text()
