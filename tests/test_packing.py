"""Several runs per GPU: slots, threads and memory from injected GPU facts (no GPU needed)."""
from types import SimpleNamespace

import pytest

from experiments.dispatch import packing
from experiments.registry import RegistryError, load_registry

H200 = packing.GpuFacts(count=1, memory_gb=139.8)


def _never():
    raise AssertionError("the peak memory is measured only for auto")


def test_auto_packs_small_runs_onto_one_gpu_bounded_by_cores():
    # A 48-px run peaks near 1 GB: memory alone would allow over a hundred; 16 cores allow 8 (2 cores each).
    plan = packing.plan_slots(H200, cores=16, requested="auto", job_peak_gb=lambda: 1.0)
    assert (plan.jobs, plan.per_gpu, plan.threads) == (8, 8, 2)
    assert [plan.gpu_of(slot) for slot in range(plan.jobs)] == [0] * 8


def test_auto_is_bounded_by_memory_for_large_runs():
    plan = packing.plan_slots(H200, cores=64, requested="auto", job_peak_gb=lambda: 30.0)
    assert plan.per_gpu == int(139.8 * packing.MEMORY_HEADROOM // (30.0 + packing.CONTEXT_GB)) == 3
    assert plan.threads == 64 // 3
    huge = packing.plan_slots(H200, cores=16, requested="auto", job_peak_gb=lambda: 200.0)
    assert huge.per_gpu == 1          # never zero: a run that does not fit twice still runs alone


def test_explicit_count_spreads_slots_over_gpus_and_respects_max_parallel():
    two = packing.GpuFacts(count=2, memory_gb=80.0)
    plan = packing.plan_slots(two, cores=16, requested=3, job_peak_gb=_never)
    assert (plan.jobs, plan.threads) == (6, 2)
    assert [plan.gpu_of(slot) for slot in range(6)] == [0, 0, 0, 1, 1, 1]
    capped = packing.plan_slots(two, cores=16, requested=3, job_peak_gb=_never, max_parallel=4)
    assert (capped.jobs, capped.threads) == (4, 4)
    with pytest.raises(ValueError, match="jobs-per-gpu"):
        packing.plan_slots(two, cores=16, requested=0, job_peak_gb=_never)


def test_runs_per_job_groups_runs():
    jobs = [SimpleNamespace(run_id=n) for n in ("a", "b", "c", "d", "e")]
    groups = packing.batches(jobs, runs_per_job=2, cpus=8)
    assert [[j.run_id for j in g.jobs] for g in groups] == [["a", "b"], ["c", "d"], ["e"]]
    assert groups[0].run_id == "a+b" and groups[0].cpus == 8


def test_cluster_file_validates_runs_per_job(tmp_path):
    registry = load_registry()
    good = tmp_path / "good.yaml"
    good.write_text("partition: gpu\nruns_per_job: 4\n")
    assert registry.cluster(good)["runs_per_job"] == 4
    bad = tmp_path / "bad.yaml"
    bad.write_text("partition: gpu\nruns_per_job: 0\n")
    with pytest.raises(RegistryError, match="runs_per_job"):
        registry.cluster(bad)


def test_cpu_machine_reports_no_gpu():
    facts = packing.gpu_facts()
    assert facts.count >= 0 and (facts.count == 0) == (facts.memory_gb == 0.0)
