"""The objective registry: the only place that maps an objective's name to its class. Each objective class
(reprl/objectives/base.py: Objective) declares what training needs from it: the frame roles of a tuple and how
they are drawn (its sampling mode), its settings (`Config`: a dataclass of its own fields, so a VIP run refuses
R3M's tcn_weight) and how it is built; the stream, the module and the config checks ask the class. The built-in
objectives live in vip.py, liv.py and r3m.py, one module each; adding one is a new module and one entry in
BUILT_IN_CLASSES (or register_objective from a plugin: docs/extending.md)."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any

from reprl.encoders.base import Encoder
from reprl.errors import ReprlError
from reprl.objectives.base import Objective, ObjectiveConfig, ValueConfig
from reprl.objectives.liv import LIVConfig, LIVObjective
from reprl.objectives.r3m import R3MConfig, R3MObjective
from reprl.objectives.vip import VIPConfig, VIPObjective

__all__ = ["Objective", "ObjectiveConfig", "ValueConfig", "VIPConfig", "LIVConfig", "R3MConfig", "OBJECTIVES",
           "register_objective", "objective_class", "objective_config", "data_mode", "build_objective"]

OBJECTIVES: dict[str, type[Objective]] = {}


def register_objective(cls: type[Objective]) -> type[Objective]:
    """Make `cls` trainable by name (`--objective.name NAME`); usable as a class decorator. An objective with
    its own `sample` gets a sampling mode of the same name."""
    from reprl.data.sampling import SAMPLING_MODES, register_mode

    if not cls.name or not cls.roles:
        raise ReprlError(f"{cls.__name__}: an objective needs a name and the roles of its training tuples")
    config = cls.Config
    if not (isinstance(config, type) and issubclass(config, ObjectiveConfig) and is_dataclass(config)):
        raise ReprlError(f"{cls.__name__}: Config must be a dataclass subclassing ObjectiveConfig (its settings)")
    if cls.name in OBJECTIVES and OBJECTIVES[cls.name] is not cls and cls.name in BUILT_IN:
        raise ReprlError(f"objective {cls.name!r} is built in; register yours under another name")
    if cls.mode is None:
        sample = getattr(cls, "sample", None)
        if sample is None:
            raise ReprlError(f"{cls.__name__}: name a built-in sampling mode or define sample(length, rng)")
        try:
            register_mode(cls.name, cls.roles, sample, needs_text=cls.needs_text)
        except ValueError as e:
            raise ReprlError(f"{cls.__name__}: {e}") from None
    else:
        for mode in (cls.mode, cls.goal_last_mode):
            if mode is None:
                continue
            drawn = SAMPLING_MODES[mode].roles if mode in SAMPLING_MODES else ()
            if not set(cls.roles) <= set(drawn):
                raise ReprlError(f"{cls.__name__}: sampling mode {mode!r} does not draw its roles {cls.roles} "
                                 f"(modes: {', '.join(SAMPLING_MODES)})")
    OBJECTIVES[cls.name] = cls
    return cls


BUILT_IN_CLASSES: tuple[type[Objective], ...] = (VIPObjective, LIVObjective, R3MObjective)  # one line each
BUILT_IN = tuple(c.name for c in BUILT_IN_CLASSES)
for _cls in BUILT_IN_CLASSES:
    register_objective(_cls)


def objective_class(name: str) -> type[Objective]:
    cls = OBJECTIVES.get(name)
    if cls is None:
        raise ReprlError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)} (or register yours: "
                         "docs/extending.md)")
    return cls


def objective_config(section: dict[str, Any]) -> ObjectiveConfig:
    """The `objective` section as the chosen objective's Config. A key that objective does not have is refused,
    naming the keys it has (objectives from plugins must be registered first)."""
    from reprl.typed_config import from_dict

    if not isinstance(section, dict):
        raise ReprlError(f"objective: expected a mapping of objective settings, got {section!r}")
    name = str(section.get("name", ObjectiveConfig.name))
    cls = objective_class(name)
    own = [f.name for f in fields(cls.Config)]
    foreign = [k for k in section if k not in own]
    if foreign:
        raise ReprlError(f"--objective.{foreign[0]} does not apply to the {name} objective (its settings: "
                         f"{', '.join(own)}): remove it or choose another --objective.name")
    return from_dict(cls.Config, {**section, "name": name}, "objective")


def data_mode(cfg: ObjectiveConfig, goal_last: bool = False) -> str:
    """The sampling mode an objective trains on (its class says)."""
    return objective_class(cfg.name).data_mode(goal_last)


def build_objective(cfg: ObjectiveConfig, encoder: Encoder) -> Objective:
    return objective_class(cfg.name).build(cfg, encoder)
