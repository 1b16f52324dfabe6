"""HyDRA's performance model: a small Transformer regressor from a rank schedule to benchmark scores, and the
baselines Table VIII compares it with."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hydra_repro.config.perfmodel import PerfModelConfig
from hydra_repro.constants import BENCHMARKS, COMPONENTS
from hydra_repro.errors import DegenerateDataError, UserError
from hydra_repro.io import read_json

MODELS = ("mlp", "lightgbm", "rf", "transformer")


def collect_points(schedules: Path, results: Path, role: str, extra: list[dict] | None = None) -> list[dict]:
    """[{run, ranks: [[7 ints] per layer], r_standard, scores: {benchmark: value}}] of the role's evaluated
    schedule runs (sorted by run name), plus `extra` points already in that form (the search's)."""
    points = []
    for path in sorted(Path(schedules).glob("*.json")):
        plan = read_json(path, "schedule plan")
        if plan.get("model") != role or "schedule" not in plan or plan.get("method") not in ("lora", "schedule"):
            continue
        if plan.get("rslora"):  # the rsLoRA control: same ranks as uniform LoRA, another scaling (not a rank effect)
            continue
        result_path = Path(results) / f"{plan['run']}.json"
        if not result_path.is_file():
            continue
        headline = read_json(result_path, "run result").get("headline") or {}
        if any(headline.get(b) is None for b in BENCHMARKS):
            continue  # an infeasible run has no scores
        ranks = [[layer[c] for c in COMPONENTS] for layer in plan["schedule"]["layers"]]
        scores = {b: float(headline[b]) for b in BENCHMARKS}
        points.append({"run": plan["run"], "ranks": ranks, "r_standard": plan["r_standard"], "scores": scores})
    return points + list(extra or [])


def arrays(points: list[dict]) -> tuple[Any, Any]:
    """X [n, layers, 7] (ranks / R_standard) and Y [n, 6] raw scores; checks the set is usable."""
    import numpy as np

    if not points:
        raise DegenerateDataError(
            "performance model: no evaluated schedule runs to learn from (run the train/evaluate stages)"
        )
    lengths = {len(p["ranks"]) for p in points}
    if len(lengths) != 1:
        raise UserError(f"performance model: points have different layer counts {sorted(lengths)}; use one role")
    x = np.array([np.asarray(p["ranks"], dtype=float) / p["r_standard"] for p in points])
    y = np.array([[p["scores"][b] for b in BENCHMARKS] for p in points], dtype=float)
    return x, y


class Standardizer:
    """Per-benchmark z-scores with the training points' mean and std; constant benchmarks get std 1."""

    def __init__(self, y: Any) -> None:
        import numpy as np

        self.mean = y.mean(axis=0)
        std = y.std(axis=0)
        self.constant = [b for b, s in zip(BENCHMARKS, std, strict=True) if s == 0]
        self.std = np.where(std > 0, std, 1.0)

    def __call__(self, y: Any) -> Any:
        return (y - self.mean) / self.std


def _transformer_cls() -> Any:
    import torch
    from torch import nn

    class PerfTransformer(nn.Module):
        """One token per LM layer (its 7 ranks), a layer-position embedding, one encoder layer, mean pool."""

        def __init__(self, n_layers: int, cfg: PerfModelConfig) -> None:
            super().__init__()
            self.inp = nn.Linear(len(COMPONENTS), cfg.d_model)
            self.pos = nn.Parameter(torch.randn(n_layers, cfg.d_model) * 0.02)
            self.enc = nn.TransformerEncoderLayer(cfg.d_model, cfg.heads, cfg.ff, dropout=0.0, batch_first=True)
            self.out = nn.Linear(cfg.d_model, len(BENCHMARKS))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.enc(self.inp(x) + self.pos).mean(dim=1))

    return PerfTransformer


def fit_transformer(
    x: Any, y: Any, cfg: PerfModelConfig, x_val: Any = None, y_val: Any = None
) -> tuple[Any, dict[str, list[float]]]:
    """Full-batch Adam on the L2 loss; returns (predict function, {"train": [...], "validation": [...]})."""
    import torch

    torch.manual_seed(cfg.seed)
    model = _transformer_cls()(x.shape[1], cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    xv = None if x_val is None else torch.tensor(x_val, dtype=torch.float32)
    yv = None if y_val is None else torch.tensor(y_val, dtype=torch.float32)
    curves: dict[str, list[float]] = {"train": [], "validation": []}
    for _ in range(cfg.epochs):
        model.train()
        loss = torch.nn.functional.mse_loss(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        curves["train"].append(loss.item())
        if xv is not None:
            model.eval()
            with torch.no_grad():
                curves["validation"].append(torch.nn.functional.mse_loss(model(xv), yv).item())
    model.eval()

    def predict(x_new: Any) -> Any:
        with torch.no_grad():
            return model(torch.tensor(x_new, dtype=torch.float32)).numpy().astype(float)

    return predict, curves


def fit_baseline(name: str, x: Any, y: Any, seed: int) -> Any:
    """A scikit-learn / LightGBM regressor on the flattened ranks; returns its predict function."""
    flat = x.reshape(len(x), -1)
    if name == "mlp":
        from sklearn.neural_network import MLPRegressor

        model = MLPRegressor(hidden_layer_sizes=(64,), max_iter=2000, random_state=seed)
    elif name == "rf":
        from sklearn.ensemble import RandomForestRegressor

        model = RandomForestRegressor(n_estimators=200, random_state=seed)
    elif name == "lightgbm":
        from lightgbm import LGBMRegressor
        from sklearn.multioutput import MultiOutputRegressor

        # small data: LightGBM's default leaf minimum (20) would make every tree a single leaf
        lgbm = LGBMRegressor(n_estimators=200, min_child_samples=2, min_data_in_bin=1, random_state=seed, verbose=-1)
        model = MultiOutputRegressor(lgbm)
    else:
        raise UserError(f"performance model: got {name!r}; expected one of {list(MODELS)}")
    model.fit(flat, y)
    return lambda x_new: model.predict(x_new.reshape(len(x_new), -1))


def fit(name: str, x: Any, y: Any, cfg: PerfModelConfig) -> Any:
    return fit_transformer(x, y, cfg)[0] if name == "transformer" else fit_baseline(name, x, y, cfg.seed)


def _errors(pred: Any, y: Any, scale: Standardizer) -> dict[str, float]:
    """MSE and MAE over the benchmarks that vary among the fit's training points: a benchmark constant there
    (mini: MMBench 0, POPE 66.67 everywhere) is predicted exactly by every model and would only dilute the mean."""
    import numpy as np

    keep = [i for i, b in enumerate(BENCHMARKS) if b not in scale.constant] or list(range(len(BENCHMARKS)))
    err = (pred - y)[:, keep]
    return {"mse": float(np.mean(err**2)), "mae": float(np.mean(np.abs(err)))}


def evaluate_models(x: Any, y: Any, cfg: PerfModelConfig) -> dict[str, Any]:
    """Table VIII's numbers: each model's MSE/MAE on the 8:2 split and over repeated K-fold; Fig. 6's curves."""
    import numpy as np

    n = len(x)
    if n < max(cfg.folds, 5):
        raise DegenerateDataError(
            f"performance model: {n} data points; need at least {max(cfg.folds, 5)} (perfmodel.folds = {cfg.folds})"
        )
    if (y.std(axis=0) == 0).all():
        raise DegenerateDataError(
            "performance model: every benchmark score is the same for all points (constant targets)"
        )
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(n)
    n_val = max(1, round(cfg.val_fraction * n))
    val, train = order[:n_val], order[n_val:]
    scale = Standardizer(y[train])
    out: dict[str, Any] = {"models": {}, "curves": {}}
    for name in MODELS:
        if name == "transformer":
            predict, curves = fit_transformer(x[train], scale(y[train]), cfg, x[val], scale(y[val]))
            out["curves"] = {"transformer train": curves["train"], "transformer validation": curves["validation"]}
        else:
            predict = fit(name, x[train], scale(y[train]), cfg)
        out["models"][name] = _errors(predict(x[val]), scale(y[val]), scale)
    fold_errors: dict[str, list[dict[str, float]]] = {m: [] for m in MODELS}
    for r in range(cfg.repeats):
        perm = np.random.default_rng(cfg.seed + 1 + r).permutation(n)
        for k in range(cfg.folds):
            test = perm[k :: cfg.folds]
            rest = np.setdiff1d(perm, test)
            s = Standardizer(y[rest])
            for name in MODELS:
                fold_errors[name].append(_errors(fit(name, x[rest], s(y[rest]), cfg)(x[test]), s(y[test]), s))
    for name in MODELS:
        for metric in ("mse", "mae"):
            vals = np.array([e[metric] for e in fold_errors[name]])
            out["models"][name][f"{metric}_kfold_mean"] = float(vals.mean())
            out["models"][name][f"{metric}_kfold_std"] = float(vals.std(ddof=1))
            out["models"][name][f"{metric}_kfold"] = vals.tolist()  # per fold, same folds for every model: paired
    out["split"] = {"train": len(train), "validation": len(val), "folds": cfg.folds, "repeats": cfg.repeats}
    out["constant_benchmarks"] = scale.constant
    return out


def run_perfmodel(cfg: PerfModelConfig, points: list[dict]) -> dict[str, Any]:
    x, y = arrays(points)
    start = time.time()
    out = evaluate_models(x, y, cfg)
    out["fit_time_s"] = round(time.time() - start, 2)
    out["points"] = len(points)
    out["runs"] = [p["run"] for p in points]
    out["config"] = cfg.__dict__ | {}
    out["units"] = (
        "standardised scores (z per benchmark, train-split mean and std), averaged over the benchmarks that vary "
        "among the training points (`constant_benchmarks` are left out)"
    )
    return out
