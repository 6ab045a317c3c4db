"""Typed configuration: dataclasses are the single source of truth; YAML files and `--section.key value`
command-line overrides are checked against them. A misspelt key is an error that lists the valid keys.
"""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from reprl.errors import ReprlError

C = TypeVar("C")


def _describe(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert one value against a type annotation."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except ReprlError as e:
                errors.append(str(e))
        raise ReprlError(errors[0] if len(errors) == 1 else f"{where}: {value!r} does not fit {_describe(tp)}")
    if origin is Literal:
        if value not in args:
            raise ReprlError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ReprlError(f"{where}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",")]
        if not isinstance(value, (list, tuple)):
            raise ReprlError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ReprlError(f"{where}: expected {len(args)} values, got {list(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        return origin(_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ReprlError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ReprlError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ReprlError(f"{where}: expected an integer, got {value!r}")
        try:
            f = float(value)
        except ValueError:
            raise ReprlError(f"{where}: expected an integer, got {value!r}") from None
        if not f.is_integer():
            raise ReprlError(f"{where}: expected an integer, got {value!r}")
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise ReprlError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ReprlError(f"{where}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ReprlError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def from_dict(cls: type[C], data: dict[str, Any], where: str = "") -> C:
    """Build dataclass `cls` from a mapping; unknown keys and ill-typed values raise ReprlError."""
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]  # C: any dataclass
    unknown = [k for k in data if k not in names]
    if unknown:
        section = f" in '{where}'" if where else ""
        raise ReprlError(f"unknown config key{'s' if len(unknown) > 1 else ''} {', '.join(repr(k) for k in unknown)}"
                         f"{section}; valid keys: {', '.join(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ReprlError(f"{where or cls.__name__}: {e}") from None


def field_docs(cls: type) -> dict[str, str]:
    """Each field's one-line doc: the comment that ends its line in the class source (empty if none)."""
    import inspect
    import re

    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    docs = {}
    for line in source.splitlines():
        m = re.match(r"\s+(\w+)\s*:[^#]*#\s*(.+)$", line)
        if m:
            docs[m.group(1)] = m.group(2).strip()
    return docs


def field_default(f: dataclasses.Field) -> Any:
    """A dataclass field's default value (its default_factory called), or dataclasses.MISSING if it has none."""
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _type_text(tp: Any) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return "{" + "|".join(str(a) for a in args) + "}"
    if origin in (Union, types.UnionType):
        return " | ".join(_type_text(a) for a in args if a is not type(None)) + (
            " | null" if type(None) in args else "")
    if origin in (list, tuple):
        return f"{origin.__name__}[{', '.join(_type_text(a) for a in args if a is not Ellipsis)}]"
    if origin is dict:
        return "mapping"
    return _describe(tp)


def config_keys(cls: type, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, doc) for every field of a config dataclass, nested sections as section.key."""
    hints = get_type_hints(cls)
    docs = field_docs(cls)
    rows = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            rows += config_keys(tp, f"{prefix}{f.name}.")
            continue
        default = field_default(f)
        text = yaml.safe_dump(to_dict_value(default), default_flow_style=True).strip().removesuffix("...").strip()
        rows.append((prefix + f.name, _type_text(tp), text, docs.get(f.name, "")))
    return rows


def keys_help(cls: type) -> str:
    """A --help epilog listing every key of a config dataclass with its type, default and doc."""
    rows = config_keys(cls)
    width = max(len(k) for k, *_ in rows) + 2
    lines = ["config keys (in the --config YAML, or on the command line as --KEY VALUE):"]
    for key, tp, default, doc in rows:
        lines.append(f"  {key:{width}s}{tp} = {default}" + (f"  ({doc})" if doc else ""))
    return "\n".join(lines)


def to_dict_value(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [to_dict_value(x) for x in v]
    if isinstance(v, dict):
        return {k: to_dict_value(x) for k, x in v.items()}
    return v


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain dict (tuples as lists) for YAML/JSON."""
    return to_dict_value(dataclasses.asdict(cfg))


def parse_overrides(argv: list[str]) -> dict[str, Any]:
    """['--trainer.devices', '2', '--optim.lr=1e-4'] -> nested dict. Values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise ReprlError(f"unexpected argument {arg!r}: overrides look like --section.key value")
        if "=" in arg:
            key, raw = arg[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(argv):
                raise ReprlError(f"{arg} needs a value")
            key, raw = arg[2:], argv[i + 1]
            i += 2
        value = yaml.safe_load(raw) if raw != "" else ""
        node = out
        parts = key.replace("-", "_").split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ReprlError(f"--{key}: {part} is set to a value and cannot have sub-keys")
        node[parts[-1]] = value
    return out


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise ReprlError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ReprlError(f"{p} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ReprlError(f"{p} should hold a mapping of config sections, got {type(data).__name__}")
    return data


def load_config(cls: type[C], path: str | Path | None = None, overrides: list[str] | None = None) -> C:
    """Defaults <- YAML file <- command-line overrides, checked against `cls`."""
    data = read_yaml(path) if path else {}
    data = merge(data, parse_overrides(overrides or []))
    return from_dict(cls, data)


def dump_yaml(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


__all__ = ["from_dict", "to_dict", "load_config", "parse_overrides", "dump_yaml", "read_yaml"]
