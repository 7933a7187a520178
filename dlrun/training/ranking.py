"""Rank statistics in torch: ROC AUC as the Mann-Whitney U statistic, column by column.

The area under the ROC curve is the probability that a random positive scores above a random
negative, a tie counting one half. From average ranks this takes one sort per column and no
curve, so it runs on whatever device holds the scores and handles every column of a one-vs-rest
or multilabel average at once; scikit-learn's trapezoidal curve gives the same number.
"""

from __future__ import annotations

import torch


def wide_float(device: torch.device) -> torch.dtype:
    """float64, as scikit-learn computes, except on devices without it (MPS has float32 only)."""
    return torch.float32 if device.type == "mps" else torch.float64


def twice_positive_rank_sums(scores: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Per column of ``scores`` ``(N, C)``: twice the sum of the positives' 1-based ranks.

    Ties share their mean rank; doubling keeps those half ranks exact in int64. A tie group
    spanning sorted positions ``first .. last`` (0-based) has mean rank doubled
    ``first + last + 2``. One sort and two running extrema per column: cheaper than a second
    pass of ``searchsorted``, and torch's CPU sort is the cost that matters.
    """
    ordered, order = scores.sort(dim=0)
    ranked_positive = positive.long().gather(0, order)
    n = len(ordered)
    index = torch.arange(n, device=scores.device)[:, None].expand_as(ordered)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    ends = torch.ones_like(starts)
    ends[:-1] = starts[1:]
    first = torch.where(starts, index, 0).cummax(dim=0).values
    last = torch.where(ends, index, n - 1).flip(0).cummin(dim=0).values.flip(0)
    return ((first + last + 2) * ranked_positive).sum(dim=0)


def roc_auc_columns(scores: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """ROC AUC of each column of ``scores`` ``(N, C)`` against boolean ``positive`` ``(N, C)``.

    A column whose targets hold a single class comes out NaN (0/0), as scikit-learn's undefined
    value does; so does a column with a NaN score, where scikit-learn would raise.

    Example:
        >>> scores = torch.tensor([[0.1], [0.4], [0.4], [0.8]])
        >>> roc_auc_columns(scores, torch.tensor([[False], [False], [True], [True]])).tolist()
        [0.875]
    """
    n_pos = positive.long().sum(dim=0)
    n_neg = positive.shape[0] - n_pos
    # U counts (positive, negative) pairs won: the rank sum less the positives' own ranks 1..n_pos
    twice_u = twice_positive_rank_sums(scores, positive) - n_pos * (n_pos + 1)
    dtype = wide_float(scores.device)
    auc = twice_u.to(dtype) / (2 * n_pos * n_neg).to(dtype)
    return auc.masked_fill(scores.isnan().any(dim=0), float("nan"))
