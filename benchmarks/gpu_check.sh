#!/usr/bin/env bash
# GPU check (one CUDA GPU, at most ~8 minutes): the smoke profile end to end on CUDA in bf16, then one smol-profile
# LoRA run (SmolLM2-135M, the real LM) trained for its full step count and evaluated; prints per-stage wall time,
# peak GPU memory, training samples/s, and the ratio to the CPU figures measured on the 2-core CPU machine.
#
#   bash benchmarks/gpu_check.sh            # from the repository root, after `bash scripts/install gpu`
#
# Works in a scratch copy of the tracked files (your data/, models/ and dvc.lock stay untouched). `train.precision:
# auto` picks bf16 on a bf16 GPU for every stage. Exits 2 without a CUDA device.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
[ -x .venv/bin/python ] || { echo "gpu_check: run bash scripts/install gpu first" >&2; exit 2; }
export PATH="$repo/.venv/bin:$PATH" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 DVC_NO_ANALYTICS=1
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 2)" || {
  echo "gpu_check: no CUDA device (torch.cuda.is_available() is False)" >&2; exit 2; }
python -c "import torch; print('gpu:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"

work=$(mktemp -d)/repo
mkdir -p "$work"
git ls-files -z | xargs -0 -I{} cp --parents {} "$work/"
cd "$work"
rm -f dvc.lock
git init -q && git add -A && git -c user.email=gpu@check -c user.name=gpu-check commit -qm "gpu check"

run_profile() {  # profile, targets...
  local profile=$1; shift
  sed -i "s/^profile: .*/profile: $profile/" params.yaml
  local t0=$SECONDS
  hydra-repro repro --jobs 1 "$@" > "repro_$profile.log" 2>&1 || { tail -40 "repro_$profile.log"; exit 1; }
  cp logs/repro/timings.json "timings_$profile.json"
  echo "$profile: $((SECONDS - t0)) s ($*)"
}
run_profile smoke
run_profile smol evaluate@lora_small

python - <<'PY'
import json
from pathlib import Path

# CPU reference: the smoke pipeline one stage at a time took 782 s and 819 s in two runs on 2026-12-07, 2-core CPU
# development machine (another job on the other core)
CPU_SMOKE_S = 800
for profile in ("smoke", "smol"):
    t = json.loads(Path(f"timings_{profile}.json").read_text())
    print(f"\n{profile}: {t['wall_seconds']:.0f} s in all" + (f" (CPU {CPU_SMOKE_S} s: x{CPU_SMOKE_S / t['wall_seconds']:.1f})"
                                                           if profile == "smoke" else ""))
    stages = t["stages"]
    for name, info in sorted(stages.items(), key=lambda kv: -(kv[1].get("seconds") or 0))[:15]:
        print(f"  {name:40s} {info.get('seconds', 0):8.1f} s")
print(f"\n{'output':56s} {'wall s':>8s} {'peak GPU GiB':>13s} {'train samples/s':>16s}")
for side in sorted(Path(".").glob("**/*.provenance.json")):
    p = json.loads(side.read_text())
    mem = p.get("hardware", {}).get("peak_gpu_mem_gib")
    sps = (p.get("trainer") or {}).get("train_samples_per_second")
    wall = p.get("wall_time_s")
    print(f"{str(side).removesuffix('.provenance.json'):56s} {wall if wall is not None else '-':>8} "
          f"{mem if mem is not None else '-':>13} {sps if sps is not None else '-':>16}")
PY
