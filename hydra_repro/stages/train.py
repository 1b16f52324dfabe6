"""`hydra-repro train`: instruction tuning (MobileVLM stage II) by full fine-tuning, LoRA, a HyDRA schedule or AdaLoRA.

    hydra-repro train --params params.yaml --profile mini --run lora_r8 --base models/mini/base \\
        --data data/mini/train.json --images data/mini --out runs/lora_r8 --method lora --rank 8
    hydra-repro train ... --method schedule --schedule schedules/hydra_fine.json --rank 8   # rank 8 sets budget C
    accelerate launch --num_processes 4 -m hydra_repro train ...                          # data parallel (GPUs)

Where the work is: `config.train.TrainConfig` holds the paper's settings; `adapters.attach.attach_adapter` builds the
PEFT model and checks every realized rank against the plan (`adapters.peft_config`); `training.instruct.train_run`
trains with HF `Trainer` (`training.trainer`) in `<out>.partial/` (checkpoints there, resumed when the command runs
again) and publishes `<out>` in one rename at the end; `adapters.rundir.load_run` loads a published run.

Every method goes through the same code: `lora` is `Schedule.uniform(n_layers, rank)`, `schedule` is a schedule JSON
(`hydra-repro allocate`), `adalora` starts from a uniform `init_r` and lets PEFT prune, `full` has no adapter.

The projector: MobileVLM trains its LDP projector fully alongside LoRA. Here it is PEFT `modules_to_save`
(`mm_projector`), not a bare `requires_grad`: then the projector travels inside every adapter checkpoint, so resuming
restores it and `PeftModel.from_pretrained` brings it back; a requires_grad projector would silently revert to the
base weights on resume. The vision tower stays frozen in every method.

A published run directory (everything needed besides the base model, whose path and config hash run.json records):

    runs/<run>/
      run.json                 method, base model, schedule, config, seed, precision, final train loss
      ranks.json               planned and realized rank of every module; LoRA parameters vs formula and budget C
      train_log.jsonl          one line per logging step (loss, learning rate, grad norm) + the final summary
      schedule.json            the ranks trained (lora, schedule, adalora's initial ranks)
      adapter/                 PEFT adapter (adapter_config.json, adapter_model.safetensors incl. the projector)
      mm_projector.safetensors the trained projector alone (MobileVLM's `mm_projector.bin` counterpart)
      config.json, model.safetensors   full fine-tuning only: the whole model in MobileVLM's layout
      tokenizer files, preprocessor_config.json
    runs/<run>.provenance.json versions, lock hash, commit, hardware, wall time: outside the run, so that the run
                               hashes the same on any machine
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hydra_repro.adapters.rundir import RUN_FILE
from hydra_repro.config.train import METHODS, train_config_from_params
from hydra_repro.core.schedule import Schedule
from hydra_repro.data.conversation import image_folder
from hydra_repro.errors import UserError
from hydra_repro.io import atomic_dir, read_json, write_json
from hydra_repro.training.instruct import train_run


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="its profile's `train` section sets the defaults"
    )
    p.add_argument("--profile", help="profile of params.yaml (default: the file's `profile` key)")
    p.add_argument("--run", help="run name recorded in run.json (default: the name of --out)")
    p.add_argument("--base", required=True, type=Path, help="base model directory (models/<profile>/small|large)")
    p.add_argument("--data", required=True, type=Path, help="LLaVA-format train.json")
    p.add_argument(
        "--images", type=Path, help="folder the records' image paths are relative to (default: from manifest.json)"
    )
    p.add_argument("--out", required=True, type=Path, help="run directory to publish (runs/<profile>/<run>)")
    p.add_argument("--method", choices=METHODS, help="default: the params file's, else lora")
    p.add_argument("--schedule", type=Path, help="schedule JSON (method schedule)")
    p.add_argument(
        "--plan", type=Path, help="a run plan from `hydra-repro allocate --registry` (sets method, rank, schedule)"
    )
    p.add_argument("--rank", type=int, help="lora rank; schedule: R_standard of budget C; adalora: target mean rank")
    p.add_argument("--tokenizer", type=Path, help="tokenizer directory if the base model has none")
    p.add_argument("--max-steps", type=int, help="optimizer steps (overrides epochs)")
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--global-batch-size", type=int)
    p.add_argument("--per-device-batch-size", type=int)
    p.add_argument("--save-steps", type=int)
    p.add_argument("--seed", type=int)


def apply_plan(args: argparse.Namespace) -> dict[str, Any] | None:
    """Fill method / rank / schedule from a registry plan; returns the plan (None without --plan)."""
    if args.plan is None:
        return None
    plan = read_json(args.plan, "run plan (hydra-repro allocate --registry)")
    if "infeasible" in plan:
        return plan
    if args.method is not None or args.schedule is not None:
        raise UserError("--plan: sets the method and schedule itself; drop --method / --schedule")
    args.method = plan["method"]
    args.rslora = plan.get("rslora") or None
    if args.rank is None and plan.get("r_standard") is not None:
        args.rank = plan["r_standard"]
    if plan["method"] == "schedule":
        args.schedule_obj = Schedule.from_dict(plan["schedule"], where=f"{args.plan}: schedule")
    return plan


def write_infeasible(out: Path, plan: dict[str, Any]) -> None:
    """A run whose allocation is infeasible at this scale: a run record that says so, and nothing trained."""
    record = {"run": plan.get("run", out.name), "status": "infeasible", "reason": plan["infeasible"]}
    with atomic_dir(out) as tmp:
        write_json((tmp / RUN_FILE), record)


def run(args: argparse.Namespace) -> int:
    args.schedule_obj = None
    plan = apply_plan(args)
    if plan is not None and "infeasible" in plan:
        write_infeasible(args.out, plan)
        print(f"train: {args.out} is infeasible at this scale: {plan['infeasible']}")
        return 0
    cfg = train_config_from_params(
        args.params,
        args.profile,
        method=args.method,
        rank=args.rank,
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        global_batch_size=args.global_batch_size,
        per_device_batch_size=args.per_device_batch_size,
        save_steps=args.save_steps,
        seed=args.seed,
        rslora=getattr(args, "rslora", None),
    )
    schedule = Schedule.load(args.schedule) if args.schedule is not None else args.schedule_obj
    profile = args.profile
    out = train_run(
        cfg,
        args.base,
        args.data,
        image_folder(args.data, args.images),
        args.out,
        run_name=args.run,
        schedule=schedule,
        tokenizer_path=args.tokenizer,
        profile=profile,
    )
    print(f"train: wrote {out}")
    return 0
