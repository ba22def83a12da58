"""The default protocol: RecBole's own defaults, so numbers compare with RecBole's published ones.

Random 8:1:1 split of each user's interactions, full ranking over all items, early stopping on
validation NDCG@10 (RecBole's ``stopping_step`` 10).
"""

from m6rec_bench.protocols.base import Protocol, register

DEFAULT = register(Protocol(
    name="default",
    description="random 8:1:1 split per user, full ranking, early stopping on valid NDCG@10",
    recbole={
        "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "RO", "mode": "full"},
    },
))
