"""One vocabulary for `precision` wherever an encoder's forward can run in lower precision (reprl embed, reprl
eval's suites, policies, the benchmarks): 32 | bf16 | 16, with Lightning's '-mixed' / '-true' names accepted."""

from __future__ import annotations

from reprl.errors import ReprlError

PRECISIONS = ("32", "bf16", "16")


def normalize_precision(text: object) -> str:
    """'bf16-mixed' -> 'bf16', '32-true' -> '32'; anything else is a one-line error."""
    value = str(text).strip().lower().removesuffix("-mixed").removesuffix("-true")
    if value not in PRECISIONS:
        raise ReprlError(f"precision must be 32, bf16 or 16 (16 on CUDA only), got {text!r}")
    return value
