"""The graph policy: a message-passing network over the workflow DAG, in plain PyTorch.

Tasks are embedded from the features that do not change during a run (runtimes and energies per
machine, upward rank, work below, data), then ``layers`` rounds of message passing add, to each task,
the mean of its children's and of its parents' embeddings (two directions, so a task learns of the work
below and above it). These graph embeddings are computed once per workflow when scheduling; at each
decision only the ready tasks are scored: their graph embedding plus an embedding of their state
(status, expected end). Each (task, machine) pair is scored from its task's embedding, its machine's
embedding, the pair's features and the global features (weight w, progress), plus learned multiples of
the objective prior (the objective's myopic change if the task goes there, features.py) and of the
task's upward rank: the network learns corrections to a sensible rule rather than starting from noise.
The prior alone, taken greedily, already beats the online heuristics on the weighted objective at
0 < w < 1 (docs/policy.md). The value head reads pooled task and machine embeddings. Nothing depends on the
number of tasks or edges: padded rows (all-zero status) and edges (index -1) are dropped, so the same
weights score a 20-task or a 1,000-task workflow.
"""

from __future__ import annotations

import torch
from torch import nn

from allocate.policy.features import (
    GLOBAL_FEATURES,
    MACHINE_FEATURES,
    PAIR_FEATURES,
    PRIOR_COLUMN,
    task_feature_count,
)

_RANK_COLUMN = 6  # upward_rank in TASK_FEATURES
DYNAMIC_COLUMNS = [0, 1, 2, 3, 12]  # status one-hot and expected end: they change at every decision


def _mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, outputs))


class GraphPolicyNetwork(nn.Module):
    def __init__(self, machines: int, hidden: int = 64, layers: int = 3):
        super().__init__()
        self.machines, self.hidden, self.layers = machines, hidden, layers
        columns = task_feature_count(machines)
        self.static_columns = [c for c in range(columns) if c not in DYNAMIC_COLUMNS]
        self.task_in = _mlp(len(self.static_columns), hidden, hidden)
        self.rounds = nn.ModuleList([_mlp(3 * hidden, hidden, hidden) for _ in range(layers)])
        self.dynamic_in = _mlp(len(DYNAMIC_COLUMNS), hidden, hidden)
        self.machine_in = _mlp(len(MACHINE_FEATURES), hidden, hidden)
        g = len(GLOBAL_FEATURES)
        self.pair_task = nn.Linear(hidden, hidden)
        self.pair_machine = nn.Linear(hidden, hidden, bias=False)
        self.pair_features = nn.Linear(len(PAIR_FEATURES) + g, hidden, bias=False)
        self.pair_out = nn.Linear(hidden, 1)
        nn.init.zeros_(self.pair_out.weight)  # start from the prior; training learns the corrections
        nn.init.zeros_(self.pair_out.bias)
        self.heuristic_scale = nn.Parameter(torch.tensor(3.0))
        self.rank_scale = nn.Parameter(torch.tensor(15.0))
        self.value = _mlp(3 * hidden + g, hidden, 1)

    def embed(self, tasks: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        """Graph embeddings [B, N, H] of the tasks from their static features (message passing)."""
        b, n, _ = tasks.shape
        h = self.task_in(tasks[..., self.static_columns]).reshape(b * n, self.hidden)
        edges = edges.long()
        keep = (edges[:, 0] >= 0) & (edges[:, 1] >= 0)
        offset = (torch.arange(b, device=tasks.device) * n)[:, None]
        src = (edges[:, 0] + offset)[keep]
        dst = (edges[:, 1] + offset)[keep]
        ones = torch.ones(len(src), device=tasks.device)
        children = torch.zeros(b * n, device=tasks.device).index_add_(0, src, ones).clamp(min=1)[:, None]
        parents = torch.zeros(b * n, device=tasks.device).index_add_(0, dst, ones).clamp(min=1)[:, None]
        for layer in self.rounds:
            from_children = torch.zeros_like(h).index_add_(0, src, h[dst]) / children
            from_parents = torch.zeros_like(h).index_add_(0, dst, h[src]) / parents
            h = h + layer(torch.cat([h, from_children, from_parents], dim=1))
        return h.reshape(b, n, self.hidden)

    def score(
        self, graph: torch.Tensor, tasks: torch.Tensor, pairs: torch.Tensor, machines: torch.Tensor, glob
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits [B, N, M] of the given task rows, their full embeddings, and the machine embeddings."""
        h = graph + self.dynamic_in(tasks[..., DYNAMIC_COLUMNS])
        machines = self.machine_in(machines)  # [B, M, H]
        b, n, m = pairs.shape[0], pairs.shape[1], pairs.shape[2]
        squashed = torch.sign(pairs) * torch.log1p(
            pairs.abs()
        )  # delays and energies in task shares reach 100s
        pair_inputs = torch.cat([squashed, glob[:, None, None, :].expand(b, n, m, glob.shape[-1])], dim=-1)
        hidden = (
            self.pair_task(h)[:, :, None, :]
            + self.pair_machine(machines)[:, None, :, :]
            + self.pair_features(pair_inputs)
        )
        learned = self.pair_out(torch.relu(hidden)).squeeze(-1)
        rank = tasks[..., _RANK_COLUMN][:, :, None]
        prior = self.heuristic_scale * pairs[..., PRIOR_COLUMN] + self.rank_scale * rank
        return learned + prior, h, machines

    def forward(self, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [B, N * machines] (task-major) and values [B] of padded observations."""
        tasks, glob = obs["tasks"], obs["global"]
        graph = self.embed(tasks, obs["edges"])
        logits, h, machines = self.score(graph, tasks, obs["pairs"], obs["machines"], glob)
        valid = (tasks[..., :4].sum(-1) > 0).float()[..., None]
        pooled = (h * valid).sum(1) / valid.sum(1).clamp(min=1)
        ready = tasks[..., 1:2]
        pooled_ready = (h * ready).sum(1) / ready.sum(1).clamp(min=1)
        value = self.value(torch.cat([pooled, pooled_ready, machines.mean(1), glob], dim=-1)).squeeze(-1)
        return logits.reshape(logits.shape[0], -1), value
