"""The floor of each benchmark on its own test set: random guessing and the best constant answer, on the headline's
scale, from the per-sample records an evaluation writes (so they hold for exactly the questions a run answered).

Constant answers are scored by `core.scoring.Scorer` on records whose prediction is that answer, so they use the
tables' own headline arithmetic. Random guessing is an expectation, computed in closed form per benchmark:
- MME: each answer right with probability 1/2: acc = 50, acc+ = the mean over images of 0.5^k (k questions of that
  image and category), summed over categories (375 for five categories of two-question images).
- POPE: "yes" with probability 1/2; F1 at the expected counts (tp = P/2, fp = N/2, fn = P/2), averaged over
  categories (F1 of expected counts, not the expectation of F1; the two differ by O(1/n)).
- MMBench CircularEval: a question group is a hit only if every rotation is right; a question with n options comes
  in n rotations, so chance is (1/n)^n per group (0.39% for four options).
- ScienceQA-IMG: 1 / (number of choices) per question; needs the choice counts (records do not carry them).
- GQA, TextVQA (open answers): an answer drawn uniformly from the test set's distinct answers, i.e. the mean of the
  constant-answer scores over those answers.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from hydra_repro.core.scoring import headline_from_records


def _norm(x: Any) -> str:
    return str(x).lower().strip()


def vqa_accuracy(answer: str, targets: Sequence[str]) -> float:
    """The VQA accuracy of one answer against the human answers: the mean over leaving each one out of
    min(1, matches among the others / 3) (a single target: exact match)."""
    targets = [_norm(t) for t in targets]
    if len(targets) == 1:
        return float(_norm(answer) == targets[0])
    a = _norm(answer)
    return float(
        np.mean([min(1.0, sum(t == a for j, t in enumerate(targets) if j != i) / 3) for i in range(len(targets))])
    )


def _targets(r: dict[str, Any]) -> list[str]:
    t = r["target"]
    return [str(x) for x in t] if isinstance(t, list | tuple) else [str(t)]


def _candidates(bench: str, records: Sequence[dict[str, Any]]) -> list[str]:
    if bench in ("mme", "pope"):
        return ["Yes", "No"] if bench == "mme" else ["yes", "no"]
    if bench == "textvqa":  # each question's most common human answer
        return sorted({Counter(_norm(t) for t in _targets(r)).most_common(1)[0][0] for r in records})
    return sorted({_norm(r["target"]) for r in records})


def constant_records(bench: str, records: Sequence[dict[str, Any]], answer: str) -> list[dict[str, Any]]:
    """`records` as if the model had answered `answer` to every question (MMBench: to every rotation)."""
    out = []
    if bench == "mmbench":
        groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for r in records:
            groups[repr(r["unit"])].append(r)
        hit = {u: float(all(_norm(r["target"]) == _norm(answer) for r in g)) for u, g in groups.items()}
        return [r | {"prediction": answer, "score": hit[repr(r["unit"])]} for r in records]
    for r in records:
        if bench == "textvqa":
            score = vqa_accuracy(answer, _targets(r))
        else:
            score = float(_norm(r["target"]) == _norm(answer))
        out.append(r | {"prediction": answer, "score": score})
    return out


def constant_baseline(bench: str, records: Sequence[dict[str, Any]]) -> tuple[float, str]:
    """(headline, answer) of the best single answer given to every question."""
    scored = [
        (headline_from_records(bench, constant_records(bench, records, a)), a) for a in _candidates(bench, records)
    ]
    return max(scored, key=lambda s: (s[0], s[1]))


def chance_baseline(
    bench: str, records: Sequence[dict[str, Any]], n_choices: Sequence[int] | None = None
) -> float | None:
    """The expected headline of random guessing (see the module docstring); None for ScienceQA without choice counts."""
    if bench == "mme":
        by_cat: dict[str, dict[Any, int]] = defaultdict(Counter)
        for r in records:
            by_cat[str(r.get("category"))][repr(r["unit"])] += 1
        return float(sum(50.0 + 100.0 * np.mean([0.5**k for k in c.values()]) for c in by_cat.values()))
    if bench == "pope":
        counts: dict[str, Counter[str]] = defaultdict(Counter)
        for r in records:
            counts[str(r.get("category") or "all")][_norm(r["target"])] += 1
        f1 = []
        for c in counts.values():
            p, n = c["yes"], c["no"]
            f1.append(200.0 * (p / 2) / (2 * (p / 2) + n / 2 + p / 2) if p else 0.0)
        return float(np.mean(f1))
    if bench == "mmbench":
        sizes = Counter(repr(r["unit"]) for r in records)
        return float(100.0 * np.mean([(1.0 / k) ** k for k in sizes.values()]))
    if bench == "sqa_img":
        return None if n_choices is None else float(100.0 * np.mean([1.0 / k for k in n_choices]))
    return float(
        np.mean(
            [headline_from_records(bench, constant_records(bench, records, a)) for a in _candidates(bench, records)]
        )
    )
