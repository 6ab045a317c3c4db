from dataclasses import dataclass, field
from typing import Literal

import pytest

from reprl.errors import ReprlError
from reprl.typed_config import from_dict, load_config, parse_overrides


@dataclass
class Inner:
    devices: int = 1
    precision: str = "32"
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass
class Outer:
    trainer: Inner = field(default_factory=Inner)
    name: Literal["vip", "liv"] = "vip"
    path: str | None = None
    on: bool = False


def test_typo_names_the_valid_keys():
    with pytest.raises(ReprlError, match=r"unknown config key 'devcies' in 'trainer'; valid keys: devices, "
                                         r"precision, betas"):
        from_dict(Outer, {"trainer": {"devcies": 2}})
    with pytest.raises(ReprlError, match="valid keys: trainer, name, path, on"):
        from_dict(Outer, {"trainr": {}})


@pytest.mark.parametrize("data, message", [
    ({"name": "r3m"}, "name: expected one of 'vip', 'liv', got r3m"),
    ({"trainer": {"devices": "two"}}, "trainer.devices: expected an integer"),
    ({"trainer": {"devices": 1.5}}, "expected an integer"),
    ({"trainer": {"betas": [0.9]}}, r"trainer.betas: expected a tuple with 2 elements, got \[0.9\]"),
    ({"path": 5}, "path: expected one of str, null, got 5"),
    ({"on": "maybe"}, "expected true or false"),
    ({"trainer": 3}, "expected a mapping"),
])
def test_ill_typed_values(data, message):
    with pytest.raises(ReprlError, match=message):
        from_dict(Outer, data)


def test_yaml_then_overrides(tmp_path):
    (tmp_path / "c.yaml").write_text("trainer:\n  devices: 2\n  betas: [0.8, 0.9]\nname: liv\n")
    cfg = load_config(Outer, tmp_path / "c.yaml", ["--trainer.devices", "4", "--path=/x", "--on", "true"])
    assert cfg == Outer(trainer=Inner(devices=4, betas=(0.8, 0.9)), name="liv", path="/x", on=True)
    assert load_config(Outer, None, ["--path", "null"]).path is None


def test_override_syntax_errors():
    with pytest.raises(ReprlError, match="needs a value"):
        parse_overrides(["--trainer.devices"])
    with pytest.raises(ReprlError, match="overrides look like"):
        parse_overrides(["devices=2"])
    with pytest.raises(ReprlError, match="config file not found"):
        load_config(Outer, "/nope.yaml")


def test_atomic_writes_replace_whole_files_and_leave_no_partial(tmp_path, monkeypatch):
    import json

    from reprl.utils import files

    target = tmp_path / "sub" / "result.json"
    files.write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", broken_replace)
    with pytest.raises(OSError):
        files.write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}  # the old file is untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.json"]  # a failed rename leaves no temp
    monkeypatch.undo()
    files.write_text_atomic(target, "x")
    assert target.read_text() == "x" and sorted(p.name for p in target.parent.iterdir()) == ["result.json"]
    mine = target.with_name("result.partial.json")  # a file of the user's that looks like a temporary name
    mine.write_text("mine")
    files.write_json(target, {"a": 3})
    assert mine.read_text() == "mine" and json.loads(target.read_text()) == {"a": 3}


def test_staging_dir_swaps_in_whole_outputs_and_keeps_the_old_one_on_failure(tmp_path):
    from reprl.utils.files import StagingDir, replacing

    out = tmp_path / "out"
    with StagingDir(out) as d:
        (d / "a.txt").write_text("first")
    assert (out / "a.txt").read_text() == "first"
    with pytest.raises(RuntimeError), StagingDir(out) as d:
        (d / "a.txt").write_text("half")
        raise RuntimeError("killed")
    assert (out / "a.txt").read_text() == "first"  # the old output is untouched
    with pytest.raises(ReprlError, match="--overwrite"):
        StagingDir(out, overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging or old folders left behind
    with pytest.raises(ValueError), replacing(tmp_path / "x.npz") as tmp:
        tmp.write_text("partial")
        raise ValueError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_staging_dir_writes_through_a_symlinked_out_and_keeps_the_link(tmp_path):
    """An --out that is a symbolic link to an earlier output: the folder it points to is replaced (the user's
    other files carried over) and the link stays a link; no '.old' entry is left beside either."""
    from reprl.utils.files import StagingDir

    target, link = tmp_path / "target", tmp_path / "link"
    target.mkdir()
    (target / "a.txt").write_text("first")
    (target / "notes.md").write_text("mine")
    link.symlink_to(target)
    with StagingDir(link, own=["a.txt"]) as d:
        (d / "a.txt").write_text("second")
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert (target / "a.txt").read_text() == "second" and (target / "notes.md").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "target"]


def test_pretrain_help_lists_every_config_key_with_its_type_default_and_doc(capsys):
    """`reprl pretrain --help` shows every key of PretrainConfig (nested sections as section.key) with its type,
    default and one-line doc, all taken from the dataclasses."""
    import dataclasses

    from reprl.cli import main
    from reprl.training.config import PretrainConfig

    def keys(cls, prefix=""):
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(f.type) or (isinstance(f.default_factory, type)
                                                    and dataclasses.is_dataclass(f.default_factory)):
                yield from keys(f.default_factory, f"{prefix}{f.name}.")
            else:
                yield prefix + f.name

    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    lines = {line.split()[0]: line for line in listed}
    order = [line.split()[0] for line in listed]  # a section's own keys lead, the inherited tuple settings follow
    assert order.index("data.train") < order.index("data.val_max_frames") < order.index("data.crop_scale")
    from reprl.objectives.registry import LIVConfig, R3MConfig

    expected = [*keys(PretrainConfig), *keys(LIVConfig, "objective."), *keys(R3MConfig, "objective.")]
    assert len(expected) > 60
    for key in expected:
        assert key in lines, f"{key} missing from reprl pretrain --help"
        assert " = " in lines[key] and lines[key].rstrip().endswith(")"), f"{key} has no type, default or doc"
    assert "{kl|chi2|tv} = kl" in lines["objective.f"] and "int = 32" in lines["data.batch_size"]


@dataclass
class WithLists:
    plugins: list[str] = field(default_factory=list)
    hidden: tuple[int, ...] = (256, 256)
    options: dict = field(default_factory=dict)


def test_one_parser_for_yaml_command_line_and_code(tmp_path):
    """A YAML value, a command-line string and a value built in code reach the same field through the same parser:
    lists as YAML lists or, on the command line, comma-separated without brackets; a mapping field takes sub-keys."""
    (tmp_path / "c.yaml").write_text("plugins: [a, b]\noptions: {tau: 0.5}\n")
    cfg = load_config(WithLists, tmp_path / "c.yaml", ["--hidden", "16,16", "--options.gamma", "0.9"])
    assert cfg == WithLists(plugins=["a", "b"], hidden=(16, 16), options={"tau": 0.5, "gamma": "0.9"})
    assert load_config(WithLists, None, ["--plugins", "my_module"]).plugins == ["my_module"]
    assert load_config(WithLists, None, ["--hidden", "[8, 4]"]).hidden == (8, 4)
    assert from_dict(WithLists, {"hidden": [1, 2, 3]}).hidden == (1, 2, 3)
    with pytest.raises(ReprlError, match="^hidden: expected an integer, got x$"):
        load_config(WithLists, None, ["--hidden", "1,x"])


def test_extends_merges_a_chain_of_files_relative_to_each_file(tmp_path, monkeypatch):
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "base.yaml").write_text("trainer:\n  devices: 2\n  precision: '16'\nname: liv\n")
    (tmp_path / "presets" / "mid.yaml").write_text("extends: base.yaml\ntrainer:\n  devices: 3\n")
    (tmp_path / "top.yaml").write_text("extends: presets/mid.yaml\npath: /x\n")
    monkeypatch.chdir("/")  # the base is found next to the file that names it, not in the working folder
    cfg = load_config(Outer, tmp_path / "top.yaml", ["--trainer.precision", "bf16"])
    assert cfg == Outer(trainer=Inner(devices=3, precision="bf16"), name="liv", path="/x")
    from reprl.typed_config import read_yaml
    assert read_yaml(tmp_path / "presets" / "mid.yaml", extends=False) == {"trainer": {"devices": 3}}


def test_extends_replaces_a_variant_section_that_names_another_variant(tmp_path):
    from reprl.typed_config import read_yaml
    (tmp_path / "vip.yaml").write_text("objective: {name: vip, gamma: 0.9, f: kl}\ndata: {batch_size: 8}\n")
    (tmp_path / "chi2.yaml").write_text("extends: vip.yaml\nobjective: {f: chi2}\n")
    (tmp_path / "r3m.yaml").write_text("extends: vip.yaml\nobjective: {name: r3m, tcn_weight: 2.0}\n")
    variants = {"objective": "vip"}
    assert read_yaml(tmp_path / "chi2.yaml", variants) == {"objective": {"name": "vip", "gamma": 0.9, "f": "chi2"},
                                                           "data": {"batch_size": 8}}
    assert read_yaml(tmp_path / "r3m.yaml", variants) == {"objective": {"name": "r3m", "tcn_weight": 2.0},
                                                          "data": {"batch_size": 8}}
    assert read_yaml(tmp_path / "r3m.yaml")["objective"]["gamma"] == 0.9  # without the rule: a plain merge
    (tmp_path / "default.yaml").write_text("objective: {gamma: 0.9}\n")  # no name: the default variant, vip
    (tmp_path / "r3m_on_default.yaml").write_text("extends: default.yaml\nobjective: {name: r3m}\n")
    assert read_yaml(tmp_path / "r3m_on_default.yaml", variants) == {"objective": {"name": "r3m"}}


@pytest.mark.parametrize("text, message", [
    ("extends: nope.yaml\n", r"config file not found: .*nope.yaml \(named by extends: in .*c.yaml\)"),
    ("extends: c.yaml\n", r"extends: c.yaml leads back to a file already in the chain .*remove the loop"),
    ("extends: [a.yaml, b.yaml]\n", r"extends: should name one YAML file .*got \['a.yaml', 'b.yaml'\]"),
    ("extends: ''\n", "extends: should name one YAML file"),
    ("extends: presets\n", r"presets is a folder, not a config file \(named by extends: in .*c.yaml\): name a YAML"),
    ("extends: latin1.yaml\n", r"cannot read .*latin1.yaml \(named by extends: in .*c.yaml\): 'utf-8' codec"),
])
def test_bad_extends_is_one_line(tmp_path, text, message):
    (tmp_path / "presets").mkdir()
    (tmp_path / "latin1.yaml").write_bytes("trainer: {run_name: caf\u00e9}\n".encode("latin-1"))
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ReprlError, match=message) as e:
        load_config(Outer, tmp_path / "c.yaml")
    assert "\n" not in str(e.value)


def test_a_loop_through_two_files_is_reported(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ReprlError, match=r"a.yaml -> .*b.yaml -> .*a.yaml\); remove the loop"):
        load_config(Outer, tmp_path / "a.yaml")


def test_print_config_checks_what_a_run_would_check(capsys):
    """`reprl pretrain --print-config` refuses settings a run would refuse (here an other-episodes goal share on R3M
    tuples, which have no goal frame), in one line, and prints a config that passes."""
    from reprl.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["pretrain", "--config", "configs/pretrain/study_r3m.yaml", "--print-config", "--data.other_goal", "0.5"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--data.other_goal" in err and "set --data.other_goal to 0" in err
    with pytest.raises(SystemExit) as exit_:
        main(["pretrain", "--config", "configs/pretrain/study_r3m.yaml", "--print-config"])
    assert exit_.value.code == 0
    assert "objective:" in capsys.readouterr().out


@pytest.mark.parametrize("text, where", [("tasks: [a, b\n", "line 2, column 1"),
                                         ("a: 1\n  b: 2\n", "line 2, column 4")])
def test_invalid_yaml_is_one_line_with_its_place(tmp_path, text, where):
    """A YAML syntax error is one line that says what is wrong and where (PyYAML's own text spans several)."""
    from reprl.typed_config import read_yaml

    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ReprlError) as e:
        read_yaml(tmp_path / "bad.yaml")
    assert "\n" not in str(e.value) and "is not valid YAML" in str(e.value) and where in str(e.value)


def test_every_pretraining_preset_resolves(capsys):
    """Every preset under configs/pretrain/ passes the checks a run makes (extends chains included), and a lever
    preset carries its lever: study_tiny_long_g0995 is study_tiny_long with gamma 0.995 and its own run folder,
    study_tiny_long_r3m is study_tiny_long with study_r3m's objective, study_tiny_long_chi2 is
    study_tiny_long_g0995 with f = chi2, study_tiny_long_liv is study_tiny_long with study_liv's objective on the
    small CNN with a text tower, for the steps its slower step buys in the same time."""
    from pathlib import Path

    import yaml

    from reprl.cli import main

    resolved = {}
    for preset in sorted(Path("configs/pretrain").glob("*.yaml")):
        with pytest.raises(SystemExit) as exit_:
            main(["pretrain", "--config", str(preset), "--print-config"])
        assert exit_.value.code == 0, preset
        resolved[preset.stem] = yaml.safe_load(capsys.readouterr().out)
    assert len(resolved) >= 10
    long, g0995 = resolved["study_tiny_long"], resolved["study_tiny_long_g0995"]
    assert long["objective"]["gamma"] == 0.98 and g0995["objective"]["gamma"] == 0.995
    assert g0995["run_dir"] == "study_out/runs/study_tiny_long_g0995" and g0995["trainer"] == long["trainer"]
    assert {k: v for k, v in g0995["objective"].items() if k != "gamma"} == {
        k: v for k, v in long["objective"].items() if k != "gamma"}
    r3m = resolved["study_tiny_long_r3m"]  # R3M's objective at the small CNN's whole budget: only the objective differs
    assert r3m["objective"] == resolved["study_r3m"]["objective"] and r3m["run_dir"].endswith("study_tiny_long_r3m")
    assert all(r3m[k] == long[k] for k in ("encoder", "data", "optim", "trainer"))
    chi2 = resolved["study_tiny_long_chi2"]  # the chi2 dual at the best recipe's budget: only f differs
    assert chi2["objective"]["f"] == "chi2" and g0995["objective"]["f"] == "kl"
    assert {k: v for k, v in chi2["objective"].items() if k != "f"} == {
        k: v for k, v in g0995["objective"].items() if k != "f"}
    assert chi2["run_dir"].endswith("study_tiny_long_chi2")
    assert all(chi2[k] == g0995[k] for k in ("encoder", "data", "optim", "trainer"))
    liv = resolved["study_tiny_long_liv"]  # LIV at the best recipe's budget, on the small CNN with a text tower
    assert liv["objective"] == resolved["study_liv"]["objective"] and liv["run_dir"].endswith("study_tiny_long_liv")
    assert liv["encoder"] == {**long["encoder"], "name": "tiny-minilm"} and long["encoder"]["name"] == "tiny"
    assert all(liv[k] == long[k] for k in ("data", "optim"))
    assert liv["trainer"] == {**long["trainer"], "max_steps": 15000, "val_every": 5000, "checkpoint_every": 5000}
