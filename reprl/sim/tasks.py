"""MetaWorld task names, a plain-language description of each, and reprl's out-of-domain split.

Evaluation tasks are R3M's five; pretraining corpora are rendered from the other 45 only, so a pretrained
encoder never sees an evaluation task. Names are given without the '-v3' suffix.
"""

from __future__ import annotations

from reprl.errors import ReprlError

TASK_TEXT: dict[str, str] = {
    "assembly": "place the nut onto the peg",
    "basketball": "dunk the ball into the basket",
    "bin-picking": "move the cube from one bin to the other",
    "box-close": "put the lid on the box",
    "button-press-topdown": "press the button from above",
    "button-press-topdown-wall": "press the button from above behind the wall",
    "button-press": "push the button forward",
    "button-press-wall": "push the button behind the wall",
    "coffee-button": "press the button on the coffee machine",
    "coffee-pull": "pull the mug away from the coffee machine",
    "coffee-push": "push the mug under the coffee machine",
    "dial-turn": "turn the dial",
    "disassemble": "lift the nut off the peg",
    "door-close": "close the door",
    "door-lock": "lock the door",
    "door-open": "open the door",
    "door-unlock": "unlock the door",
    "drawer-close": "close the drawer",
    "drawer-open": "open the drawer",
    "faucet-close": "turn the faucet off",
    "faucet-open": "turn the faucet on",
    "hammer": "hammer the nail into the wall",
    "hand-insert": "put the hand into the hole",
    "handle-press-side": "press the handle down from the side",
    "handle-press": "press the handle down",
    "handle-pull-side": "pull the handle up from the side",
    "handle-pull": "pull the handle up",
    "lever-pull": "pull the lever up",
    "peg-insert-side": "insert the peg into the hole from the side",
    "peg-unplug-side": "unplug the peg from the side",
    "pick-out-of-hole": "pick the peg out of the hole",
    "pick-place": "pick up the puck and place it at the target",
    "pick-place-wall": "pick up the puck and place it behind the wall",
    "plate-slide-back-side": "slide the plate back out from the side",
    "plate-slide-back": "slide the plate back out of the goal",
    "plate-slide-side": "slide the plate sideways into the goal",
    "plate-slide": "slide the plate into the goal",
    "push-back": "push the puck backwards",
    "push": "push the puck to the target",
    "push-wall": "push the puck around the wall",
    "reach": "reach for the target",
    "reach-wall": "reach for the target over the wall",
    "shelf-place": "place the puck on the shelf",
    "soccer": "kick the ball into the goal",
    "stick-pull": "pull the container with the stick",
    "stick-push": "push the container with the stick",
    "sweep-into": "sweep the puck into the hole",
    "sweep": "sweep the puck off the table",
    "window-close": "close the window",
    "window-open": "open the window",
}

EVAL_TASKS: tuple[str, ...] = ("assembly", "bin-picking", "button-press-topdown", "drawer-open", "hammer")
PRETRAIN_TASKS: tuple[str, ...] = tuple(t for t in TASK_TEXT if t not in EVAL_TASKS)
CAMERAS: tuple[str, ...] = ("corner", "corner2", "corner3", "corner4", "topview", "behindGripper", "gripperPOV")
FLIPPED_CAMERAS = frozenset({"corner", "corner2", "corner3", "corner4"})  # render upside down


def task_name(name: str) -> str:
    """'drawer-open' or 'drawer-open-v3' -> 'drawer-open'; unknown names fail with the valid ones listed."""
    base = name.removesuffix("-v3").removesuffix("-v2")
    if base not in TASK_TEXT:
        raise ReprlError(f"unknown MetaWorld task {name!r}; valid: {', '.join(sorted(TASK_TEXT))}")
    return base


def resolve_tasks(spec: str | list[str]) -> list[str]:
    """Task list from names or the groups 'eval' (R3M's five), 'pretrain' (the other 45) and 'all'."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for item in (i.strip() for i in items if i.strip()):
        group = {"eval": EVAL_TASKS, "pretrain": PRETRAIN_TASKS, "all": tuple(TASK_TEXT)}.get(item)
        for t in group or (task_name(item),):
            if t not in out:
                out.append(t)
    if not out:
        raise ReprlError("no tasks given: name tasks (e.g. drawer-open,reach) or a group: eval, pretrain, all")
    return out


def check_camera(camera: str) -> str:
    if camera not in CAMERAS:
        raise ReprlError(f"unknown camera {camera!r}; valid: {', '.join(CAMERAS)}")
    return camera
