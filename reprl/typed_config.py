"""Typed configuration: dataclasses are the single source of truth. YAML presets, `--section.key value`
command-line overrides, evaluation suites, head settings and encoder config files all become a dataclass through
one path, `from_dict`, which hands the values to a jsonargparse parser built from the class (types, Literal
choices, tuple lengths, Optional). What is ours: a misspelt key is an error that lists the valid keys, every error
is one line, and `--help` lists every key with its type, default and one-line doc (`keys_help`).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from reprl.errors import ReprlError

C = TypeVar("C")


def _describe(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


_PARSERS: dict[type, Any] = {}


def _parser(cls: type) -> Any:
    """The jsonargparse parser of a config dataclass: it checks and converts every value (YAML files, command-line
    overrides and mappings built in code all go through it). Built once per class."""
    if cls not in _PARSERS:
        from jsonargparse import ArgumentParser

        parser = ArgumentParser(exit_on_error=False, prog=cls.__name__)
        parser.add_class_arguments(cls, fail_untyped=True)
        _PARSERS[cls] = parser
    return _PARSERS[cls]


def _prepare(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    """Check the keys of a mapping at every depth (an unknown key names the valid ones, which the library's own
    message does not) and pass it on for parsing. One command-line shorthand is kept: a list or tuple field given
    as a string without brackets, such as `--plugins my_module` or `hidden=16,16`, is read as the list
    `[my_module]` or `[16,16]`."""
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        section = f" in '{where}'" if where else ""
        raise ReprlError(f"unknown config key{'s' if len(unknown) > 1 else ''} {', '.join(repr(k) for k in unknown)}"
                         f"{section}; " + (f"valid keys: {', '.join(names)}" if names else "it takes no settings"))
    out = {}
    for k, v in data.items():
        tp, key = hints[k], f"{where}.{k}" if where else k
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            if isinstance(v, tp):
                v = to_dict(v)
            if not isinstance(v, dict):
                raise ReprlError(f"{key}: expected a mapping of {tp.__name__} fields, got {v!r}")
            v = _prepare(tp, v, key)
        elif isinstance(v, str) and not v.lstrip().startswith("[") and _is_sequence(tp):
            v = f"[{v}]"
        out[k] = v
    return out


def _is_sequence(tp: Any) -> bool:
    """list[...] or tuple[...], also inside `... | None`."""
    if get_origin(tp) in (Union, types.UnionType):
        return any(_is_sequence(a) for a in get_args(tp))
    return get_origin(tp) in (list, tuple) or tp in (list, tuple)


_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string", "list": "a list",
          "tuple": "a list", "dict": "a mapping"}


def _one_line(message: str, where: str) -> str:
    """jsonargparse's multi-line error as one line: 'key: what was expected, got what'."""
    m = re.search(r'Parser key "([^"]+)":\s*(.*)', message, re.S)
    key, text = (m.group(1), m.group(2)) if m else ("", message)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    given = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("Given value:")), None)
    first = lines[0] if lines else message
    if first.startswith("Does not validate against any of the Union subtypes"):
        kinds = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("Subtypes:")), "")
        kinds = re.sub(r"<class '([\w.]+)'>", r"\1", kinds.strip("[]")).replace("NoneType", "null")
        first = f"expected one of {kinds}. Got value: {given}"
    first = re.sub(r"<class '([\w.]+)'>", r"\1", first).replace("typing.", "")
    first = re.sub(r"^Expected a Literal\[(.*)\]", r"expected one of \1", first)
    first = first[0].lower() + first[1:] if first else first
    first = first.replace(". Got value: ", ", got ")
    for name, words in _WORDS.items():
        first = first.replace(f"expected a {name},", f"expected {words},")
    if first.startswith("expected a list,"):
        first += " (write a list as [a, b])"
    path = ".".join(p for p in (where, key) if p)
    return f"{path}: {first}" if path else first


def from_dict(cls: type[C], data: dict[str, Any], where: str = "") -> C:
    """Build dataclass `cls` from a mapping (parsed YAML, command-line strings, or values built in code), checked
    and converted by the class's jsonargparse parser. Unknown keys and ill-typed values raise a one-line
    ReprlError."""
    from jsonargparse import ArgumentError

    if not isinstance(data, dict):
        raise ReprlError(f"{where or cls.__name__}: expected a mapping of {cls.__name__} fields, got {data!r}")
    data = _prepare(cls, data, where)
    parser = _parser(cls)
    try:
        values = parser.instantiate(parser.parse_object(data))
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls)})  # type: ignore[arg-type]  # C is a dataclass
    except ArgumentError as e:
        raise ReprlError(_one_line(str(e), where)) from None
    except (TypeError, ValueError) as e:
        raise ReprlError(f"{where or cls.__name__}: {e}") from None


def field_docs(cls: type) -> dict[str, str]:
    """Each field's one-line doc: the comment that ends its line in the class source (empty if none); a field a
    subclass inherits keeps its base class's doc."""
    import inspect

    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
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


def fields_own_first(cls: type) -> list[dataclasses.Field]:
    """The fields of a dataclass, those it declares itself first and the ones it inherits after (a help
    listing leads with what is particular to the class: data.train before the shared tuple settings)."""
    own = list(inspect.get_annotations(cls))
    fields = dataclasses.fields(cls)
    return (sorted((f for f in fields if f.name in own), key=lambda f: own.index(f.name))
            + [f for f in fields if f.name not in own])


def config_keys(cls: type, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, doc) for every field of a config dataclass, nested sections as section.key."""
    hints = get_type_hints(cls)
    docs = field_docs(cls)
    rows = []
    for f in fields_own_first(cls):
        tp = hints[f.name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            rows += config_keys(tp, f"{prefix}{f.name}.")
            continue
        default = field_default(f)
        text = yaml.safe_dump(to_dict_value(default), default_flow_style=True).strip().removesuffix("...").strip()
        rows.append((prefix + f.name, _type_text(tp), text, docs.get(f.name, "")))
    return rows


def keys_help(cls: type, variants: dict[str, dict[str, type]] | None = None) -> str:
    """A --help epilog listing every key of a config dataclass with its type, default and doc. `variants` maps a
    section whose class depends on its `name` key (e.g. objective) to the class of each name: their keys follow."""
    blocks = [("config keys (in the --config YAML, or on the command line as --KEY VALUE):", config_keys(cls))]
    for section, classes in (variants or {}).items():
        for name, variant in classes.items():
            rows = [r for r in config_keys(variant, f"{section}.") if r[0] != f"{section}.name"]
            blocks.append((f"with {section}.name {name}:", rows))
    width = max(len(k) for _, rows in blocks for k, *_ in rows) + 2
    lines = []
    for title, rows in blocks:
        lines.append(title)
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
    """['--trainer.devices', '2', '--optim.lr=1e-4'] -> nested dict of the strings as typed (the parser converts
    them to the fields' types)."""
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
        value = raw
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


EXTENDS = "extends"  # a YAML file's key naming the file it builds on (a path relative to its own folder)


def merge_variants(base: dict[str, Any], update: dict[str, Any], variants: Mapping[str, str]) -> dict[str, Any]:
    """merge(base, update), except that a section named in `variants` (section -> its default variant name,
    e.g. {"objective": "vip"}) whose `name` in `update` differs from base's (or the default) replaces base's
    section instead of merging into it: settings of another variant do not apply."""
    for section, default in variants.items():
        mine, theirs = update.get(section), base.get(section)
        if isinstance(mine, dict) and isinstance(theirs, dict) and "name" in mine \
                and mine["name"] != theirs.get("name", default):
            base = {**base, section: {}}
    return merge(base, update)


def _yaml_problem(e: Exception) -> str:
    """A YAML error in one line: what is wrong and where (line and column, counted from 1)."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def read_yaml(path: str | Path, variants: Mapping[str, str] | None = None, extends: bool = True,
              _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML file's mapping. With `extends: OTHER.yaml` at its top level, the file holds only what differs from
    OTHER (read the same way, so a chain works): OTHER's mapping is merged with this file's by merge_variants,
    this file winning. extends=False reads the file's own keys only."""
    p = Path(path)
    named = f" (named by extends: in {_chain[-1]})" if _chain else ""
    if not p.exists():
        raise ReprlError(f"config file not found: {p}{named}")
    if p.is_dir():
        raise ReprlError(f"{p} is a folder, not a config file{named}: name a YAML file")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ReprlError(f"{p} is not valid YAML{named}: {_yaml_problem(e)}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ReprlError(f"cannot read {p}{named}: {e}") from None
    if not isinstance(data, dict):
        raise ReprlError(f"{p} should hold a mapping of config sections, got {type(data).__name__}")
    if EXTENDS not in data:
        return data
    base_name = data.pop(EXTENDS)
    if not extends:
        return data
    if not isinstance(base_name, str) or not base_name.strip():
        raise ReprlError(f"{p}: extends: should name one YAML file (a path relative to {p.parent}), "
                         f"got {base_name!r}")
    base_path = p.parent / base_name
    chain = (*_chain, p)
    if base_path.resolve() in {q.resolve() for q in chain}:
        raise ReprlError(f"{p}: extends: {base_name} leads back to a file already in the chain "
                         f"({' -> '.join(str(q) for q in (*chain, base_path))}); remove the loop")
    return merge_variants(read_yaml(base_path, variants, True, chain), data, variants or {})


def load_config(cls: type[C], path: str | Path | None = None, overrides: list[str] | None = None) -> C:
    """Defaults <- YAML file <- command-line overrides (--section.key value), merged and then parsed by the
    class's jsonargparse parser (see from_dict): a value is checked the same way wherever it comes from."""
    data = read_yaml(path) if path else {}
    return from_dict(cls, merge(data, parse_overrides(overrides or [])))


def dump_yaml(cfg: Any, path: str | Path) -> None:
    """`cfg` as YAML, written to a temporary name and renamed (a full disk never leaves half a config)."""
    from reprl.utils.files import write_text_atomic

    write_text_atomic(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


__all__ = ["from_dict", "to_dict", "load_config", "parse_overrides", "dump_yaml", "read_yaml", "merge_variants",
           "EXTENDS"]
