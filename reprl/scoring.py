"""Reward quality without a robot: how well an encoder's values order, detect and locate progress on held-out
videos, with 95% bootstrap intervals over videos. `reprl score` prints and writes these; docs/results.md
defines each metric.

Per encoder, values V(o; g) use the encoder's own similarity, with two goals:
- `last`: the video's own last frame (what VOC has always used);
- `other`: the mean last-frame embedding of the OTHER successful episodes of the same task seen from the
  same camera (what a user has: a goal image from their camera, no peeking at the video's own end).
Metrics (successful episodes unless said otherwise):
- voc_last / bump_last, voc_other / bump_other: value-order correlation and share of negative rewards;
- fail_auc_final / fail_auc_sum: AUC of the final value / the summed reward V(o_T) - V(o_0) (goal `other`)
  separating successful from failed episodes of the same task and camera, averaged over those groups;
- near_auc: AUC separating successful episodes' final frames from their frames at `near` (default 90%) of
  the way to the first success (goal `other`), per task and camera, averaged over those groups;
- probe_hand / probe_object: R^2 of a ridge probe from the embedding to the hand / main object position,
  fitted on all tasks but one and scored on that one, averaged over held-out tasks.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from reprl.errors import ReprlError
from reprl.rewards import bump_rate, goal_from_embeddings, nonfinite_frames, values, video_metrics, voc
from reprl.stats import auc, bootstrap_ci, bootstrap_resamples, percentile_interval
from reprl.utils.machine import usable_cores

METRICS = ("voc_last", "bump_last", "voc_other", "bump_other", "voc_text", "bump_text", "fail_auc_final",
           "fail_auc_sum", "near_auc", "probe_hand", "probe_object")
LOWER_IS_BETTER = {"bump_last", "bump_other", "bump_text"}
TEXT_METRICS = ("voc_text", "bump_text")  # encoders with a text tower, on videos with a caption; NaN otherwise
HAND, OBJECT = slice(0, 3), slice(4, 7)  # MetaWorld state: hand xyz, gripper, first object's xyz
PROBE_LAMBDA = 10.0  # ridge penalty of the state probes (on z-scored features)


@dataclass
class ScoreVideo:
    """One held-out video, subsampled: frames [n, 3, S, S] uint8, in time order, last frame included."""

    key: str
    task: str
    succeeded: bool
    frames: torch.Tensor
    near: int | None  # position in `frames` of the frame at `near` of the way to the first success
    state: np.ndarray | None  # [n, state_dim] MetaWorld state at each kept frame
    camera: str = ""  # goals and success AUCs compare videos of the same task AND camera
    expert: bool | None = None  # the scripted expert without noise (renders mark it); None when unknown
    reward: np.ndarray | None = None  # [n] the shards' per-step reward at each kept frame, where they carry one
    text: str = ""  # the video's caption (the task's description in MetaWorld renders); '' when it has none


def _near_frame(video: Any, steps: np.ndarray, near: float) -> int | None:
    """Frame index (in the video) closest to `near` * first-success step, when the video records it;
    `steps` is the simulator step of each frame."""
    first = video.meta.get("first_success")
    if not video.meta.get("succeeded") or first is None:
        return None
    return int(np.argmin(np.abs(steps - near * float(first))))


def load_videos(urls: str, image_size: int, max_videos: int = 1000, max_frames: int = 64,
                near: float = 0.9) -> list[ScoreVideo]:
    """Held-out videos with their task, success flag, 'near' frame and state (where the shards carry them).
    Videos without a `succeeded` field count as successful (plain expert videos)."""
    from reprl.data.augment import center_square
    from reprl.data.datamodule import even_indices, heldout_videos

    out: list[ScoreVideo] = []
    for video in heldout_videos(urls, max_videos):
        steps = video.array("frame_step") if "frame_step" in video.arrays else np.arange(len(video))
        near_idx = _near_frame(video, steps, near)
        idx = sorted(set(even_indices(len(video), max_frames)) | ({near_idx} if near_idx is not None else set()))
        state = video.array("state")[steps[idx]] if "state" in video.arrays else None
        expert = video.meta.get("expert")
        out.append(ScoreVideo(key=video.key, task=str(video.meta.get("task", "")),
                              succeeded=bool(video.meta.get("succeeded", True)),
                              frames=center_square(video.decode(idx, channels_last=True), image_size),
                              near=idx.index(near_idx) if near_idx is not None else None, state=state,
                              camera=str(video.meta.get("camera", "")),
                              expert=None if expert is None else bool(expert),
                              reward=_reward_at(video, steps[idx]), text=(video.text or "").strip()))
    return out


def _reward_at(video: Any, steps: np.ndarray) -> np.ndarray | None:
    """The reward received on arriving at each frame (reward[k] follows step k, so the frame at simulator step
    s > 0 has reward[s - 1]; the first frame, before any step, takes the first reward), or None when the shards
    carry no per-step reward of the right length."""
    if "reward" not in video.arrays:
        return None
    reward = np.asarray(video.array("reward"), dtype=np.float64)
    if len(reward) == 0 or int(steps.max(initial=0)) > len(reward):
        return None
    return reward[np.maximum(steps.astype(np.int64) - 1, 0)]


@dataclass
class Record:
    """One video's per-video figures under both goals, for one encoder (None where they do not apply)."""

    task: str
    succeeded: bool
    voc_last: float
    bump_last: float
    voc_other: float | None  # None when the task has no other successful episode to make the goal from
    bump_other: float | None
    final: float | None  # V(o_T; other)
    summed: float | None  # V(o_T; other) - V(o_0; other): the summed reward
    near_value: float | None  # V(o_near; other)
    curve: np.ndarray | None  # V(o_t; other) for the kept frames, for plots
    emb: np.ndarray
    state: np.ndarray | None
    camera: str = ""
    expert: bool | None = None
    voc_text: float | None = None  # goal = the embedding of the video's caption (encoders with a text tower)
    bump_text: float | None = None


def make_record(v: ScoreVideo, emb: torch.Tensor, goal_other: torch.Tensor | None, similarity: Any,
                goal_text: torch.Tensor | None = None) -> Record:
    last = video_metrics(emb, similarity)
    vo = values(emb, goal_other, similarity).numpy() if goal_other is not None else None
    vt = values(emb, goal_text, similarity).numpy() if goal_text is not None else None
    return Record(voc_text=voc(vt) if vt is not None else None, bump_text=bump_rate(vt) if vt is not None else None,
                  task=v.task, succeeded=v.succeeded, voc_last=last["voc"], bump_last=last["bump_rate"],
                  voc_other=voc(vo) if vo is not None else None, bump_other=bump_rate(vo) if vo is not None else None,
                  final=float(vo[-1]) if vo is not None else None,
                  summed=float(vo[-1] - vo[0]) if vo is not None else None,
                  near_value=float(vo[v.near]) if vo is not None and v.near is not None else None,
                  curve=vo, emb=emb.numpy(), state=v.state, camera=v.camera, expert=v.expert)


def embed_records(encoder: Any, videos: list[ScoreVideo]) -> list[Record]:
    """Embed every video once and compute its figures under the `last` and `other` goals, and under its caption
    where the encoder has a text tower."""
    return records_from_embeddings(videos, embed_videos(encoder, videos), encoder.similarity,
                                   caption_goals(encoder, videos))


def caption_goals(encoder: Any, videos: list[ScoreVideo]) -> dict[str, torch.Tensor] | None:
    """Each distinct caption's text embedding [D], for an encoder with a text tower (None without one)."""
    captions = sorted({v.text for v in videos if v.text})
    if not getattr(encoder, "has_text", False) or not captions:
        return None
    try:
        with torch.inference_mode():
            text = encoder.embed_text(captions).float().cpu()
    except ReprlError as e:  # e.g. the sentence encoder's package is not installed: image goals still score
        print(f"warning: no caption-goal figures: {e}", file=sys.stderr)
        return None
    if nonfinite_frames(text):  # the check embed_videos makes on frames
        raise ReprlError("the encoder produced non-finite text embeddings; its weights are broken: retrain or "
                         "re-export it")
    return dict(zip(captions, text))


def embed_videos(encoder: Any, videos: list[ScoreVideo]) -> list[torch.Tensor]:
    """Each video's frame embeddings [n, D] (float, CPU). Raises ReprlError on non-finite embeddings."""
    with torch.inference_mode():
        embs = [encoder(v.frames).float().cpu() for v in videos]
    if any(nonfinite_frames(e) for e in embs):
        raise ReprlError("the encoder produced non-finite embeddings; its weights are broken: retrain or re-export it")
    return embs


def records_from_embeddings(videos: list[ScoreVideo], embs: list[torch.Tensor], similarity: Any,
                            text_goals: dict[str, torch.Tensor] | None = None) -> list[Record]:
    """Each video's figures under the `last` and `other` goals, from its frame embeddings and a similarity; and
    under its caption's embedding where `text_goals` (caption -> [D]) has it."""
    lasts: dict[tuple[str, str], list[tuple[int, torch.Tensor]]] = defaultdict(list)
    for i, (v, e) in enumerate(zip(videos, embs)):
        if v.succeeded:
            lasts[v.task, v.camera].append((i, e[-1]))
    records = []
    for i, (v, e) in enumerate(zip(videos, embs)):
        others = [g for j, g in lasts[v.task, v.camera] if j != i]  # a user's goal image: same task and camera
        goal = goal_from_embeddings(torch.stack(others)) if others else None
        records.append(make_record(v, e, goal, similarity, (text_goals or {}).get(v.text)))
    return records


def _mean_over_success(records: list[Record], field: str) -> float:
    vals = [x for r in records if r.succeeded and (x := getattr(r, field)) is not None]
    return float(np.mean(vals)) if vals else float("nan")


def _per_task_auc(records: list[Record], pos: Callable[[Record], float | None],
                  neg: Callable[[Record], float | None]) -> float:
    """Mean over (task, camera) groups of AUC(pos values, neg values) (values under one goal are compared only
    within a group); groups lacking either side are left out."""
    by_task: dict[tuple[str, str], tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for r in records:
        p, n = pos(r), neg(r)
        if p is not None:
            by_task[r.task, r.camera][0].append(p)
        if n is not None:
            by_task[r.task, r.camera][1].append(n)
    aucs = [auc(p, n) for p, n in by_task.values() if p and n]
    return float(np.mean(aucs)) if aucs else float("nan")


@dataclass
class ProbeStats:
    """Per-video sufficient statistics of the ridge probes (rows = frames, x = embedding, y = the targets'
    columns side by side), so a bootstrap resample refits every probe by weighting stacked sums instead of
    re-reading frames. Videos are grouped by task (`spans`); `order` maps record order to that grouping."""

    targets: dict[str, slice]  # probe name -> its columns of y
    tasks: list[str]  # task of each video, in the order of the records that carry state (the bootstrap's strata)
    order: np.ndarray  # [V] record position of each stacked video
    spans: dict[str, slice]  # task -> its rows of the stacks
    n: np.ndarray  # [V] frames
    sx: np.ndarray  # [V, D] sum of x
    sxx: np.ndarray  # [V, D, D] sum of x x^T
    sy: np.ndarray  # [V, K]
    sxy: np.ndarray  # [V, D, K]
    syy: np.ndarray  # [V, K] sum of y^2 per column


def probe_stats(records: list[Record], targets: dict[str, slice]) -> ProbeStats | None:
    """ProbeStats of the records that carry state (data shifted by the global means: a constant shift leaves
    every fit and R^2 unchanged and keeps the sums well conditioned); None if none does."""
    with_state = [(r, r.state) for r in records if r.state is not None]
    if not with_state:
        return None
    rows = [(np.asarray(r.emb, np.float64), np.asarray(np.concatenate([state[:, t] for t in targets.values()], 1),
                                                       np.float64), r.task) for r, state in with_state]
    cols, start = {}, 0
    for name, t in targets.items():  # where each target's columns sit in y
        width = with_state[0][1][:, t].shape[1]
        cols[name], start = slice(start, start + width), start + width
    x0 = np.concatenate([x for x, _, _ in rows]).mean(0)
    y0 = np.concatenate([y for _, y, _ in rows]).mean(0)
    tasks = [task for _, _, task in rows]
    spans, first = {}, 0  # tasks in order of first appearance, each a contiguous run of the stacks
    for task, count in Counter(tasks).items():
        spans[task], first = slice(first, first + count), first + count
    order = np.asarray(sorted(range(len(rows)), key=lambda i: (spans[tasks[i]].start, i)))
    xs = [rows[i][0] - x0 for i in order]
    ys = [rows[i][1] - y0 for i in order]
    return ProbeStats(cols, tasks, order, spans, np.asarray([len(x) for x in xs], np.float64),
                      np.stack([x.sum(0) for x in xs]), np.stack([x.T @ x for x in xs]),
                      np.stack([y.sum(0) for y in ys]), np.stack([x.T @ y for x, y in zip(xs, ys)]),
                      np.stack([(y * y).sum(0) for y in ys]))


def _probe_fits(n: np.ndarray, sx: np.ndarray, sxx: np.ndarray, sy: np.ndarray, sxy: np.ndarray, *,
                lam: float) -> tuple[np.ndarray, np.ndarray]:
    """A batch of ridge fits, each on features z-scored with their own mean and (population) std + 1e-8, from
    sums (n [B], sx [B, D], sxx [B, D, D], sy [B, K], sxy [B, D, K]); returns each probe on raw features:
    pred = x @ w[i] + b[i]. Each column of y is its own ridge problem, so fitting several targets at once gives
    each the fit it would get alone."""
    mu, my = sx / n[:, None], sy / n[:, None]
    sd = np.sqrt(np.maximum(np.diagonal(sxx, axis1=1, axis2=2) / n[:, None] - mu * mu, 0.0)) + 1e-8
    # (Z'Z + lam I) w_z = Z'y with Z = (X - mu) / sd is (C + lam diag(sd^2)) w = C_xy for the raw weights
    # w = w_z / sd, C = X'X - n mu mu' and C_xy = X'y - n mu my': the same fit without scaling D x D entries
    c = np.einsum("bi,bj->bij", mu * -n[:, None], mu)
    c += sxx
    c[:, np.arange(mu.shape[1]), np.arange(mu.shape[1])] += lam * sd * sd
    w = np.linalg.solve(c, sxy - n[:, None, None] * mu[:, :, None] * my[:, None, :])
    return w, my - np.einsum("bd,bdk->bk", mu, w)


PROBE_BATCH_BYTES = 128e6  # working memory of one batch of resamples in probe_r2_batches


def probe_r2_batches(stats: ProbeStats, counts: np.ndarray, lam: float) -> list[dict[str, float]]:
    """probe_r2_counts for each row of counts [B, V], in one pass over the per-video sums: the weighted sums of
    every task come from one matrix product per task for the whole batch (the D x D sums of all videos are
    read once per batch, not once per resample), and the fits of each held-out task are solved together."""
    weight = np.asarray(counts, np.float64)[:, stats.order]
    rows = len(weight)
    parts: dict[str, list[np.ndarray]] = {}  # task -> [n, sx, sxx, sy, sxy, syy], each with a leading B axis
    for task, span in stats.spans.items():
        w = weight[:, span]
        parts[task] = [w @ stats.n[span]] + [(w @ (a := getattr(stats, f)[span]).reshape(len(a), -1)).reshape(
            (rows, *a.shape[1:])) for f in ("sx", "sxx", "sy", "sxy", "syy")]
    drawn = {task: weight[:, span].sum(1) > 0 for task, span in stats.spans.items()}  # [B] per task
    first, *rest = parts.values()
    total = [a.copy() for a in first]
    for part in rest:
        for k in range(6):
            total[k] += part[k]
    scores: list[dict[str, list[float]]] = [{name: [] for name in stats.targets} for _ in range(rows)]
    enough = sum(drawn.values()) >= 2  # [B]: a probe needs a task to fit on besides the one it scores
    for task, (n, sx, sxx, sy, sxy, syy) in parts.items():
        use = np.flatnonzero(drawn[task] & enough)
        if not len(use):
            continue
        pick = slice(None) if len(use) == rows else use  # a view when every row fits: no copy of the D x D sums
        n, sx, sxx, sy, sxy, syy = (a[pick] for a in (n, sx, sxx, sy, sxy, syy))
        w, b = _probe_fits(*(total[k][pick] - part for k, part in enumerate((n, sx, sxx, sy, sxy))), lam=lam)
        # per column k: sum over the task's frames of (y - x w - b)^2, expanded into the sums
        res = (syy + (w * (sxx @ w)).sum(1) + n[:, None] * b * b - 2 * (w * sxy).sum(1) - 2 * b * sy
               + 2 * b * np.einsum("bd,bdk->bk", sx, w))
        tot = syy - sy * sy / n[:, None]
        for row, i in enumerate(use):
            for name, cols in stats.targets.items():
                if tot[row, cols].sum() > 1e-12:  # a task whose target never moves has nothing to explain
                    scores[i][name].append(1.0 - res[row, cols].sum() / tot[row, cols].sum())
    return [{name: float(np.mean(v)) if v else float("nan") for name, v in row.items()} for row in scores]


def probe_r2_counts(stats: ProbeStats, counts: np.ndarray, lam: float) -> dict[str, float]:
    """Each probe's mean over held-out tasks of its R^2 (pooled over its columns) when fitted on the other
    tasks, with video i (i-th record that carries state) counted counts[i] times (a bootstrap resample; all ones:
    the data)."""
    return probe_r2_batches(stats, np.asarray(counts)[None], lam)[0]


def probe_batch_size(stats: ProbeStats) -> int:
    """Resamples per probe_r2_batches call: the per-task D x D sums of a batch fit in PROBE_BATCH_BYTES."""
    d = stats.sx.shape[1]
    return max(1, int(PROBE_BATCH_BYTES // (8 * d * d * (len(stats.spans) + 3))))


def _failure_auc(field: str) -> Callable[[list[Record]], float]:
    return lambda rs: _per_task_auc(rs, lambda r: getattr(r, field) if r.succeeded else None,
                                    lambda r: None if r.succeeded else getattr(r, field))


STATISTICS: dict[str, Callable[[list[Record]], float]] = {
    **{m: functools.partial(_mean_over_success, field=m)
       for m in ("voc_last", "bump_last", "voc_other", "bump_other", *TEXT_METRICS)},
    "fail_auc_final": _failure_auc("final"),
    "fail_auc_sum": _failure_auc("summed"),
    "near_auc": lambda rs: _per_task_auc(rs, lambda r: r.final if r.succeeded and r.near_value is not None else None,
                                         lambda r: r.near_value if r.succeeded else None),
}
PROBES = {"probe_hand": HAND, "probe_object": OBJECT}


def score_records(records: list[Record], n_boot: int = 1000, seed: int = 0,
                  metrics: tuple[str, ...] = METRICS) -> dict[str, dict[str, float]]:
    """Each metric with its 95% bootstrap interval over videos (resampled within each task)."""
    strata = [r.task for r in records]
    out = {m: bootstrap_ci(records, STATISTICS[m], n_boot=n_boot, seed=seed, strata=strata)
           for m in metrics if m not in PROBES}
    probes = {m: PROBES[m] for m in metrics if m in PROBES}
    stats = probe_stats(records, probes) if probes else None
    if stats is not None:  # every probe from one fit per resample (they share the embedding side)
        # one BLAS thread per solve: BLAS threads buy nothing on D x D solves (D <= 1024) and, when the cores are
        # busy, made each solve about 30x slower (measured at D = 512 on 2 cores). The resamples are independent,
        # so batches of them (of a size fixed by D and the number of tasks) run on one Python thread per usable
        # core instead (numpy releases the GIL inside BLAS/LAPACK); each batch is computed exactly as alone, so
        # the figures do not depend on the number of threads.
        counts = np.stack([np.bincount(idx, minlength=len(stats.tasks))
                           for idx in bootstrap_resamples(stats.tasks, n_boot, seed)])
        size = probe_batch_size(stats)
        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(min(usable_cores(), 4)) as pool:
            boots = [r for batch in pool.map(lambda i: probe_r2_batches(stats, counts[i:i + size], PROBE_LAMBDA),
                                             range(0, n_boot, size)) for r in batch]
            point = probe_r2_counts(stats, np.ones(len(stats.tasks)), PROBE_LAMBDA)
        out.update({m: percentile_interval(point[m], [b[m] for b in boots]) for m in probes})
    else:
        out.update({m: percentile_interval(float("nan"), []) for m in probes})
    return {m: out[m] for m in metrics}


EXPERT, OTHER_BEHAVIOUR = "expert episodes", "other behaviours"  # breakdown groups besides the tasks


def voc_breakdown(items: list[tuple[str, bool | None, float]], n_boot: int = 1000,
                  seed: int = 0) -> dict[str, dict[str, float]]:
    """Mean VOC with its 95% bootstrap interval over videos within groups: each task, and, where the videos say
    whether the scripted expert made them, the expert episodes and the other behaviours (e.g. a noisy expert)
    apart. items: (task, expert or None, VOC) of each successful video. Shows where an encoder's VOC is lost.
    Each group: mean, lo, hi, n (resamples kept) and videos (its size)."""
    groups: dict[str, list[float]] = defaultdict(list)
    for task, _, value in items:
        groups[task].append(value)
    for _, expert, value in items:
        if expert is not None:
            groups[EXPERT if expert else OTHER_BEHAVIOUR].append(value)
    return {g: {**bootstrap_ci(vals, lambda xs: float(np.mean(xs)), n_boot=n_boot, seed=seed), "videos": len(vals)}
            for g, vals in sorted(groups.items(), key=lambda kv: (kv[0] in (EXPERT, OTHER_BEHAVIOUR), kv[0]))}


def record_breakdown(records: list[Record], n_boot: int = 1000, seed: int = 0) -> dict[str, dict[str, float]]:
    """voc_breakdown of an encoder's VOC with the other-episodes goal, over successful videos."""
    return voc_breakdown([(r.task, r.expert, r.voc_other) for r in records if r.succeeded and r.voc_other is not None],
                         n_boot, seed)


def reward_breakdown(videos: list[ScoreVideo], n_boot: int = 1000, seed: int = 0) -> dict[str, dict[str, float]] | None:
    """The same breakdown for the shards' own per-step reward read as a value curve (VOC of reward over time), a
    privileged reference: a simulator's shaped reward knows the state. None when the videos carry no reward."""
    items = [(v.task, v.expert, voc(v.reward)) for v in videos if v.succeeded and v.reward is not None]
    return voc_breakdown(items, n_boot, seed) if items else None


def example_curves(videos: list[ScoreVideo], records: list[Record], per_task: int = 2) -> list[tuple[str, np.ndarray]]:
    """Value curves (goal = other episodes) of the first `per_task` successful videos of each task, labelled
    by task: the same videos for every encoder, since videos load in a fixed order."""
    out: list[tuple[str, np.ndarray]] = []
    seen: defaultdict[str, int] = defaultdict(int)
    for v, r in zip(videos, records):
        if v.succeeded and r.curve is not None and seen[v.task] < per_task:
            seen[v.task] += 1
            out.append((f"{v.task} #{seen[v.task]}", r.curve))
    return out


def fingerprint(encoder: Any, settings: dict[str, Any]) -> str:
    """A digest of the encoder's weights, buffers and config and of the scoring settings: equal digests mean
    equal scores, so `reprl score --cache` reuses them."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    h.update(json.dumps(dataclasses.asdict(encoder.config), sort_keys=True, default=str).encode())
    for name, t in encoder.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def dataset_summary(videos: list[ScoreVideo]) -> dict[str, Any]:
    tasks: dict[str, dict[str, int]] = defaultdict(lambda: {"succeeded": 0, "failed": 0})
    for v in videos:
        tasks[v.task]["succeeded" if v.succeeded else "failed"] += 1
    return {"videos": len(videos), "tasks": dict(tasks)}
