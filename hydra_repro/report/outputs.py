"""Everything the `tables` stage writes: every table in Markdown and LaTeX, the figures, the claims, tables/README.md
and the metrics file, rendered in memory and then written atomically."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from hydra_repro.io import atomic_write_bytes, atomic_write_text
from hydra_repro.report.allocation_tables import table_5, table_6, table_7, table_8
from hydra_repro.report.calibration import table_calibration
from hydra_repro.report.claims import claims
from hydra_repro.report.controls import table_controls, table_search
from hydra_repro.report.figures import fig_3, fig_6, fig_search
from hydra_repro.report.inputs import COMMAND, INFEASIBLE, PERFMODEL_PLACEHOLDER, Inputs
from hydra_repro.report.render import Table, header, render_latex, render_markdown
from hydra_repro.report.results_tables import table_1, table_2, table_3, table_4

TABLES = (
    table_1,
    table_2,
    table_3,
    table_4,
    table_5,
    table_6,
    table_7,
    table_8,
    table_search,
    table_controls,
    table_calibration,
)


PROTOCOL = """\
- MME: perception score (sum over the 10 perception categories of acc + acc+, max 2000) for the paper profile, as
  MobileVLM and the paper report it; for the mini tasks (mini, smoke, smol) the sum over all our 5 categories (max
  1000): a mini MME Δ vs the paper compares scores of different maxima.
- POPE answers: lmms-eval's exact yes / no parsing (MobileVLM uses LLaVA's, which reads the first sentence).
- POPE: F1 in %, averaged over the three categories (adversarial, popular, random).
- MMBench: `mmbench_en_dev_static`, CircularEval accuracy in %, regex answer extraction (no GPT judge).
- TextVQA: VQA accuracy without OCR tokens (lmms-eval's default; MobileVLM's protocol adds OCR tokens).
- GQA, ScienceQA-IMG: exact-match accuracy in %."""


DESCRIPTIONS = {
    "table_1": "gradient norms per projection: paper vs ours (small, large), and whether the ordering claim holds",
    "table_2": "increasing rank (Case) vs uniform R and 2R, with the rank each uses relative to uniform R",
    "table_3": "main results: cited literature rows, then Full / LoRA / HyDRA per size, gains and direction checks",
    "table_4": "coarse (Config1-4) and fine (Setting1-5) ablations",
    "table_5": "Config1-4 as printed, as defined in code at paper scale, the allocator's Config4, and at our scale",
    "table_6": "Setting1-5: the adjustments and their trainable parameters vs the budget C",
    "table_7": "number of stages N in {7, 11, 13, 17} and Δd",
    "table_8": "performance-model ablation (MSE, MAE; plus repeated k-fold)",
    "table_search": "beyond the paper: best objective vs schedules trained, performance-model-guided vs random",
    "table_controls": "beyond the paper: random, reversed, AdaLoRA, EVA and rsLoRA controls vs HyDRA at budget C",
    "calibration": "is this testbed informative? uniform LoRA vs each task's floor and ceiling, seed SD and MDD",
    "fig_3": "average gradient norm per layer, small and large model, with the paper's qualitative claim",
    "fig_6": "performance-model training and validation loss per epoch",
}


def readme(inp: Inputs, tables: Sequence[Table]) -> str:
    out = [
        f"<!-- {header(inp.profile, '').strip()} -->",
        "",
        "# tables/",
        "",
        f"Every table and figure of the HyDRA paper, reproduced at profile **{inp.profile}**: the paper's value, ours "
        "and Δ = ours − paper side by side. The paper's numbers come from `experiments/paper_values.yaml`; which run "
        "fills which row is decided in `hydra_repro/report/inputs.py` (`TABLE_RUNS`).",
        "",
        "**Mini-scale numbers are not expected to match the paper.** The mini and smoke profiles train a small "
        "MobileVLM-shaped model on analog tasks; compare directions and orderings, not values.",
        "",
        "| file | what it shows |",
        "|---|---|",
    ]
    for t in tables:
        out.append(f"| [{t.key}.md]({t.key}.md), [{t.key}.tex]({t.key}.tex) | {DESCRIPTIONS[t.key]} |")
    for f in ("fig_3", "fig_6"):
        placeholder = " (placeholder until the performance model lands)" if f == "fig_6" and not inp.perfmodel else ""
        out.append(f"| [{f}.png]({f}.png) | {DESCRIPTIONS[f]}{placeholder} |")
    out.append(
        "| [claims.md](claims.md) | each claim of the paper with this run's evidence and a verdict at this scale |"
    )
    out += ["", "## Evaluation protocol", "", PROTOCOL, ""]
    keys = ", ".join(f"`{k}` = {v}" for k, v in inp.benchmarks.items())
    out += [f"Benchmark keys of the result files: {keys}.", ""]
    notes = list(inp.missing)
    notes += [f"{r.run}: infeasible at this scale: {r.reason}" for r in inp.results.values() if r.status == INFEASIBLE]
    if inp.perfmodel is None:
        notes.append(f"Table VIII and Fig. 6: {PERFMODEL_PLACEHOLDER}")
    if notes:
        out += ["## Gaps in this run", ""] + [f"- {n}" for n in notes] + [""]
    out += ["The LaTeX files need `\\usepackage{booktabs}`.", ""]
    return "\n".join(out)


def metrics(inp: Inputs) -> str:
    """`metrics.json` for `dvc metrics show` / `dvc exp show`: each trained run's headline per benchmark (the mean over
    its training seeds), rounded as the tables print them."""
    runs = {}
    for name, result in sorted(inp.results.items()):
        if result.headline is None:
            continue
        runs[name] = {b: round(statistics.fmean(result.seed_values(b)), 2) for b in inp.benchmarks}
    generated = f"dvc repro ({COMMAND} --profile {inp.profile}); do not edit"
    return json.dumps({"generated_by": generated, "profile": inp.profile, "runs": runs}, indent=2) + "\n"


def render_all(inp: Inputs) -> dict[str, str | bytes]:
    """File name -> content of every output, built in memory (nothing is written)."""
    tables = [build(inp) for build in TABLES]
    out: dict[str, str | bytes] = {}
    for t in tables:
        out[f"{t.key}.md"] = render_markdown(t, inp.profile)
        out[f"{t.key}.tex"] = render_latex(t, inp.profile)
    out["fig_3.png"] = fig_3(inp)
    out["fig_6.png"] = fig_6(inp)
    out["fig_search.png"] = fig_search(inp)
    out["claims.md"] = claims(inp)
    out["metrics.json"] = metrics(inp)
    out["README.md"] = readme(inp, tables)
    return out


def write_outputs(outputs: Mapping[str, str | bytes], out_dir: str | Path) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, content in outputs.items():
        if isinstance(content, bytes):
            atomic_write_bytes(out_dir / name, content)
        else:
            atomic_write_text(out_dir / name, content)
