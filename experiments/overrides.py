"""``--set SECTION.KEY=VALUE``: config overrides from the command line, the convention hydra users expect.

One parser for ``python -m experiments.run`` (one value per key) and ``python -m experiments.bench
convergence`` (``KEY=V1,V2``: a sweep axis). Values are YAML as the registry reads it (``1e-3``, ``true``,
``off``, ``[a, b]``); keys are checked against ``RunConfig`` with a did-you-mean, and an ablation switch is
refused for the reason a profile may not set one: a variant differs from another only in ``variants.yaml``. Types and
cross-field rules are checked where the override meets a variant and a profile (``Registry.resolve``).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, NamedTuple

import yaml

from experiments.registry import RegistryError, ablation_switch, load_unique_yaml
from trans3dhead.config import RunConfig, did_you_mean

# YAML 1.1 (PyYAML) reads "1e-3" as a string; a number is what anyone typing it means.
_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
# Set by other options, so an override would be silently overwritten.
_OWNED_BY_OPTIONS = {("train", "seed"): "--seeds"}


class Override(NamedTuple):
    """One ``--set``: the config key it changes and the parsed value; ``text`` is what was typed."""
    section: str
    key: str
    value: Any
    text: str

    def as_dict(self) -> dict:
        return {self.section: {self.key: self.value}}


def yaml_value(text: str) -> Any:
    """A command-line value read as YAML as the registry files are (``off`` stays the string the docs show;
    booleans are true/false), with an unquoted exponent number ('1e-3') read as a float."""
    if _EXPONENT_NUMBER.fullmatch(text.strip()):
        return float(text)
    try:
        return load_unique_yaml(text)
    except yaml.YAMLError as err:
        raise RegistryError(f"--set value {text!r} is not valid YAML: {err}") from err


def _config_keys() -> dict[str, set[str]]:
    defaults = RunConfig()
    return {f.name: {g.name for g in dataclasses.fields(getattr(defaults, f.name))}
            for f in dataclasses.fields(RunConfig)}


def check_key(dotted: str) -> tuple[str, str]:
    """'model.d_model' -> ('model', 'd_model'); unknown keys get a did-you-mean, switches are refused."""
    section, _, key = dotted.partition(".")
    if not key or "." in key:
        raise RegistryError(f"--set {dotted}: use SECTION.KEY=VALUE (e.g. train.epochs=16)")
    keys = _config_keys()
    if section not in keys:
        raise RegistryError(f"--set {dotted}: unknown section '{section}'{did_you_mean(section, keys)} "
                            f"(valid: {sorted(keys)})")
    if key not in keys[section]:
        raise RegistryError(f"--set {dotted}: unknown key '{dotted}'{did_you_mean(key, keys[section], section + '.')} "
                            f"(valid: {sorted(keys[section])})")
    if ablation_switch(section, key):
        raise RegistryError(f"--set {dotted}: '{dotted}' is an ablation switch; --set, like a profile, may not "
                            "change it (a variant differs from another only in variants.yaml): add a variant instead")
    if (section, key) in _OWNED_BY_OPTIONS:
        raise RegistryError(f"--set {dotted}: use {_OWNED_BY_OPTIONS[section, key]} instead")
    return section, key


def _split(spec: str) -> tuple[str, str, str]:
    dotted, equals, text = spec.partition("=")
    if not equals or not text.strip():
        raise RegistryError(f"--set {spec!r}: use SECTION.KEY=VALUE (e.g. train.epochs=16)")
    return (*check_key(dotted.strip()), text.strip())


def parse_override(spec: str) -> Override:
    """'train.lr=1e-3' -> Override('train', 'lr', 0.001, 'train.lr=1e-3')."""
    section, key, text = _split(spec)
    return Override(section, key, yaml_value(text), f"{section}.{key}={text}")


def parse_overrides(specs: list[str] | None) -> tuple[Override, ...]:
    """Every ``--set`` of a command, in order; a key set twice is refused (which one was meant?)."""
    overrides = tuple(parse_override(spec) for spec in specs or ())
    seen: set[tuple[str, str]] = set()
    for override in overrides:
        if (override.section, override.key) in seen:
            raise RegistryError(f"--set {override.section}.{override.key} is given twice")
        seen.add((override.section, override.key))
    return overrides


def parse_sweep(spec: str) -> tuple[str, list[Override]]:
    """'train.epochs=8,16' -> ('train.epochs', one Override per value): a grid axis of the convergence bench;
    a value may be a YAML list ('model.branches=[landmark, 3dmm],[3dmm]')."""
    section, key, text = _split(spec)
    values = [float(v) if isinstance(v, str) and _EXPONENT_NUMBER.fullmatch(v) else v
              for v in yaml_value(f"[{text}]")]
    return f"{section}.{key}", [Override(section, key, v, f"{section}.{key}={v}") for v in values]


def describe(overrides: tuple[Override, ...]) -> str:
    """The overrides as they would be typed: '--set a.b=1 --set c.d=x' ('' for none)."""
    return " ".join(f"--set {o.text}" for o in overrides)
