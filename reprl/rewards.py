"""Values, goal-conditioned rewards and quality checks computed from embeddings.

V(o_t; g) = S(phi(o_t), phi(g)) with the encoder's own similarity; r_t = V(o_{t+1}; g) - V(o_t; g).
VOC (value-order correlation) = Spearman correlation of V(o_t; last frame) with t (range [-1, 1]);
bump rate = share of steps whose reward is negative (lower is better).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from reprl.errors import ReprlError

SimilarityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def values(embeddings: torch.Tensor, goal: torch.Tensor, similarity: SimilarityFn) -> torch.Tensor:
    """[T, D] embeddings and a goal embedding [D] (or [1, D]) -> values [T]. Several goals [K, D] are one goal only
    once averaged (goal_from_embeddings): they are refused here rather than paired with the frames row by row."""
    if goal.dim() == 1:
        goal = goal[None]
    if goal.dim() != 2 or goal.shape[0] != 1:
        raise ReprlError(f"values take one goal embedding [D] or [1, D], got {tuple(goal.shape)}; average several "
                         "goals first (reprl.rewards.goal_from_embeddings)")
    if goal.shape[-1] != embeddings.shape[-1]:
        raise ReprlError(f"goal embedding has {goal.shape[-1]} dims, frames have {embeddings.shape[-1]}")
    return similarity(embeddings, goal)


def nonfinite_frames(embeddings: torch.Tensor) -> int:
    """How many rows of [T, D] embeddings hold NaN or inf (broken weights or an overflowing precision)."""
    return int((~torch.isfinite(embeddings).all(dim=-1)).sum())


def rewards(vals: torch.Tensor) -> torch.Tensor:
    """r_t = V_{t+1} - V_t: [T] -> [T-1]."""
    return vals[1:] - vals[:-1]


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks starting at 0, ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


def spearman(x: Any, y: Any) -> float:
    """Spearman rank correlation; 0.0 when either side is constant (no order to correlate)."""
    a, b = _ranks(np.asarray(x, dtype=np.float64)), _ranks(np.asarray(y, dtype=np.float64))
    a, b = a - a.mean(), b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def voc(vals: Any) -> float:
    """Value-order correlation of a value sequence with time."""
    v = np.asarray(torch.as_tensor(vals).detach().cpu(), dtype=np.float64)
    if len(v) < 2:
        raise ReprlError("VOC needs at least 2 frames")
    if not np.isfinite(v).all():
        raise ReprlError("VOC of values that are not all finite (NaN or inf) has no meaning; check the embeddings")
    return spearman(v, np.arange(len(v)))


def bump_rate(vals: Any) -> float:
    """Share of steps with a negative reward V_{t+1} - V_t."""
    v = torch.as_tensor(vals).detach().cpu().double()
    if len(v) < 2:
        raise ReprlError("the bump rate needs at least 2 frames")
    if not bool(torch.isfinite(v).all()):
        raise ReprlError("the bump rate of values that are not all finite (NaN or inf) has no meaning")
    return float((rewards(v) < 0).double().mean())


def video_metrics(embeddings: torch.Tensor, similarity: SimilarityFn) -> dict[str, float]:
    """VOC and bump rate of one video with the last frame as goal."""
    v = values(embeddings, embeddings[-1], similarity)
    return {"voc": voc(v), "bump_rate": bump_rate(v)}


def check_one_goal(goals: dict[str, Any]) -> None:
    """Refuse more than one goal given at once ({name the user typed: value or None})."""
    given = [name for name, v in goals.items() if v is not None and v is not False]
    if len(given) > 1:
        raise ReprlError(f"give one goal, not {' and '.join(given)}")


def goal_from_image(encoder: Any, image: Any) -> torch.Tensor:
    """Goal embedding [D] of one image (any layout the encoder accepts; its preprocessing resizes it)."""
    emb = encoder(image)
    if emb.shape[0] != 1:
        raise ReprlError(f"a goal image must be one image, got a batch of {emb.shape[0]}; to average several goal "
                         "images use goal_from_embeddings(encoder(images))")
    return emb[0]


def goal_from_text(encoder: Any, text: str) -> torch.Tensor:
    """Goal embedding [D] of a text instruction (language-capable encoders, e.g. LIV)."""
    return encoder.embed_text([text])[0]


def goal_from_frame(embeddings: torch.Tensor, index: int) -> torch.Tensor:
    """Goal embedding = the embedding of frame `index` (negative counts from the end: -1 is the last frame)."""
    n = embeddings.shape[0]
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise ReprlError(f"goal frame must be a whole frame index, got {index!r}")
    if not -n <= index < n:
        raise ReprlError(f"goal frame {index} is outside the video's {n} frames")
    return embeddings[index]


def goal_from_embeddings(embeddings: torch.Tensor) -> torch.Tensor:
    """Mean of several goal embeddings [K, D] -> [D] (e.g. the last frames of several demos)."""
    if embeddings.dim() != 2 or embeddings.shape[0] == 0:
        raise ReprlError(f"expected goal embeddings shaped [K, D], got {tuple(embeddings.shape)}")
    return embeddings.mean(0)


def resolve_goal(encoder: Any, *, image: Any = None, images: Any = None, text: str | None = None,
                 embedding: torch.Tensor | None = None, frame: int | None = None,
                 video: torch.Tensor | None = None) -> torch.Tensor:
    """A goal as an embedding [D]: one image, several images (their mean embedding), a text, given embeddings
    ([D], or [K, D] averaged), or frame `frame` of a video's embeddings `video` (default: its last frame). Give
    at most one of image, images, text, embedding and frame. `video_values`, `reprl embed` and the GoalReward
    wrapper all choose their goal here. Code that already holds the goal embeddings (the heads' rewards,
    `reprl score`'s other-episodes goal) averages them with goal_from_embeddings, and `reprl score`'s caption
    goals embed all of a dataset's captions in one batch (reprl.scoring.caption_goals)."""
    check_one_goal({"image": image, "images": images, "text": text, "embedding": embedding, "frame": frame})
    with torch.inference_mode():
        if image is not None:
            return goal_from_image(encoder, image)
        if images is not None:
            if len(images) == 0:
                raise ReprlError("the goal is an empty list; give at least one goal image")
            return goal_from_embeddings(encoder(images))
        if text is not None:
            return goal_from_text(encoder, text)
        if embedding is not None:
            embedding = torch.as_tensor(np.asarray(embedding, dtype=np.float32) if not isinstance(
                embedding, torch.Tensor) else embedding)
            if not bool(torch.isfinite(embedding).all()):
                raise ReprlError("the goal embedding holds NaN or inf values")
            if embedding.shape[-1] != getattr(encoder, "embed_dim", embedding.shape[-1]):
                raise ReprlError(f"goal embedding has {embedding.shape[-1]} dims, the encoder embeds to "
                                 f"{encoder.embed_dim}")
            return embedding if embedding.dim() == 1 else goal_from_embeddings(embedding)
        if video is None:
            if frame is None:
                raise ReprlError("no goal given: pass one of image=, images=, text=, embedding=, or frame= with "
                                 "video= (the video's embeddings)")
            raise ReprlError("a frame goal needs the video's embeddings: pass video= as well")
        return goal_from_frame(video, -1 if frame is None else frame)


def video_values(encoder: Any, frames: Any, *, goal_image: Any = None, goal_text: str | None = None,
                 goal_frame: int | None = None, goal_embedding: torch.Tensor | None = None) -> dict[str, Any]:
    """Embeddings, values and rewards of one video under one goal (give at most one; default: last frame)."""
    check_one_goal({"goal_image": goal_image, "goal_text": goal_text, "goal_frame": goal_frame,
                    "goal_embedding": goal_embedding})
    with torch.inference_mode():
        emb = encoder(frames)
        goal = resolve_goal(encoder, image=goal_image, text=goal_text, embedding=goal_embedding, frame=goal_frame,
                            video=emb)
        vals = values(emb, goal.to(emb.device), encoder.similarity)
    return {"embeddings": emb, "goal": goal, "values": vals, "rewards": rewards(vals)}
