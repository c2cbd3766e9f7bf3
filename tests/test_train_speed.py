"""The training loop's speed contracts: no host synchronisation per step, deferred NaN checks, loader."""
import re
import sys

import pytest
import torch

from trans3dhead.config import RunConfig
from trans3dhead.engine import NonFiniteLossError, train
from trans3dhead.engine.checkpoint import load_checkpoint
from trans3dhead.engine.loading import loader_options
from trans3dhead.engine.steplog import INJECT_NAN_ENV

# Every way Python code can read a tensor on the host (each waits for the device on a GPU).
HOST_READS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__")
STEPS_PER_EPOCH = 8


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {"model": {"backbone": "resnet18", "backbone_stride": 8, "d_model": 16, "nheads": 2, "dim_feedforward": 16,
                      "decoder_layers": 1},
            "data": {"root": str(root), "image_size": 32, "render_size": 48, "n_train": 2 * STEPS_PER_EPOCH, "n_val": 4,
                     "n_test": 2, "n_aflw": 2, "cache_in_memory": True},
            "train": {"epochs": 2, "batch_size": 2, "lr": 1e-3, "schedule": "cosine", "amp": "off", "device": "cpu"}}


class SyncCounter:
    """Counts host reads made by the project's code between an epoch's start and its last step. Left out:
    torch's own reads of host-side counters (Adam's step) and the data pipeline's (it builds items on the
    host, before the copy to the device); neither waits for a device."""

    def __init__(self, monkeypatch):
        self.active, self.count, self.per_epoch = False, 0, []
        for name in HOST_READS:
            monkeypatch.setattr(torch.Tensor, name, self._wrap(getattr(torch.Tensor, name)))

    def _wrap(self, original):
        def counted(tensor, *args, **kwargs):
            if self.active and _counts(sys._getframe(1)):
                self.count += 1
            return original(tensor, *args, **kwargs)
        return counted

    def lap(self, phase: str) -> None:
        if phase == "epoch_start":
            self.active, self.count = True, 0

    def end_step(self, step: int) -> None:
        if (step + 1) % STEPS_PER_EPOCH == 0:
            self.active = False
            self.per_epoch.append(self.count)


def _counts(frame) -> bool:
    if frame.f_globals.get("__name__", "").startswith("torch"):
        return False
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith(("trans3dhead.data", "torch.utils.data")):
            return False
        frame = frame.f_back
    return True


def _cfg(raw, **train_overrides):
    return RunConfig.from_dict({**raw, "train": {**raw["train"], **train_overrides}})


@pytest.mark.parametrize("sync_every", [1, 4])
def test_steps_read_the_host_only_every_sync_every_steps(tiny, tmp_path, monkeypatch, sync_every):
    counter = SyncCounter(monkeypatch)
    train(_cfg(tiny, sync_every=sync_every), tmp_path / "run", show_progress=False, clock=counter)
    # The epoch's last read happens after its last step (before the checkpoint), so the steps make
    # one read per full window that is not the last: (N - 1) // K.
    expected = (STEPS_PER_EPOCH - 1) // sync_every
    assert counter.per_epoch == [expected] * 2, counter.per_epoch


def test_deferred_nan_check_names_the_range_first_step_and_term_and_keeps_the_checkpoint(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv(INJECT_NAN_ENV, "13")
    with pytest.raises(NonFiniteLossError, match=r"steps 12-15 \(epoch 1\), first at step 13 in term\(s\) \['injected'\]"):
        train(_cfg(tiny, sync_every=4), tmp_path / "nan", show_progress=False)
    assert load_checkpoint(tmp_path / "nan" / "checkpoint.pt")["epoch"] == 1


def test_sync_interval_does_not_change_the_numerics(tiny, tmp_path):
    a = train(_cfg(tiny, epochs=1, sync_every=1), tmp_path / "a", show_progress=False)
    b = train(_cfg(tiny, epochs=1, sync_every=5), tmp_path / "b", show_progress=False)
    wa, wb = load_checkpoint(a["checkpoint"])["model"], load_checkpoint(b["checkpoint"])["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert load_checkpoint(a["checkpoint"])["curve"] == [
        {**row, "wall_s": load_checkpoint(a["checkpoint"])["curve"][0]["wall_s"]}
        for row in load_checkpoint(b["checkpoint"])["curve"]]


def test_workers_see_each_epochs_crops(tiny, tmp_path):
    """Persistent workers hold their own dataset copy: the epoch must reach them with each index."""
    a = train(_cfg(tiny), tmp_path / "w0", show_progress=False)
    b = train(RunConfig.from_dict({**tiny, "data": {**tiny["data"], "num_workers": 2}}), tmp_path / "w2",
              show_progress=False)
    wa, wb = load_checkpoint(a["checkpoint"])["model"], load_checkpoint(b["checkpoint"])["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_auto_loader_options_follow_the_device():
    assert loader_options(-1, torch.device("cpu")) == {"num_workers": 0, "pin_memory": False}
    cuda = loader_options(-1, torch.device("cuda"))      # options only: no GPU needed
    assert cuda["pin_memory"] and cuda["num_workers"] >= 1 and cuda["persistent_workers"]
    assert loader_options(3, torch.device("cpu"))["num_workers"] == 3


@pytest.mark.slow
def test_bench_train_prints_phases_and_the_ratio_line(capsys):
    from experiments.bench.train import main
    assert main(["--profile", "smoke", "--steps", "2", "--repeats", "1", "--threads", "1", "--jpeg-canvas", "256"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(line.strip().startswith("backward") for line in lines)
    assert any("JPEG photographs" in line and "draft decode" in line for line in lines)
    ratio = next(line for line in lines if line.startswith("train/fwd-bwd: "))
    assert ratio.endswith(("cpu, bf16)", "cpu, fp32)"))
    rates = next(line for line in lines if line.startswith("step: "))
    assert re.search(r"[0-9.]+ GFLOP .* [0-9.]+ GFLOP/s in the loop.*bf16 [0-9]+ GFLOP/s, fp32 [0-9]+ GFLOP/s", rates)
    # the last line: what one run of the profile costs, from the measured step and epoch-end times, after the
    # least it could cost on this core (every FLOP at the core's bf16 matmul rate)
    cost = re.fullmatch(r"run cost: (\d+) s on 1 core \(6 steps x \d+ ms \+ \d+ s validation\) for smoke/trans3dhead",
                        lines[-1])
    floor = re.match(r"run floor: (\d+) s on the same core\(s\) if every step ran at its bf16 matmul rate "
                     r"\(6 steps x [0-9.]+ GFLOP / \d+ GFLOP/s \+ \d+ s validation\)", lines[-2])
    assert cost and floor, lines[-2:]
    assert int(floor.group(1)) <= int(cost.group(1))


def test_step_gflop_counts_the_models_matmuls_and_convolutions():
    from experiments.bench.phases import ResidentStep, matmul_gflop_per_s, step_gflop
    from experiments.bench.train import resolve_config
    step = ResidentStep(resolve_config("smoke", "trans3dhead", "cpu", []), torch.device("cpu"), False)
    gflop = step_gflop(step)
    # forward+backward is about 3x the forward's FLOP: more than the forward alone counts
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        step.model(step.batch["image"])
    assert 2.0 < gflop / (counter.get_total_flops() / 1e9) < 4.0
    assert matmul_gflop_per_s(torch.float32, size=128, repeats=2) > 0


def test_flop_counts_include_attention_on_cpu():
    """torch's counter skips the CPU attention kernel (0 FLOPs), so Table 1's GFLOPs left Trans3DHead's attention
    out; counted now: an attention block's forward is its four projections plus the two attention matmuls."""
    from trans3dhead.engine.efficiency import count_flops
    from trans3dhead.models.transformer import Attention

    class SelfAttention(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = Attention(d_model=32, nheads=1, dropout=0.0)

        def forward(self, x):
            return self.attention(x, x, x)

    batch, n, d = 2, 413, 32
    projections = 4 * 2 * batch * n * d * d
    attention_matmuls = 2 * 2 * batch * n * n * d
    assert count_flops(SelfAttention().eval(), torch.randn(batch, n, d)) == projections + attention_matmuls
