"""Evaluation suite specs (eval/suites/*.yaml): which tasks, demos, heads, seeds and rollouts."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from reprl.errors import ReprlError
from reprl.heads.dualrl import AWRConfig, FDVLConfig, IQLConfig, ReCOILConfig
from reprl.heads.policy import HeadConfig
from reprl.heads.registry import HEADS, head_config, head_revision, settings_section
from reprl.heads.registry import RWRConfig as RWRSpec
from reprl.heads.trail import TRAILConfig
from reprl.sim.tasks import check_camera, task_name
from reprl.typed_config import from_dict, read_yaml, to_dict
from reprl.utils.files import safe_name
from reprl.utils.precision import normalize_precision


@dataclass
class SuiteData:
    """The robot data rendered for a suite (per task)."""

    frame_size: int = 128
    camera: str = "corner"
    expert_episodes: int = 25  # scripted-expert episodes per task; demos are drawn from these
    noisy_episodes: int = 0  # episodes with Gaussian action noise, added to every head's training data
    noise: float = 0.5
    random_episodes: int = 0  # episodes of uniformly random actions, added to every head's training data
    early_stopped_episodes: int = 0  # expert episodes cut after early_stop_steps, added likewise
    early_stop_steps: int = 30
    stop_after_success: int | None = 10  # steps kept after the first success (None: the full horizon)
    seed: int = 0


# Settings added to a head's section after results were committed, with the value that reproduces the head as
# it trained before: at that value a setting is left out of the cell key, so the older cells stay current.
LATER_HEAD_SETTINGS: dict[str, dict[str, object]] = {"fdvl": {"random_actions": 0}}


@dataclass
class SuiteSpec:
    name: str = "suite"
    description: str = ""
    tasks: list[str] = field(default_factory=lambda: ["drawer-open"])
    demos: list[int] = field(default_factory=lambda: [10])  # expert demo counts to train on
    seeds: list[int] = field(default_factory=lambda: [0])
    heads: list[str] = field(default_factory=lambda: ["bc"])  # bc | rwr | rwr_chi2 | awr | iql | fdvl | recoil | trail
    head: HeadConfig = field(default_factory=HeadConfig)  # the actor of every head, its steps, batch and lr
    rwr: RWRSpec = field(default_factory=RWRSpec)
    awr: AWRConfig = field(default_factory=AWRConfig)
    iql: IQLConfig = field(default_factory=IQLConfig)
    fdvl: FDVLConfig = field(default_factory=FDVLConfig)
    recoil: ReCOILConfig = field(default_factory=ReCOILConfig)
    trail: TRAILConfig = field(default_factory=TRAILConfig)
    data: SuiteData = field(default_factory=SuiteData)
    rollouts: int = 50
    horizon: int = 500
    evaluations: int = 1  # evaluate this many times during head training (R3M reports the max; we report both)
    parallel_envs: int | None = None  # rollouts stepped in lockstep; None: 20 with 8 GB of memory free, else 10
    final_step_success: bool = False  # also record success at the final step: every rollout runs the full horizon
    settle_steps: int = 10  # otherwise a rollout ends this many steps after its first success
    env_workers: int | None = None  # processes stepping + rendering the envs; None: one per core; 0: none
    eval_seed: int = 100000
    save_policies: bool = True  # write every trained head as a policy folder under policies/
    precision: str = "32"  # the encoder's forward (demo embeddings and rollouts): 32, or bf16 (autocast; faster on
    # CPUs with bfloat16 instructions, embeddings close to float32's, not equal; its cells and embeddings are kept
    # apart); 16 on CUDA only
    compile: bool = False  # run the encoder compiled in rollouts (torch.compile, frozen weights; faster on the CPU,
    # outputs equal up to rounding, so its cells are kept apart; the demos are embedded uncompiled)

    def __post_init__(self) -> None:
        self.tasks = [task_name(t) for t in self.tasks]
        self.precision = normalize_precision(self.precision)
        check_camera(self.data.camera)
        bad = [h for h in self.heads if h not in HEADS]
        if bad:
            raise ReprlError(f"unknown head(s) {bad}; choose from {', '.join(HEADS)}")
        for h in self.heads:
            head_config(h, self.head_config(h))  # ranges of every used head's settings
        for key, example in (("tasks", "[drawer-open]"), ("demos", "[10]"), ("seeds", "[0]"), ("heads", "[bc]")):
            if not getattr(self, key):
                raise ReprlError(f"{key} is an empty list: give at least one (e.g. {key}: {example})")
        if safe_name(self.name) != self.name:
            raise ReprlError(f"name {self.name!r} names the results folder under --out: use only letters, digits, "
                             "'_', '-' and '.', without '..' or '/'")
        if max(self.demos) > self.data.expert_episodes:
            raise ReprlError(f"demos {self.demos} need at least {max(self.demos)} expert episodes per task "
                             f"(data.expert_episodes is {self.data.expert_episodes})")
        if min(self.rollouts, self.horizon, self.evaluations, 1 if self.parallel_envs is None else self.parallel_envs,
               min(self.demos)) < 1:
            raise ReprlError("rollouts, horizon, evaluations, parallel_envs and demos must be at least 1")
        if self.settle_steps < 0 or (self.env_workers is not None and self.env_workers < 0):
            raise ReprlError(f"settle_steps and env_workers must be >= 0, got {self.settle_steps} and "
                             f"{self.env_workers}")

    def head_config(self, kind: str) -> object:
        """The settings of head `kind` (rwr_chi2 shares rwr's)."""
        return getattr(self, settings_section(kind), None)

    def data_key(self) -> str:
        """Identifies the rendered data: re-render when any data setting changes."""
        return hashlib.sha1(json.dumps(self._data_dict(), sort_keys=True).encode()).hexdigest()[:12]

    def _data_dict(self) -> dict:
        data = to_dict(self.data)
        if not (self.data.random_episodes or self.data.early_stopped_episodes):  # so the keys of data rendered
            for k in ("random_episodes", "early_stopped_episodes", "early_stop_steps"):  # before these settings
                data.pop(k)  # existed stay the same
        return data

    def cell_key(self, head: str | None = None) -> str:
        """Identifies everything a result cell of `head` depends on besides encoder, task, demos, seed and head:
        the shared settings and that head's own section, so adding a head to a suite or changing another head's
        settings leaves its finished cells valid. A precision other than float32 adds it, and so does compile.
        How the envs are spread (parallel_envs, env_workers) does not change results; full-horizon rollouts give
        what they gave before settle_steps existed, so their cells keep their key. A head whose revision
        (reprl.heads.registry.REVISIONS) is above 0 adds it, so cells an older revision of that head trained are
        not reused; settings in LATER_HEAD_SETTINGS are left out at their earlier value. Without `head`: the key
        cells were written with before keys were per head (the settings of every head the suite runs, and
        rwr's); those cells are still reused while the suite is unchanged."""
        if head is None:
            others = {h for h in HEADS if h not in self.heads and h != "rwr"}
        else:
            own = settings_section(head)
            others = {h for h in HEADS if h != own}
        skip = {"name", "description", "tasks", "demos", "seeds", "heads", "parallel_envs", "env_workers",
                "save_policies", *others}
        if self.precision == "32":
            skip.add("precision")  # float32 cells keep the key they had before the setting existed
        if not self.compile:
            skip.add("compile")  # likewise uncompiled cells
        if self.final_step_success:
            skip |= {"final_step_success", "settle_steps"}
        parts = {k: v for k, v in to_dict(self).items() if k not in skip}
        parts["data"] = self._data_dict()
        for section, later in LATER_HEAD_SETTINGS.items():
            if section in parts:
                parts[section] = {k: v for k, v in parts[section].items() if not (k in later and later[k] == v)}
        if head is not None and head_revision(head):
            parts["revision"] = head_revision(head)
        return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def load_suite(path: str | Path) -> SuiteSpec:
    data = read_yaml(path)  # a suite may extend another; its name is its own (or its file's), never the base's
    if not data:
        raise ReprlError(f"suite {path} is empty: give at least its tasks (see eval/suites/*.yaml)")
    data["name"] = read_yaml(path, extends=False).get("name", safe_name(Path(path).stem))  # a file name: made safe
    if isinstance(data.get("precision"), int) and not isinstance(data["precision"], bool):
        data["precision"] = str(data["precision"])  # `precision: 32` unquoted in YAML
    return from_dict(SuiteSpec, data, "suite")
