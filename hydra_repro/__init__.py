"""hydra-repro: a reproducibility suite for HyDRA (Xi, Bing, Yahyapour, 2025).

HyDRA is the paper's method (hierarchical and dynamic LoRA rank adaptation), not the Hydra
configuration framework; this package does not use facebookresearch/hydra.
"""

__version__ = "0.1.0"
