import os

# Two cores and many small tests: one intra-op thread per test process avoids oversubscription.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def flame_dir(tmp_path_factory):
    """Procedural FLAME-format assets, written once per test session."""
    from trans3dhead.data.synth.head_model import write_assets
    return write_assets(tmp_path_factory.mktemp("flame"), seed=0)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    """A tiny SynthHeads set (official formats), generated once per test session."""
    from trans3dhead.data.synth.generate import generate
    root = tmp_path_factory.mktemp("synth")
    return generate(root, train=24, val=8, test=8, aflw=6, image_size=96, seed=3)


@pytest.fixture(autouse=True)
def _engine_left_as_found():
    """Fails the test that leaves ``trans3dhead.engine.train``/``evaluate`` replaced (a fake that outlives
    its test makes a later in-process training write fake checkpoints, far from the cause)."""
    yield
    import sys
    engine = sys.modules.get("trans3dhead.engine")
    if engine is not None:
        for name in ("train", "evaluate"):
            assert getattr(engine, name).__module__ == f"trans3dhead.engine.{name}", \
                f"this test left trans3dhead.engine.{name} replaced by {getattr(engine, name)!r}"
