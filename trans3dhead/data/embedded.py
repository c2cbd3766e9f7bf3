"""The embedded SynthHeads benchmark, generated once per set of generation parameters and cached."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import trans3dhead
from trans3dhead.atomic import naming_folder
from trans3dhead.config import DataConfig
from trans3dhead.data.errors import DatasetError
from trans3dhead.data.synth.generate import generate

MARKER = "COMPLETE"
# Part of the cache key: bump it whenever the generator's output changes, so stale cached sets are redone.
# 2: AFLW2000 Pose_Para written from the true rotation in the 3DDFA convention (angles, weak-perspective
#    t and s) and pt3d_68 z in 3DDFA's frame.
GENERATOR_VERSION = 2


def synth_params(cfg: DataConfig) -> dict:
    """The SynthHeads generation parameters of a data config (split sizes, render size, seed, generator
    version): the cache key :func:`synth_dir` hashes, also written beside the set as ``params.json``."""
    return {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test, "aflw": cfg.n_aflw,
            "image_size": cfg.render_size, "seed": cfg.synth_seed, "version": GENERATOR_VERSION}


def synth_dir(cfg: DataConfig) -> Path:
    """The cache folder of the set: ``root/synthheads-<hash of synth_params>``, so a change of any generation
    parameter (or of ``GENERATOR_VERSION``) gets a fresh folder instead of a stale set."""
    digest = hashlib.sha1(json.dumps(synth_params(cfg), sort_keys=True).encode()).hexdigest()[:10]
    return Path(cfg.root) / f"synthheads-{digest}"


def _generation_workers(params: dict) -> int:
    """Worker processes pay off only for sets large enough to amortise their start-up."""
    total = params["train"] + params["val"] + params["test"] + params["aflw"]
    return min(os.cpu_count() or 1, 4) if total >= 400 else 1


def _generate(out: Path, params: dict, workers: int) -> None:
    sizes = {split: params[split] for split in ("train", "val", "test", "aflw")}
    if workers == 1:
        generate(out, **sizes, image_size=params["image_size"], seed=params["seed"])
        return
    # Worker processes are spawned from a fresh ``python -m`` interpreter, never from the caller: a
    # spawned worker re-imports its parent's main script, and a script without an
    # ``if __name__ == "__main__":`` guard would call back in here and wait forever on our lock.
    command = [sys.executable, "-m", "trans3dhead.data.synth", "--out", str(out), "--image-size",
               str(params["image_size"]), "--seed", str(params["seed"]), "--workers", str(workers)]
    for split, count in sizes.items():
        command += [f"--{split}", str(count)]
    package_root = str(Path(trans3dhead.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    if subprocess.run(command, env=env).returncode != 0:
        raise DatasetError(f"SynthHeads generation into {out} failed (its messages are above); "
                           f"rerun to retry, or run {' '.join(command[1:])} to see it alone")


def ensure_synthheads(cfg: DataConfig) -> Path:
    """Generates the set unless a complete copy exists; a lock keeps concurrent jobs from racing,
    and the completion marker is written last, so a killed generation is redone, never half-read."""
    out = synth_dir(cfg)
    if (out / MARKER).is_file():
        return out
    with naming_folder(out.parent, "data.root"):
        return _generate_locked(cfg, out)


def _generate_locked(cfg: DataConfig, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / MARKER).is_file():
            if out.exists():
                shutil.rmtree(out)
            params = synth_params(cfg)
            tmp = out.with_name(out.name + ".partial")
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                _generate(tmp, params, _generation_workers(params))
                (tmp / "params.json").write_text(json.dumps(params, indent=1))
            except BaseException:       # a full disk, Ctrl-C: no half-written set is left to fill the disk
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            tmp.rename(out)
            (out / MARKER).write_text("ok\n")
    return out
