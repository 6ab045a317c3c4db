import math

import numpy as np
import pytest
import torch

from reprl.encoders.base import similarity
from reprl.errors import ReprlError
from reprl.rewards import (
    bump_rate,
    goal_from_embeddings,
    goal_from_frame,
    nonfinite_frames,
    rewards,
    spearman,
    values,
    video_metrics,
    video_values,
    voc,
)


def l2(a, b):
    return similarity(a, b, "l2")


def test_values_and_rewards_by_hand():
    emb = torch.tensor([[0.0, 0.0], [3.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    goal = torch.tensor([6.0, 8.0])
    v = values(emb, goal, l2)
    assert v.tolist() == pytest.approx([-10.0, -math.hypot(3, 8), -5.0, 0.0])
    assert rewards(v).tolist() == pytest.approx([10 - math.hypot(3, 8), math.hypot(3, 8) - 5, 5.0])
    cos = values(emb[1:], goal, lambda a, b: similarity(a, b, "cosine", 0.98))
    assert cos.tolist() == pytest.approx([0.6 / 0.02, 1 / 0.02, 1 / 0.02], rel=1e-5)


def test_voc_and_bump_rate_by_hand():
    assert voc([1, 2, 3, 4]) == pytest.approx(1.0)
    assert voc([4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks of [1, 3, 2, 4] vs time: d = [0, 1, -1, 0] -> 1 - 6*2/(4*15) = 0.8
    assert voc([1, 3, 2, 4]) == pytest.approx(0.8)
    assert bump_rate([1, 3, 2, 4]) == pytest.approx(1 / 3)
    assert bump_rate([1, 1, 2]) == 0.0  # a flat step is not a bump
    assert voc([5, 5, 5]) == 0.0  # no order to correlate


def test_spearman_handles_ties_like_average_ranks():
    x, y = [1, 2, 2, 3], [1, 2, 3, 4]
    rx = np.array([1, 2.5, 2.5, 4])
    ry = np.array([1, 2, 3, 4])
    expected = np.corrcoef(rx, ry)[0, 1]
    assert spearman(x, y) == pytest.approx(expected)


def test_goal_helpers():
    emb = torch.arange(12.0).view(4, 3)
    assert torch.equal(goal_from_frame(emb, -1), emb[3]) and torch.equal(goal_from_frame(emb, 1), emb[1])
    with pytest.raises(ReprlError, match="outside the video's 4 frames"):
        goal_from_frame(emb, 4)
    assert goal_from_embeddings(emb[:2]).tolist() == [1.5, 2.5, 3.5]
    with pytest.raises(ReprlError, match="shaped"):
        goal_from_embeddings(emb[0])
    assert video_metrics(emb, l2) == {"voc": pytest.approx(1.0), "bump_rate": 0.0}


def test_video_values_with_each_kind_of_goal():
    import reprl

    enc = reprl.load("tiny", image_size=32)
    frames = torch.randint(0, 255, (5, 32, 32, 3), dtype=torch.uint8)
    last = video_values(enc, frames)
    assert last["values"][-1].item() == pytest.approx(0.0, abs=1e-5) and last["rewards"].shape == (4,)
    img = video_values(enc, frames, goal_image=frames[-1].numpy())
    torch.testing.assert_close(img["values"], last["values"])
    mean = video_values(enc, frames, goal_embedding=last["embeddings"][[0, 4]])
    torch.testing.assert_close(mean["goal"], last["embeddings"][[0, 4]].mean(0))
    with pytest.raises(ReprlError, match="no text tower"):
        video_values(enc, frames, goal_text="open the drawer")
    with pytest.raises(ReprlError, match="give one goal"):
        video_values(enc, frames, goal_frame=1, goal_text="x")


def test_resolve_goal_makes_every_kind_of_goal():
    """One function turns each kind of goal into an embedding: image, images (mean), embeddings (mean, width
    checked), a frame of a video (default last); two goals at once are refused."""
    import reprl
    from reprl.rewards import resolve_goal

    enc = reprl.load("tiny", image_size=32)
    frames = torch.randint(0, 255, (4, 32, 32, 3), dtype=torch.uint8)
    with torch.inference_mode():
        emb = enc(frames)
    torch.testing.assert_close(resolve_goal(enc, video=emb), emb[3])
    torch.testing.assert_close(resolve_goal(enc, frame=1, video=emb), emb[1])
    torch.testing.assert_close(resolve_goal(enc, image=frames[2].numpy()), emb[2])
    torch.testing.assert_close(resolve_goal(enc, images=frames[[0, 2]]), emb[[0, 2]].mean(0))
    torch.testing.assert_close(resolve_goal(enc, embedding=emb[[1, 3]]), emb[[1, 3]].mean(0))
    with pytest.raises(ReprlError, match=f"goal embedding has 3 dims, the encoder embeds to {enc.embed_dim}"):
        resolve_goal(enc, embedding=torch.zeros(3))
    with pytest.raises(ReprlError, match="^give one goal, not image and frame$"):
        resolve_goal(enc, image=frames[0].numpy(), frame=0, video=emb)
    with pytest.raises(ReprlError, match="needs the video's embeddings"):
        resolve_goal(enc, frame=0)
    with pytest.raises(ReprlError, match="^no goal given: pass one of image="):
        resolve_goal(enc)
    with pytest.raises(ReprlError, match="empty list"):
        resolve_goal(enc, images=[])


def test_nonfinite_frames_counts_rows_with_any_nan_or_inf():
    emb = torch.zeros(5, 3)
    assert nonfinite_frames(emb) == 0
    emb[1, 0] = float("nan")
    emb[3, 2] = float("inf")
    emb[3, 1] = float("-inf")  # a second bad value in the same row counts once
    assert nonfinite_frames(emb) == 2


def test_check_one_goal_names_every_goal_given_and_counts_zero_and_empty_as_given():
    from reprl.rewards import check_one_goal

    check_one_goal({"a": None, "b": False, "c": 0})  # one goal (frame 0 is a goal), unset ones ignored
    with pytest.raises(ReprlError, match="^give one goal, not a and c$"):
        check_one_goal({"a": "", "b": None, "c": 0})
