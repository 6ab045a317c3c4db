"""`reprl bench ...`: each CPU/GPU path measured against a bound taken in the same run."""

from __future__ import annotations

from typing import Any


def bench_encoder(source: str, image_size: int | None = None, device: str = "cpu") -> Any:
    """The encoder a bench measures, frozen on `device`. An architecture name is built at random init on purpose
    (speed does not depend on the weights), shaped by `image_size`, without reprl.load's warning that a user
    asked for an untrained encoder; any other source loads as reprl.load would (a trained encoder keeps its own
    size)."""
    import reprl
    from reprl.encoders.io import build_architecture, is_architecture_name
    from reprl.utils.machine import resolve_device

    if not is_architecture_name(source):
        return reprl.load(source, device=device)
    encoder = build_architecture(source, **({"image_size": image_size} if image_size else {}))
    return encoder.to(resolve_device(device, "device")).freeze()
