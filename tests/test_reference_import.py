"""Imported VIP / R3M / LIV checkpoints give the embeddings of their reference pipelines.

Each reference pipeline is rebuilt here independently of reprl's preprocessing code, from what the original
projects do to a raw frame:
- VIP and R3M: the README transform Resize(256) + CenterCrop(224) (antialiased, on float tensors), then the
  model's forward on the 224x224 result: /255 and ImageNet normalisation only.
- LIV: the model's own tensor transform: Resize(224) WITHOUT antialiasing, CenterCrop(224), CLIP normalisation.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import reference_resnet

import reprl
from reprl.data.reader import decode_frames, iter_videos
from reprl.data.shards import shard_urls

SIZES = [(224, 224), (240, 320), (64, 64), (480, 360)]
IMAGENET = (torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
CLIP = (torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1),
        torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1))


def rel_error(got, expected):
    return float(((got - expected).norm(dim=-1) / expected.norm(dim=-1)).max())


def resize_shorter(x, size, antialias):
    """Shorter side to `size` (the longer one truncated, as torchvision's Resize(int) does), bilinear."""
    h, w = x.shape[-2:]
    if min(h, w) == size:
        return x
    oh, ow = (size, int(size * w / h)) if h <= w else (int(size * h / w), size)
    return F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False, antialias=antialias)


def center_crop(x, size):
    h, w = x.shape[-2:]
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return x[..., top:top + size, left:left + size]


def vip_reference(net, raw_uint8_bchw):
    """README transform on the raw frame (x255 as the README does), then the model's forward on 3x224x224."""
    user = center_crop(resize_shorter(raw_uint8_bchw.float() / 255, 256, antialias=True), 224) * 255
    assert tuple(user.shape[1:]) == (3, 224, 224)  # so the forward only normalises
    with torch.no_grad():
        return net((user / 255 - IMAGENET[0]) / IMAGENET[1])


def frames(h, w, n=1, seed=0):
    """Smooth random frames (upsampled noise, like rendered scenes: resizing them is not a no-op)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, max(h // 8, 2), max(w // 8, 2), generator=g)
    return (F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1) * 255).round().byte()


def real_frames(n=4):
    video = next(iter_videos(shard_urls("tests/data/metaworld/heldout")))
    return decode_frames(video.frames[:: max(1, len(video.frames) // n)][:n])


@pytest.fixture(scope="module")
def vip_checkpoint(tmp_path_factory):
    net = reference_resnet(18, 32)
    path = tmp_path_factory.mktemp("vip") / "model.pt"
    torch.save({"vip": {f"module.convnet.{k}": v for k, v in net.state_dict().items()}}, path)
    return net, reprl.load(path)


@pytest.mark.parametrize("size", SIZES)
def test_vip_import_matches_the_reference_pipeline(vip_checkpoint, size):
    net, enc = vip_checkpoint
    x = frames(*size)
    expected = vip_reference(net, x)
    assert rel_error(enc(x), expected) < 1e-4
    assert rel_error(enc(x.float() / 255), expected) < 1e-4  # [0, 1] float input takes the same path


def test_vip_import_matches_the_reference_on_rendered_metaworld_frames(vip_checkpoint):
    net, enc = vip_checkpoint
    x = real_frames()
    expected = vip_reference(net, x)
    assert rel_error(enc(x), expected) < 1e-4
    # the old double zoom (resize + crop twice) is measurably different: the test can tell them apart
    twice = center_crop(resize_shorter(center_crop(resize_shorter(x.float() / 255, 256, True), 224), 256, True), 224)
    with torch.no_grad():
        double = net((twice - IMAGENET[0]) / IMAGENET[1])
    assert rel_error(double, expected) > 1e-3


@pytest.mark.slow
def test_vip_resnet50_layout_imports_with_its_1024_d_projection(tmp_path):
    net = reference_resnet(50, 1024)
    torch.save({"vip": {f"module.convnet.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "model.pt")
    enc = reprl.load(tmp_path / "model.pt")
    x = frames(240, 320)
    assert enc.config.embed_dim == 1024 and enc.config.similarity == "l2" and enc.config.name == "vip-resnet50"
    assert rel_error(enc(x), vip_reference(net, x)) < 1e-4


@pytest.mark.parametrize("size", [(224, 224), (240, 320)])
def test_r3m_import_matches_the_reference_pipeline_and_drops_language_weights(tmp_path, size):
    net = reference_resnet(18, 0)
    state = {f"module.convnet.{k}": v for k, v in net.state_dict().items()}
    state["module.lang_rew.pred.0.weight"] = torch.zeros(3, 3)
    torch.save({"r3m": state}, tmp_path / "r3m.pt")
    enc = reprl.load(tmp_path / "r3m.pt")
    x = frames(*size)
    assert enc.config.embed_dim == 512 and enc.config.params["depth"] == 18
    assert rel_error(enc(x), vip_reference(net, x)) < 1e-4  # same README transform, forward only normalises


@pytest.mark.slow
def test_liv_import_matches_the_reference_image_and_text_embeddings(tmp_path):
    import open_clip

    torch.manual_seed(1)
    ref = open_clip.create_model("RN50", pretrained=None).eval()
    state = {f"module.model.{k}": v.half() if v.is_floating_point() else v for k, v in ref.state_dict().items()}
    state["module.model.input_resolution"] = torch.tensor(224)
    torch.save({"liv": state}, tmp_path / "liv.pt")
    ref.load_state_dict({k[len("module.model."):]: v.float() for k, v in state.items() if "input_res" not in k})
    enc = reprl.load(tmp_path / "liv.pt")
    for size in [(224, 224), (240, 320)]:
        x = frames(*size)
        inside = center_crop(resize_shorter(x.float() / 255, 224, antialias=False), 224)
        with torch.no_grad():
            expected = ref.encode_image((inside - CLIP[0]) / CLIP[1])
        assert rel_error(enc(x), expected) < 1e-4, size
    tokens = open_clip.get_tokenizer("RN50")(["open the drawer", "close the door"])
    with torch.no_grad():
        expected_txt = ref.encode_text(tokens)
    assert enc.config.similarity == "cosine" and enc.has_text
    assert rel_error(enc.embed_text(["open the drawer", "close the door"]), expected_txt) < 1e-4


def test_reference_helpers_agree_with_torchvision():
    """The hand-written resize / crop above are torchvision's Resize(int) / CenterCrop, checked once."""
    from torchvision.transforms.v2 import functional as TF

    x = torch.rand(1, 3, 240, 321)
    torch.testing.assert_close(resize_shorter(x, 256, True), TF.resize(x, [256], antialias=True))
    torch.testing.assert_close(center_crop(x, 224), TF.center_crop(x, [224, 224]))
    assert np.isclose(rel_error(torch.tensor([[3.0, 4.0]]), torch.tensor([[0.0, 5.0]])), (9 + 1) ** 0.5 / 5)
