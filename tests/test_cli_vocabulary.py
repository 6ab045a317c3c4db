"""One CLI vocabulary: defaults in every --help, -q after the subcommand, shared --device / --precision, and
`reprl embed` on a folder of videos."""

import argparse
import csv
import json
import shutil

import pytest
from conftest import VIDEO

from reprl.cli import build_parser, main, precision
from reprl.embed.plot import short_name


def leaf_parsers(parser, name="reprl"):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield name, parser
    for action in subs:
        for child_name, child in action.choices.items():
            yield from leaf_parsers(child, f"{name} {child_name}")


def test_every_help_shows_every_default_and_takes_q():
    leaves = dict(leaf_parsers(build_parser()))
    assert {"reprl score", "reprl embed", "reprl bench embed", "reprl list"} <= set(leaves)
    for name, p in leaves.items():
        fmt = p._get_formatter()
        for a in p._actions:
            if a.option_strings and a.default not in (None, False, argparse.SUPPRESS) and a.dest != "help":
                assert "default" in fmt._get_help_string(a), f"{name} {a.option_strings[0]}"
        assert any("-q" in a.option_strings for a in p._actions), name
    devices = {name: next(a for a in p._actions if "--device" in a.option_strings)
               for name, p in leaves.items() if any("--device" in a.option_strings for a in p._actions)}
    assert {"reprl score", "reprl embed", "reprl eval", "reprl bench embed"} <= set(devices)
    assert all(a.default == "cpu" for n, a in devices.items() if n != "reprl bench train")


def test_q_after_the_subcommand_is_quiet(capsys):
    with pytest.raises(SystemExit) as e:
        main(["list", "-q"])
    assert e.value.code == 0 and "RANDOM INIT" in capsys.readouterr().out
    args = build_parser().parse_args(["list", "-q"])
    assert args.quiet is True and build_parser().parse_args(["list"]).quiet is False


def test_precision_vocabulary():
    assert [precision(t) for t in ("32", "bf16", "bf16-mixed", "16-mixed", "32-true")] == ["32", "bf16", "bf16",
                                                                                           "16", "32"]
    for bad in ("fp8", "auto"):  # embedding has no "auto": its converter refuses it up front, as its message says
        with pytest.raises(argparse.ArgumentTypeError, match="precision must be 32, bf16 or 16"):
            precision(bad)


def test_panel_names_keep_their_start_and_end():
    assert short_name("abc", 5) == "abc"
    assert short_name("0000001_drawer-open_corner_episode1", 11) == "00000\u2026sode1"


def test_embed_a_folder_of_videos_gives_one_result_per_video(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(VIDEO, videos / "first take.mp4")
    shutil.copy(VIDEO, videos / "second.mp4")
    with pytest.raises(SystemExit) as e:
        main(["embed", str(videos), "--encoder", "tiny", "--out", str(tmp_path / "out"), "--no-progress", "-q"])
    assert e.value.code == 0
    printed = capsys.readouterr().out
    assert "embedded 2 videos, 194 frames with tiny (random init)" in printed
    out = tmp_path / "out"
    rows = list(csv.DictReader((out / "videos.csv").open()))
    assert [r["key"] for r in rows] == ["0000000_first_take", "0000001_second"]
    assert sorted(p.name for p in (out / "embeddings").iterdir()) == ["0000000_first_take.npy", "0000001_second.npy"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "videos" and summary["encoder"]["label"] == "tiny (random init)"


@pytest.mark.parametrize("command,cls,minimal,renamed", [
    ("shards", "ShardOptions", ["in", "--out", "o"], {}),
    ("render", "CorpusConfig", ["--out", "o"], {}),
    ("embed", "EmbedOptions", ["in.mp4", "--encoder", "e", "--out", "o"], {"goal_image": "--goal",
                                                                          "progress": "--no-progress"}),
    ("bench data", "DataBenchConfig", [], {}),
    ("bench train", "TrainBenchConfig", [], {"num_workers": "--workers", "accelerator": "--device"}),
    ("bench embed", "EmbedBenchConfig", [], {}),
    ("bench eval", "EvalBenchConfig", [], {"workers": "--env-workers", "serial": "--no-serial"}),
    ("eval", "EvalOptions", ["--suite", "s.yaml", "--encoder", "e"], {}),
    ("score", "ScoreOptions", ["shards", "--encoder", "e"], {}),
    ("heads train", "HeadsTrainOptions", ["--demos", "d", "--encoder", "e", "--out", "o"], {"settings": "--set"}),
    ("stream", "StreamOptions", ["shards"], {"augment": "--no-augment"}),
])
def test_command_options_come_from_their_config_class(command, cls, minimal, renamed, capsys):
    """Every field of the command's config dataclass has an option in its --help, and parsing only the required
    arguments gives the class's own defaults (a default is written once, in reprl/options.py)."""
    import dataclasses

    import reprl.options as options

    config = getattr(options, cls)
    leaves = dict(leaf_parsers(build_parser()))
    text = leaves[f"reprl {command}"].format_help()
    for f in dataclasses.fields(config):
        assert f.name in ("input", "shards") or renamed.get(f.name, "--" + f.name.replace("_", "-")) in text, \
            (command, f.name)
    parsed = options.from_args(config, build_parser().parse_args([*command.split(), *minimal]))
    defaults = {f.name: f.default for f in dataclasses.fields(config) if f.default is not dataclasses.MISSING}
    assert {k: getattr(parsed, k) for k in defaults} == defaults
    if command == "render":
        args = build_parser().parse_args(["render", "--out", "o", "--stop-after-success", "-1", "--episodes", "7"])
        assert (options.from_args(config, args).stop_after_success, args.episodes) == (None, 7)
    if command == "embed":
        args = build_parser().parse_args(["embed", *minimal, "--goal", "g.png", "--no-progress", "--precision",
                                          "bf16-mixed"])
        opts = options.from_args(config, args)
        assert (opts.goal_image, opts.progress, opts.precision, opts.input) == ("g.png", False, "bf16", "in.mp4")


def test_command_values_go_through_the_typed_config_path():
    """from_args builds a command's config through typed_config.from_dict, the path of presets and suites: values
    set in code are checked like a YAML value, and a list from argparse becomes the field's tuple."""
    import reprl.options as options
    from reprl.errors import ReprlError

    args = build_parser().parse_args(["score", "shards", "--encoder", "e"])
    with pytest.raises(ReprlError, match="^videos: expected an integer, got many$"):
        options.from_args(options.ScoreOptions, args, videos="many")
    stream = options.from_args(options.StreamOptions,
                               build_parser().parse_args(["stream", "s", "--crop-scale", "0.5", "0.9"]))
    assert stream.crop_scale == (0.5, 0.9) and isinstance(stream.crop_scale, tuple)
    embed = options.from_args(options.EmbedOptions, build_parser().parse_args(
        ["embed", "in.mp4", "--encoder", "e", "--out", "o", "--goal-text", "null"]))
    assert embed.goal_text == "null"  # a flag's text is not read as YAML's null
