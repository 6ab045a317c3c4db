"""Policy heads on frozen embeddings (BC, reward-weighted regression), usable from control code.

    from reprl.heads import load_policy
    policy = load_policy("eval/results/.../policy")      # head + its frozen encoder
    action = policy.act(image, proprio)
"""

from reprl.heads.policy import HeadConfig, Policy, PolicyHead, load_head, load_policy, save_head
from reprl.heads.train import HeadTrainer, Transitions, rwr_weights, train_head, transition_rewards

__all__ = ["HeadConfig", "PolicyHead", "Policy", "load_policy", "load_head", "save_head", "Transitions",
           "train_head", "HeadTrainer", "rwr_weights", "transition_rewards"]
