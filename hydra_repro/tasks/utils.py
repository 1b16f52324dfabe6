"""Functions named by `!function utils.<name>` in the mini task YAMLs (copied next to them by `prepare`).

The mini tasks include the real lmms-eval task YAMLs, so prompts, generation settings, `process_results`
and aggregations are lmms-eval's own. Only a `metric_list` that a mini task overrides needs a function
from here, and each one is the real task's function, re-exported unchanged.
"""

from lmms_eval.tasks.mmbench.en_utils import mmbench_aggregate_dev_results_static

__all__ = ["mmbench_aggregate_dev_results_static"]
