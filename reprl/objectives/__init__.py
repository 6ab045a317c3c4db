"""Training objectives as small pure-torch functions: (embeddings, ...) -> (loss, metrics)."""

from reprl.objectives.common import chi2_weights, conjugate_term, gather_with_grad
from reprl.objectives.liv import clip_loss, liv_loss
from reprl.objectives.r3m import LanguageReward, r3m_loss
from reprl.objectives.registry import Objective, ObjectiveConfig, register_objective
from reprl.objectives.vip import vip_loss

__all__ = ["vip_loss", "liv_loss", "clip_loss", "r3m_loss", "LanguageReward", "conjugate_term", "chi2_weights",
           "gather_with_grad", "Objective", "ObjectiveConfig", "register_objective"]
