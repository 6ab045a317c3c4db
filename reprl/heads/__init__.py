"""Policy heads on frozen embeddings, usable from control code: BC, reward-weighted regression (RWR), and the
value-based heads for data of mixed quality (AWR, IQL, f-DVL, ReCOIL, TRAIL); docs/heads.md.

    from reprl.heads import load_policy
    policy = load_policy("eval/results/SUITE/policies/CELL")    # head + its frozen encoder
    action = policy.act(image, proprio)                         # or policy.select_action(obs_dict)
"""

from reprl.heads.policy import HeadConfig, Policy, PolicyHead, load_head, load_policy, save_head
from reprl.heads.registry import CONFIGS, HEADS, head_config, make_learner, train_policy
from reprl.heads.train import HeadTrainer, Transitions, rwr_weights, train_head, transition_rewards

__all__ = ["HeadConfig", "PolicyHead", "Policy", "load_policy", "load_head", "save_head", "Transitions",
           "train_head", "HeadTrainer", "rwr_weights", "transition_rewards", "HEADS", "CONFIGS", "head_config",
           "make_learner", "train_policy"]
