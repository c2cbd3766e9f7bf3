"""The YAML registry: variants, tables, profiles, clusters -> validated, resolved runs.

A run is (variant, profile, seed) resolved to a frozen :class:`RunConfig`; its id is a hash of that
config, so identical configurations share one run whichever variants or tables ask for it.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from experiments.registry.checks import RegistryError, load_unique_yaml, read_yaml, unknown_keys  # noqa: F401
from experiments.registry.tables import (FIGURES, Row, Section, Step, TableSpec,  # noqa: F401  (the registry's names)
                                         _parse_table)
from trans3dhead.config import ConfigError, RunConfig, did_you_mean

REGISTRY_DIR = Path(__file__).parent      # the YAML files live beside this package's modules
DEFAULT_PROFILE = "converged"    # the longest profile; its Table 3 runs pass the convergence test
VARIANT_KEYS = {"base", "label", "description", "model", "loss", "train"}
PROFILE_KEYS = {"base", "description", "benchmark_note", "verdicts_beside", "model", "data", "train"}
CLUSTER_KEYS = {"partition", "account", "qos", "gpus_per_node", "cpus_per_task", "mem_gb", "timeout_min",
                "array_parallelism", "setup", "constraint", "additional_parameters", "runs_per_job"}
# A profile may size and schedule a run, never switch an ablation (the paper's comparisons).
# The list is declared once, on the config fields themselves (trans3dhead.config.switch).
ABLATION_SWITCHES = RunConfig.ablation_switches()
# How a run is executed, not what it computes: left out of the run id, so that a machine with more
# loader workers or less RAM reuses the same results.
EXECUTION_ONLY = {"data": ("num_workers", "cache_in_memory"),
                  "train": ("sync_every", "channels_last", "compile")}


def ablation_switch(section: str, key: str) -> bool:
    """Is ``section.key`` one of the paper's ablation switches (which only a variant may set)?"""
    return key in ABLATION_SWITCHES.get(section, ())


@dataclass(frozen=True)
class ResolvedRun:
    """A run to train and evaluate: a variant under a profile and seed, its frozen config and run id."""
    run_id: str
    variant: str
    profile: str
    seed: int
    config: RunConfig
    evaluations: tuple[tuple[str, str], ...] = ()       # (dataset, split) pairs the tables need
    variants: tuple[str, ...] = ()                       # every variant name sharing this run
    measure_efficiency: bool = False                     # a table with FPS columns needs this run


def deep_merge(base: dict, override: dict) -> dict:
    """A copy of ``base`` with ``override`` merged in, mappings key by key, anything else replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def base_chain(entries: dict, name: str, kind: str, filename: str) -> list[str]:
    """``name`` and its ``base`` ancestors, root first; names an unknown entry or a cycle."""
    chain, seen = [], set()
    current: str | None = name
    while current is not None:
        if current not in entries:
            did = did_you_mean(current, entries)
            raise RegistryError(f"unknown {kind} '{current}'{did} (see {filename})")
        if current in seen:
            raise RegistryError(f"{filename}: 'base' cycle through {' -> '.join(chain + [current])}")
        seen.add(current)
        chain.append(current)
        current = entries[current].get("base")
    return chain[::-1]


def _inherit_profiles(profiles: dict) -> dict:
    """Each profile with its base chain merged in; a profile states only what differs from its base.
    The description is each profile's own."""
    flat = {}
    for name, entry in profiles.items():
        merged: dict = {}
        for link in base_chain(profiles, name, "profile", "profiles.yaml"):
            merged = deep_merge(merged, {k: v for k, v in profiles[link].items() if k not in ("base", "description")})
        flat[name] = {**merged, "description": entry.get("description", "")}
    return flat


def run_identity(config: RunConfig) -> dict:
    """What makes two runs the same run: the config's identity less the execution-only keys."""
    identity = config.identity()
    for section, keys in EXECUTION_ONLY.items():
        for key in keys:
            identity[section].pop(key, None)
    return identity


def run_id_of(config: RunConfig) -> str:
    """10 hex digits of the SHA-1 of :func:`run_identity`: equal configs share a run."""
    blob = json.dumps(run_identity(config), sort_keys=True, default=list)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def _schedule_hint(raw: dict, overrides: tuple) -> str:
    """For a --set train.epochs that the profile's lr drops no longer fit: the --set that makes them fit."""
    if not any((o.section, o.key) == ("train", "epochs") for o in overrides):
        return ""
    train = raw.get("train", {})
    epochs = train.get("epochs")
    if not isinstance(epochs, int) or epochs < 1:
        return ""
    keys = [k for k in ("lr_drop_epoch", "lr_second_drop_epoch") if isinstance(train.get(k), int)
            and train[k] > epochs and not any((o.section, o.key) == ("train", k) for o in overrides)]
    if not keys:
        return ""
    first = max(1, round(epochs * 2 / 3))
    fix = {"lr_drop_epoch": first, "lr_second_drop_epoch": max(first + 1, round(epochs * 5 / 6))}
    sets = " ".join(f"--set train.{k}={min(fix[k], epochs)}" for k in keys)
    return f"; the profile's lr schedule is for longer training: add {sets}"


class Registry:
    """The loaded, validated registry: variants, tables, profiles (bases merged in) and cluster files."""

    def __init__(self, variants: dict, tables: dict[str, TableSpec], profiles: dict, clusters: dict[str, dict],
                 root: Path):
        self.variants, self.tables, self.profiles, self.clusters, self.root = variants, tables, profiles, clusters, root

    # -- resolution ----------------------------------------------------------------------------------
    def variant_chain(self, name: str) -> list[str]:
        return base_chain(self.variants, name, "variant", "variants.yaml")

    def variant_dict(self, name: str) -> dict:
        """The variant's model / loss / train settings with its base chain merged in."""
        merged: dict = {}
        for link in self.variant_chain(name):
            entry = {k: v for k, v in self.variants[link].items() if k in ("model", "loss", "train")}
            merged = deep_merge(merged, entry)
        return merged

    def resolve(self, variant: str, profile: str, seed: int = 0, overrides: tuple = ()) -> ResolvedRun:
        """``variant`` under ``profile``, then the command line's ``overrides`` (``experiments.overrides``):
        a frozen config and its run id (the overrides change the config, hence the id)."""
        if profile not in self.profiles:
            did = did_you_mean(profile, self.profiles)
            raise RegistryError(f"unknown profile '{profile}'{did} (valid: {sorted(self.profiles)})")
        prof = {k: v for k, v in self.profiles[profile].items() if k in ("model", "data", "train")}
        raw = deep_merge(self.variant_dict(variant), prof)
        for override in overrides:
            raw = deep_merge(raw, override.as_dict())
        raw = deep_merge(raw, {"train": {"seed": seed}})
        try:
            config = RunConfig.from_dict(raw)
        except ConfigError as err:
            with_set = "".join(f" --set {o.text}" for o in overrides)
            raise RegistryError(f"variant '{variant}' with profile '{profile}'{with_set}: {err}"
                                f"{_schedule_hint(raw, overrides)}") from err
        return ResolvedRun(run_id_of(config), variant, profile, seed, config)

    def plan(self, target: str, profile: str, seeds: int = 1, overrides: tuple = ()) -> list[ResolvedRun]:
        """The runs ``target`` (a table, a figure or 'all') needs, one per distinct config: ``seeds`` seeds of
        each row, more for a row whose ``seeds`` asks for more (``Row.seed_count``)."""
        names = list(self.tables) if target == "all" else [target]
        runs: dict[str, ResolvedRun] = {}
        for name in names:
            spec = self.table(name)
            for row in spec.rows:
                if row.variant is None:
                    continue
                for seed in range(row.seed_count(seeds)):
                    run = self.resolve(row.variant, profile, seed, overrides)
                    known = runs.get(run.run_id, run)
                    evaluations = tuple(dict.fromkeys(known.evaluations + ((spec.dataset, spec.split),)))
                    variants = tuple(dict.fromkeys(known.variants + (row.variant,)))
                    runs[run.run_id] = ResolvedRun(known.run_id, known.variant, profile, seed, known.config,
                                                   evaluations, variants, known.measure_efficiency or spec.efficiency)
        return list(runs.values())

    def table(self, name: str) -> TableSpec:
        if name not in self.tables:
            did = did_you_mean(name, self.tables)
            raise RegistryError(f"unknown table or figure '{name}'{did} (valid: {', '.join(self.tables)}, all)")
        return self.tables[name]

    def cluster(self, path: str | Path) -> dict:
        """A SLURM cluster file, its keys checked."""
        path = Path(path)
        data = read_yaml(path)
        if not data:
            raise RegistryError(f"cluster file {path} is empty: set at least partition (and gpus_per_node, "
                                "timeout_min; see experiments/registry/clusters/local.yaml)")
        unknown_keys(data, CLUSTER_KEYS, f"cluster file {path}")
        for key in ("gpus_per_node", "cpus_per_task", "mem_gb", "timeout_min", "array_parallelism"):
            value = data.get(key)
            smallest = 0 if key == "gpus_per_node" else 1
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < smallest):
                raise RegistryError(f"cluster file {path}: {key}={value!r} must be a number >= {smallest}")
        for key in ("partition", "account", "qos", "constraint"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise RegistryError(f"cluster file {path}: {key}={data[key]!r} must be a name")
        if not isinstance(data.get("setup") or [], list) or not isinstance(data.get("additional_parameters") or {}, dict):
            raise RegistryError(f"cluster file {path}: setup must be a list of lines and additional_parameters a mapping")
        runs = data.get("runs_per_job", 1)
        if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
            raise RegistryError(f"cluster file {path}: runs_per_job={runs!r} must be an integer >= 1 "
                                "(runs side by side inside one job; its CPUs are split between them)")
        return data


def _check_profile(name: str, raw: dict) -> None:
    where = f"profiles.yaml: {name}"
    if not isinstance(raw, dict):
        raise RegistryError(f"{where}: expected a mapping")
    for group in ABLATION_SWITCHES:
        for key in raw.get(group) or {}:
            if ablation_switch(group, key):
                raise RegistryError(f"{where}: a profile may not change the ablation switch '{group}.{key}'; "
                                    "set it in a variant (variants.yaml) instead")
    unknown_keys(raw, PROFILE_KEYS, where)


def load_registry(root: str | Path = REGISTRY_DIR) -> Registry:
    """Reads and validates the registry folder; every variant must resolve under every profile."""
    root = Path(root)
    variants = read_yaml(root / "variants.yaml")
    for name, entry in variants.items():
        if not isinstance(entry, dict):
            raise RegistryError(f"variants.yaml: {name}: expected a mapping")
        unknown_keys(entry, VARIANT_KEYS, f"variants.yaml: {name}")
        try:        # the entry's own keys and values, so the message names the variant that has the typo
            RunConfig.from_dict({k: v for k, v in entry.items() if k in ("model", "loss", "train")})
        except ConfigError as err:
            raise RegistryError(f"variants.yaml: {name}: {err}") from err
    profiles = read_yaml(root / "profiles.yaml")
    for name, entry in profiles.items():
        _check_profile(name, entry)
    profiles = _inherit_profiles(profiles)
    for name, entry in profiles.items():
        beside = entry.get("verdicts_beside")
        if beside is not None and (beside not in profiles or beside == name):
            did = did_you_mean(str(beside), list(profiles))
            raise RegistryError(f"profiles.yaml: {name}: verdicts_beside '{beside}' must name another profile{did} "
                                f"(valid: {[p for p in profiles if p != name]})")
    tables = {name: _parse_table(name, raw, variants) for name, raw in read_yaml(root / "tables.yaml").items()}
    clusters = {p.stem: p for p in sorted((root / "clusters").glob("*.yaml"))}
    registry = Registry(variants, tables, profiles, clusters, root)
    for name in variants:                      # every variant must resolve under every profile
        for profile in profiles:
            registry.resolve(name, profile)
    return registry
