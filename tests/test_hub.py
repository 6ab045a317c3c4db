"""save_pretrained / from_pretrained / push_to_hub against a fake hub in a temp dir: never the network."""

import json
import shutil
from pathlib import Path

import pytest
import torch

import reprl
import reprl.encoders
from reprl.errors import ReprlError


@pytest.fixture(scope="module")
def enc():
    torch.manual_seed(0)
    return reprl.load("tiny", image_size=32, embed_dim=8)


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """huggingface_hub's HfApi and snapshot_download, backed by tmp_path/hub/ORG/NAME folders."""
    huggingface_hub = pytest.importorskip("huggingface_hub")
    root = tmp_path / "hub"
    calls = []

    class FakeApi:
        def __init__(self, token=None):
            self.token = token

        def create_repo(self, repo_id, repo_type="model", private=False, exist_ok=False):
            calls.append(("create_repo", repo_id, private))
            (root / repo_id).mkdir(parents=True, exist_ok=exist_ok)

        def upload_folder(self, repo_id, folder_path, repo_type="model", commit_message=""):
            calls.append(("upload_folder", repo_id, commit_message))
            shutil.copytree(folder_path, root / repo_id, dirs_exist_ok=True)

    def snapshot_download(repo_id, revision=None, **kwargs):
        if not (root / repo_id).is_dir():
            raise FileNotFoundError(f"Repository Not Found for url: https://huggingface.co/{repo_id}")
        return str(root / repo_id)

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return root, calls


def fake_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("objective:\n  name: vip\ndata:\n  train: corpus/train\n  val: corpus/heldout\n"
                                     "  batch_size: 32\n")
    (run / "summary.json").write_text(json.dumps({"steps": 1500, "heldout": {
        "random init": {"voc": 0.25, "bump_rate": 0.41, "videos": 4},
        "trained": {"voc": 0.875, "bump_rate": 0.125, "videos": 4}}}))
    return run


def test_save_pretrained_round_trip_with_a_model_card(enc, tmp_path):
    out = enc.save_pretrained(tmp_path / "enc", run_dir=fake_run(tmp_path))
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    x = torch.randint(0, 256, (2, 3, 40, 48), dtype=torch.uint8)
    assert torch.equal(reprl.encoders.from_pretrained(out)(x), enc(x))
    card = (out / "README.md").read_text()
    assert "library_name: reprl" in card and "# tiny" in card
    assert "`tiny` (tiny)" in card and "8-d embeddings of 32x32 images" in card
    assert "resize 32, center_crop 32 (bilinear)" in card and "mean [0.485, 0.456, 0.406]" in card
    assert "V(o; g) = -||phi(o) - phi(g)||" in card
    assert "objective: vip, 1500 steps, batch 32" in card and "training data: corpus/train" in card
    assert "| trained | +0.875 | 0.125 | 4 |" in card and "| random init | +0.250 | 0.410 | 4 |" in card


def test_card_without_training_facts_says_so_and_cosine_encoders_show_their_value(tmp_path):
    card = (reprl.load("tiny").save_pretrained(tmp_path / "t") / "README.md").read_text()
    assert "not recorded (random init: untrained weights)" in card and "Held-out" not in card
    from reprl.encoders.hub import model_card

    small = reprl.load("tiny", similarity="cosine", gamma=0.9)
    assert "V(o; g) = cos(phi(o), phi(g)) / (1 - 0.9)" in model_card(small)
    with pytest.raises(ReprlError, match="has no summary.json"):
        small.save_pretrained(tmp_path / "s", run_dir=tmp_path)
    assert not (tmp_path / "s").exists(), "a failed save writes nothing"


def test_push_to_hub_then_from_pretrained_by_repo_name(enc, fake_hub):
    root, calls = fake_hub
    assert enc.push_to_hub("org/tiny-vip", private=True) == "org/tiny-vip"
    assert calls[0] == ("create_repo", "org/tiny-vip", True) and calls[1][0] == "upload_folder"
    assert sorted(p.name for p in (root / "org/tiny-vip").iterdir()) == ["README.md", "config.json",
                                                                         "model.safetensors"]
    x = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(reprl.encoders.from_pretrained("org/tiny-vip")(x), enc(x))
    assert torch.equal(reprl.load("hf://org/tiny-vip")(x), enc(x))
    with pytest.raises(ReprlError, match="could not fetch hf://org/missing"):
        reprl.encoders.from_pretrained("org/missing")


def test_hub_errors_are_one_line(enc, fake_hub, monkeypatch):
    with pytest.raises(ReprlError, match="hub repo must look like 'org/name'"):
        enc.push_to_hub("just-a-name")
    with pytest.raises(ReprlError, match="neither a saved encoder folder nor a hub repo"):
        reprl.encoders.from_pretrained("no/such/folder")
    import huggingface_hub

    def refuse(self, *a, **k):
        raise PermissionError("403 Forbidden: you cannot write to org/theirs\nmore details")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", refuse)
    with pytest.raises(ReprlError) as e:
        enc.push_to_hub("org/theirs")
    assert "\n" not in str(e.value) and "403 Forbidden" in str(e.value) and "save_pretrained(dir)" in str(e.value)
    assert not any(Path("/tmp").glob("reprl-push-*/encoder/model.safetensors"))
