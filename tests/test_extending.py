"""docs/extending.md's worked example, run as written: an objective registered from outside the package is
trained through `reprl pretrain` with no edit to reprl/, and its loss matches hand-computed values."""

from __future__ import annotations

import csv
import importlib
import math
import re
import sys
from pathlib import Path

import pytest
import torch
from conftest import TRAIN_SHARDS

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


@pytest.fixture()
def plugin(tmp_path, monkeypatch):
    """The page's code block saved as my_objectives.py on sys.path, as the page tells a user to do."""
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    (tmp_path / "my_objectives.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_objectives", None)
    return importlib.import_module("my_objectives")


def pretrain(run: Path, *extra: str) -> int:
    from reprl.cli import main

    args = ["pretrain", "--run_dir", str(run), "--encoder.name", "tiny", "--encoder.image_size", "32",
            "--encoder.embed_dim", "8", "--data.train", TRAIN_SHARDS, "--data.batch_size", "4",
            "--data.num_workers", "0", "--data.shuffle_buffer", "4", "--trainer.max_steps", "3",
            "--trainer.checkpoint_every", "3", "--trainer.log_every", "1", "--trainer.progress", "false",
            "--trainer.loggers", "csv", "--trainer.accelerator", "cpu", *extra]
    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code


def test_the_expectile_loss_matches_hand_computed_values(plugin):
    # two tuples in 2-d. Tuple 1: V(t1, g) = -2, V(t, g) = -3, target = -1 + 0.5 * -2 = -2, u = 1, weight 0.9.
    # Tuple 2: V(t1, g) = -3, V(t, g) = -1, target = -1 + 0.5 * -3 = -2.5, u = -1.5, weight 0.1.
    # loss = (0.9 * 1 + 0.1 * 2.25) / 2 = 0.5625
    objective = plugin.ExpectileValue(plugin.ExpectileConfig(tau=0.9, gamma=0.5))
    emb = {"t": torch.tensor([[0.0, 0.0], [0.0, 0.0]], requires_grad=True),
           "t1": torch.tensor([[1.0, 0.0], [0.0, 4.0]], requires_grad=True),
           "goal": torch.tensor([[3.0, 0.0], [0.0, 1.0]], requires_grad=True)}
    loss, metrics = objective(emb, ["", ""], encoder=None)
    assert math.isclose(loss.item(), 0.5625, rel_tol=1e-6)
    assert math.isclose(metrics["u_mean"].item(), (1 - 1.5) / 2, rel_tol=1e-6)
    loss.backward()
    assert emb["t1"].grad is None, "the target is a constant (semi-gradient)"
    assert torch.count_nonzero(emb["t"].grad) > 0 and torch.count_nonzero(emb["goal"].grad) > 0


def test_an_objective_registered_outside_reprl_trains_through_reprl_pretrain(plugin, tmp_path, capsys):
    from reprl.data.sampling import SAMPLING_MODES

    assert SAMPLING_MODES["expectile"].roles == ("t", "t1", "goal")  # its sampler became a stream mode
    run = tmp_path / "run"
    assert pretrain(run, "--plugins", "my_objectives", "--objective.name", "expectile",
                    "--objective.tau", "0.9") == 0
    assert (run / "encoder" / "model.safetensors").is_file()
    with open(run / "logs" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss")]
    assert len(rows) == 3 and all(math.isfinite(float(r["train/loss"])) for r in rows)
    assert all(r.get("train/u_mean") for r in rows), "the objective's own metric is logged"


@pytest.mark.parametrize(("extra", "message"), [
    (["--objective.taux", "0.9"], "--objective.taux does not apply to the expectile objective (its settings: name, "
                                  "tau, gamma)"),
    (["--objective.tcn_weight", "2"], "--objective.tcn_weight does not apply to the expectile objective"),
    (["--data.goal_last", "true"], "data.goal_last does not apply to the expectile objective"),
])
def test_an_added_objectives_settings_are_checked_before_anything_is_written(plugin, tmp_path, capsys, extra,
                                                                             message):
    run = tmp_path / "run"
    assert pretrain(run, "--plugins", "my_objectives", "--objective.name", "expectile", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and not run.exists()


def test_options_on_a_built_in_objective_and_a_missing_plugin_are_one_line_errors(tmp_path, capsys):
    run = tmp_path / "run"
    assert pretrain(run, "--objective.tau", "0.9") == 2
    assert "--objective.tau does not apply to the vip objective" in capsys.readouterr().err
    assert pretrain(run, "--plugins", "no_such_module_here") == 2
    err = capsys.readouterr().err.strip()
    assert "plugins: cannot import 'no_such_module_here'" in err and "\n" not in err and not run.exists()


def test_registering_an_objective_whose_sampling_cannot_give_its_roles_is_refused():
    from reprl.errors import ReprlError
    from reprl.objectives import Objective, register_objective

    class WrongRoles(Objective):
        name, mode, roles = "wrong_roles", "vip", ("t", "t1", "anchor")

    class NoSampler(Objective):
        name, roles = "no_sampler", ("t", "t1")

    class ShadowsVIP(Objective):
        name, mode, roles = "vip", "vip", ("t", "t1")

    with pytest.raises(ReprlError, match="does not draw its roles"):
        register_objective(WrongRoles)
    with pytest.raises(ReprlError, match="define sample"):
        register_objective(NoSampler)
    with pytest.raises(ReprlError, match="built in"):
        register_objective(ShadowsVIP)
