"""A stand-in for training and evaluation, so fault tests exercise the real locks, store and CLI in seconds.

``python tests/fakejob.py ARGS...`` runs ``experiments.run`` with it; ``python tests/fakejob.py --job
RESULTS WORK VARIANT SECONDS`` runs one job alone (as the job of a killed submitter would live on).
Every training appends ``<pid>`` to ``<work root>/trainings.log``.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

DELAY_S = float(os.environ.get("FAKE_TRAIN_S", "0"))


def log_file(work_dir: Path) -> Path:
    return Path(work_dir).parents[1] / "trainings.log"


def fake_train(cfg, work_dir, show_progress: bool = True, **_) -> dict:
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    with open(log_file(work_dir), "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(DELAY_S)
    (work_dir / "curve.csv").write_text("epoch,step,train_loss,val_nme,lr,wall_s\n1,3,1.0,9.0,0.001,0.1\n")
    (work_dir / "checkpoint.pt").write_bytes(b"fake")
    return {"checkpoint": str(work_dir / "checkpoint.pt"), "wall_s": 0.1, "epochs_trained": 1, "device": "cpu",
            "amp": "fp32", "epochs": 1, "best_val_nme": 9.0}


def fake_evaluate(checkpoint, dataset: str, split: str, efficiency: bool = False):
    per_sample = pd.DataFrame({"item_id": ["a", "b"], "nme": [8.0, 10.0]})
    return SimpleNamespace(aggregate={"nme": 9.0, "nme_n": 2}, per_sample=per_sample, efficiency={},
                           marr=None, predictions={})


def install() -> None:
    import trans3dhead.engine as engine
    engine.train, engine.evaluate = fake_train, fake_evaluate


def job(results: str, work: str, variant: str) -> None:
    from experiments.dispatch.launch import make_jobs
    from experiments.registry import load_registry
    registry = load_registry()
    run = next(r for r in registry.plan("table3", "smoke") if variant in r.variants)
    make_jobs([run], Path(results), Path(work))[0]()


if __name__ == "__main__":
    install()
    if sys.argv[1] == "--job":
        job(*sys.argv[2:5])
        sys.exit(0)
    from experiments import run
    sys.exit(run.main(sys.argv[1:]))
