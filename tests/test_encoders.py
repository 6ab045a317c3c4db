import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import reference_resnet
from PIL import Image

import reprl
from reprl.encoders.io import save_encoder
from reprl.errors import ReprlError


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return reprl.load("resnet18", image_size=64, embed_dim=16)


def images(n=3, h=72, w=96, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8))


def test_every_input_layout_gives_the_same_embeddings(small):
    hwc = images()
    ref = small(hwc.permute(0, 3, 1, 2))
    assert ref.shape == (3, 16) and ref.dtype == torch.float32
    variants = {
        "uint8 BHWC tensor": hwc,
        "uint8 BHWC numpy": hwc.numpy(),
        "uint8 BCHW numpy": hwc.permute(0, 3, 1, 2).numpy(),
        "float [0,1] BCHW": hwc.permute(0, 3, 1, 2).float() / 255,
        "float64 [0,1] BHWC numpy": hwc.numpy().astype(np.float64) / 255,
        "list of PIL images": [Image.fromarray(a) for a in hwc.numpy()],
        "list of single HWC images": list(hwc.numpy()),
    }
    for name, x in variants.items():
        torch.testing.assert_close(small(x), ref, atol=1e-5, rtol=1e-5, msg=name)


def test_channel_variants_and_mixed_sizes(small):
    gray = images(2)[..., :1]
    torch.testing.assert_close(small(gray), small(gray.expand(-1, -1, -1, 3)))
    rgba = torch.cat([images(2), torch.zeros(2, 72, 96, 1, dtype=torch.uint8)], dim=-1)
    torch.testing.assert_close(small(rgba), small(images(2)))
    a, b = images(1, 64, 64, 1), images(1, 100, 80, 2)
    torch.testing.assert_close(small([a, b]), torch.cat([small(a), small(b)]))


def test_eval_mode_chunks_match_one_pass(small):
    x = images(7)
    small.chunk_size = 2
    chunked = small(x)
    small.chunk_size = 64
    torch.testing.assert_close(chunked, small(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bad, message", [
    (torch.rand(2, 3, 8, 8) * 255, r"float images must be in \[0, 1\]"),
    (torch.zeros(2, 3, 8, 8, dtype=torch.int64), "not supported: pass uint8"),
    (torch.zeros(2, 3, 8, 3, dtype=torch.uint8), "cannot tell the channel axis"),
    (torch.zeros(2, 5, 8, 8, dtype=torch.uint8), "no channel axis"),
    ("frame.png", "unsupported image type"),
    ([], "no images given"),
])
def test_bad_image_inputs(small, bad, message):
    with pytest.raises(ReprlError, match=message):
        small(bad)


def test_text_goal_on_an_image_only_encoder_is_a_clear_error(small):
    with pytest.raises(ReprlError, match="no text tower"):
        small.embed_text(["open the drawer"])


def test_save_load_round_trip_is_bit_exact(small, tmp_path):
    out = save_encoder(small, tmp_path / "enc")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    back = reprl.load(out)
    assert back.config == small.config
    for k, v in small.state_dict().items():
        assert torch.equal(v, back.state_dict()[k]), k
    assert torch.equal(small(images()), back(images()))
    assert not any(p.requires_grad for p in back.parameters()) and not back.training


def test_load_errors_name_the_problem(small, tmp_path):
    with pytest.raises(ReprlError, match="unknown encoder source"):
        reprl.load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReprlError, match="no config.json"):
        reprl.load(tmp_path / "empty")
    out = save_encoder(small, tmp_path / "enc")
    (out / "model.safetensors").write_bytes(b"garbage" * 100)
    with pytest.raises(ReprlError, match="corrupt or not a safetensors file"):
        reprl.load(out)
    out = save_encoder(small, tmp_path / "enc2")
    cfg = json.loads((out / "config.json").read_text())
    cfg["embed_dim"] = 32
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ReprlError, match="config.json and the weights disagree: .*shape mismatches"):
        reprl.load(out)
    cfg["embeddim"] = 32
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ReprlError, match="unknown config key 'embeddim'"):
        reprl.load(out)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ReprlError, match="cannot read checkpoint"):
        reprl.load(tmp_path / "bad.pt")
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(ReprlError, match="unrecognised checkpoint"):
        reprl.load(tmp_path / "other.pt")


def test_registry_lists_encoders_and_building_a_resnet_never_imports_open_clip():
    names = {e["name"] for e in reprl.list_encoders()}
    assert {"resnet18", "resnet50", "clip-rn50", "tiny"} <= names
    code = "import sys, reprl; reprl.load('tiny'); reprl.load('resnet18'); print('open_clip' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_reprl_list_shows_each_architecture_parameter_with_a_default_that_loads_back(capsys):
    import yaml

    from reprl.cli import main
    from reprl.encoders.registry import SPECS

    rows = {e["name"]: e for e in reprl.list_encoders()}
    assert rows["tiny"]["params"] == "width=32" and rows["resnet50-features"]["params"] == "depth=50, proj=false"
    for name, spec in SPECS.items():  # the shown text is the parameters, as --encoder.params would read them
        assert yaml.safe_load("{" + rows[name]["params"].replace("=", ": ") + "}") == spec.params
    with pytest.raises(SystemExit) as e:
        main(["list"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "    params: width=32" in out and "--encoder.params" in out
    assert reprl.load("tiny", params={"width": 8}).config.params == {"width": 8}


def test_clip_encoder_embeds_images_and_text():
    enc = reprl.load("clip-rn50")
    assert enc(images(2)).shape == (2, 1024)
    t = enc.embed_text(["open the drawer", "open the drawer", "close the door"])
    assert t.shape == (3, 1024) and torch.equal(t[0], t[1]) and not torch.equal(t[0], t[2])
    with pytest.raises(ReprlError, match="non-empty strings"):
        enc.embed_text([""])


def test_offline_sentence_encoder_is_real_and_cached():
    from reprl.encoders.text import SentenceEncoder

    enc = SentenceEncoder("minilm")
    e = enc(["open the drawer", "pull the drawer open", "turn the faucet on"])
    assert e.shape == (3, 384)
    near = torch.cosine_similarity(e[0], e[1], dim=0)
    far = torch.cosine_similarity(e[0], e[2], dim=0)
    assert near > far, "a real sentence encoder puts paraphrases closer"
    with pytest.raises(ReprlError, match="cannot load text encoder"):
        SentenceEncoder("/no/such/model")


def test_convert_writes_reprl_format_from_a_reference_checkpoint(tmp_path, capsys):
    from reprl.cli import main

    net = reference_resnet(18, 32)
    torch.save({"vip": {f"module.convnet.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "vip.pt")
    with pytest.raises(SystemExit) as e:
        main(["convert", str(tmp_path / "vip.pt"), "--out", str(tmp_path / "enc")])
    assert e.value.code == 0 and "vip-resnet18, 32-d" in capsys.readouterr().out
    x = images(2)
    assert torch.equal(reprl.load(tmp_path / "enc")(x), reprl.load(tmp_path / "vip.pt")(x))
    with pytest.raises(SystemExit) as e:
        main(["convert", str(tmp_path / "vip.pt"), "--out", str(tmp_path / "enc")])
    assert e.value.code == 2 and "--overwrite" in capsys.readouterr().err


def test_convert_half_with_a_training_card_loads_by_name_from_a_models_folder(tmp_path, capsys, monkeypatch):
    """--half stores float16 weights (loaded back as float32), --training lands in config.json, and a folder under
    $REPRL_MODELS loads by its name."""
    import json

    from safetensors.torch import load_file

    from reprl.cli import main
    from reprl.encoders.io import save_encoder

    (tmp_path / "card.json").write_text(json.dumps({"steps": 7, "data": {"videos": 3}}))
    out, full_dir = tmp_path / "models" / "my-enc", tmp_path / "full"
    save_encoder(reprl.load("tiny"), full_dir)
    with pytest.raises(SystemExit) as e:
        main(["convert", str(full_dir), "--out", str(out), "--half", "--training", str(tmp_path / "card.json")])
    assert e.value.code == 0
    stored = load_file(str(out / "model.safetensors"))
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    assert json.loads((out / "config.json").read_text())["training"] == {"steps": 7, "data": {"videos": 3}}
    monkeypatch.setenv("REPRL_MODELS", str(tmp_path / "models"))
    enc = reprl.load("my-enc")
    assert enc.config.training["steps"] == 7 and next(enc.parameters()).dtype == torch.float32
    full = reprl.load(full_dir)  # the same weights at full precision
    x = images(2)
    assert torch.allclose(enc(x), full(x), atol=1e-2) and not torch.equal(enc(x), full(x))
    with pytest.raises(ReprlError, match="a model name \\(my-enc"):
        reprl.load("my-encoder")
    import shutil

    shutil.copytree(out, tmp_path / "models" / "a-much-longer-model-name-than-most")
    with pytest.raises(SystemExit):
        main(["list", "--pretrained"])
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if " local " in line]
    assert len(rows) >= 2 and rows[0].startswith("a-much-longer-model-name-than-most ") and "7 steps" in rows[0]
    # every row's columns line up under the header, long names included
    column = next(line for line in lines if line.startswith("name ")).index("cached")
    assert all(line.index(" local ") + 1 == column for line in rows)


def test_hub_sources_fail_clearly_offline():
    import os

    code = ("import reprl\nfrom reprl.errors import ReprlError\ntry:\n"
            "    reprl.load('hf://reprl-test/does-not-exist')\nexcept ReprlError as e:\n    print('ERR', e)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120).stdout
    assert out.startswith("ERR could not fetch hf://reprl-test/does-not-exist") and "local path" in out


def test_loading_and_embedding_never_import_lightning():
    code = ("import sys, reprl, torch; e = reprl.load('tiny'); e(torch.zeros(1, 3, 32, 32, dtype=torch.uint8)); "
            "print('lightning' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_clip_pretrained_must_be_a_file_or_a_known_tag():
    from reprl.encoders.registry import build_encoder

    with pytest.raises(ReprlError, match="not a file, nor an open_clip tag"):
        build_encoder("clip-rn50", pretrained="/no/such/RN50.pt")


def test_compile_encode_keeps_embeddings_and_weights():
    torch.manual_seed(0)
    enc = reprl.load("tiny", image_size=32, embed_dim=8).eval()
    frames = torch.randint(0, 256, (3, 3, 40, 40), dtype=torch.uint8)
    with torch.inference_mode():
        before = enc(frames)
    keys = list(enc.state_dict())
    calls = []

    def count(gm, example_inputs):  # a torch.compile backend that records each graph and runs it eagerly
        calls.append(gm)
        return gm.forward

    assert enc.compile_encode(backend=count) is enc
    with torch.inference_mode():
        after = enc(frames)
    assert calls and list(enc.state_dict()) == keys  # compiled for real; nothing added to the checkpoint
    torch.testing.assert_close(after, before)


def test_preprocess_resizes_the_shorter_side_then_crops_the_centre_and_rounds_float_pixels():
    enc = reprl.load("tiny", image_size=32)
    mean, std = enc.pixel_mean.view(1, 3, 1, 1), enc.pixel_std.view(1, 3, 1, 1)

    def pixels(x):  # the preprocessed images, de-normalised back to [0, 1]
        return enc.preprocess(x) * std + mean

    # a 64 x 64 black frame with a white 32 x 32 centre: shrunk to 32 first, the white is a quarter of the crop
    # (cropping first would keep only the white)
    frame = torch.zeros(1, 3, 64, 64, dtype=torch.uint8)
    frame[..., 16:48, 16:48] = 255
    assert pixels(frame).mean().item() == pytest.approx(0.25, abs=1e-3)
    # a 24 x 32 frame: its shorter side (24) goes to 32, so the crop is all frame, no padding
    assert pixels(torch.full((1, 3, 24, 32), 200, dtype=torch.uint8)).min().item() == pytest.approx(200 / 255, abs=1e-3)
    # float pixels are rounded to 8 bits before the resize: 0.999 is 254.7 -> 255, as the uint8 frame
    assert torch.equal(enc.preprocess(torch.full((1, 3, 64, 64), 0.999)),
                       enc.preprocess(torch.full((1, 3, 64, 64), 255, dtype=torch.uint8)))


def test_a_frozen_cpu_encoder_stores_its_convolutions_channels_last_and_embeds_as_before(tmp_path):
    """freeze() on the CPU stores the 4-d weights channels-last (the layout decoded frames and rendered
    observations come in, so no call reorders the weights), feeds the convolutions channels-last batches, and
    embeds the same images as the encoder before freezing up to float rounding; saving writes the same weights."""
    torch.manual_seed(0)
    enc = reprl.load("resnet18", image_size=64, embed_dim=16, freeze=False).eval()
    x = images()  # [B, H, W, 3] uint8: the channels-last layout a decoder or a renderer hands over
    with torch.no_grad():
        before = enc(x)
    state = {k: v.clone() for k, v in enc.state_dict().items()}
    enc.freeze()
    convs = [m.weight for m in enc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not convs[0].is_contiguous()  # the 7x7 stem: a real change of layout (a 1x1 kernel is both)
    assert enc.preprocess(x.permute(0, 3, 1, 2).contiguous()).is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(enc(x), before, rtol=1e-4, atol=1e-5)
    save_encoder(enc, tmp_path / "frozen")
    again = reprl.load(tmp_path / "frozen")
    assert all(torch.equal(state[k], v) for k, v in again.state_dict().items())
