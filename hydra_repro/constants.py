"""Constants shared by model, data and evaluation code (LLaVA / MobileVLM conventions)."""

# Placeholder id spliced into input_ids where image features go (MobileVLM's IMAGE_TOKEN_INDEX).
IMAGE_TOKEN_INDEX = -200
# Label id ignored by the loss (non-assistant tokens, padding, image positions).
IGNORE_INDEX = -100
DEFAULT_IMAGE_TOKEN = "<image>"

# The six benchmarks, in the paper's table order (lmms-eval names them mme, mmbench_en_dev, textvqa_val, pope,
# gqa, scienceqa_img).
BENCHMARKS = ("mme", "mmbench", "textvqa", "pope", "gqa", "sqa_img")

# The seven LoRA-adapted projections of a Llama decoder layer, in the paper's eq. 3 order.
COMPONENTS = ("q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "gate_proj")
# Where each component lives inside `model.layers.<i>` of a Llama model.
COMPONENT_PARENT = {
    "q_proj": "self_attn",
    "k_proj": "self_attn",
    "v_proj": "self_attn",
    "o_proj": "self_attn",
    "gate_proj": "mlp",
    "up_proj": "mlp",
    "down_proj": "mlp",
}
# EVA (PEFT's data-driven LoRA init): a module may get up to EVA_RHO x r components (PEFT's default rho); the SVD
# needs that many features and answer tokens per batch
EVA_RHO = 2.0
