"""What every registry file is checked with: the error that names the file and the fix, unknown keys
with a did-you-mean, YAML read with duplicate keys refused and YAML 1.2's booleans, lists of names and of
mappings."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from trans3dhead.config import did_you_mean


class RegistryError(ValueError):
    """A registry file is wrong; the message names the file, the entry and the fix."""


def unknown_keys(keys, allowed, where: str) -> None:
    for key in keys:
        if key not in allowed:
            did = did_you_mean(key, allowed)
            raise RegistryError(f"{where}: unknown key '{key}'{did} (valid: {sorted(allowed)})")


_BOOL = "tag:yaml.org,2002:bool"


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping is an error: the second `qa:` would
    silently redefine a variant, and every variant built on it. Booleans are YAML 1.2's, true/false only:
    PyYAML's YAML 1.1 reads on/off/yes/no as booleans too, so `amp: off`, as the docs spell the value,
    reached the config as False ("train.amp: expected a string"); a boolean field given `yes` is refused by
    name instead of read as true."""

    yaml_implicit_resolvers = {first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
                               for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:       # an unhashable key (a list): PyYAML names it below
                continue
            if first != key_node.start_mark.line + 1:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {first}): remove or rename one",
                    key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def load_unique_yaml(text: str):
    """YAML text read safely, a key given twice in one mapping refused (yaml.YAMLError), on/off/yes/no strings."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


def read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise RegistryError(f"registry file {path} is missing")
    try:
        data = load_unique_yaml(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as err:
        raise RegistryError(f"{path} is not UTF-8 text ({err}); save it as UTF-8") from None
    except yaml.YAMLError as err:
        raise RegistryError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: expected a mapping of names to entries")
    return data


def name_list(value: object, where: str) -> list[str]:
    """A YAML list of names (None: none); anything else (a number, a nested list) names the key."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RegistryError(f"{where}: {value!r} must be a list of names, e.g. [nme, z5]")
    return value


def mapping_list(value: object, where: str, expected: str) -> list[dict]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise RegistryError(f"{where}: {value!r} is not {expected}")
    return value
