import os

from hypothesis import HealthCheck, settings

# No test may reach the Hugging Face hub (none is reachable here, and CI must not depend on it).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# CI machines are slow and shared: no per-example deadline; the default profile keeps the suite fast.
settings.register_profile("ci", deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=50)
# scripts/mutation: fixed examples (a mutant is killed or not, the same on every run), fewer of them
settings.register_profile(
    "mutation", deadline=None, max_examples=30, derandomize=True, suppress_health_check=list(HealthCheck)
)
settings.register_profile("thorough", deadline=None, max_examples=3000, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


import pytest  # noqa: E402

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory):
    """The smoke profile's data (params.yaml), built once per pytest run (~2 s)."""
    from hydra_repro.config import dataclass_from_dict, load_params
    from hydra_repro.config.data import DataConfig
    from hydra_repro.data.build import prepare

    _, section = load_params(REPO / "params.yaml", "smoke")
    out = tmp_path_factory.mktemp("smoke") / "data"
    prepare(dataclass_from_dict(DataConfig, section["data"], "profiles.smoke.data"), out, "smoke")
    return out


def write_profile(folder, **sections) -> "__import__('pathlib').Path":
    """A params.yaml in `folder` whose one profile, `t`, is the shipped smoke profile with `sections` replacing
    (not merging into) its sections: every verb validates a whole profile first."""
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    profile = {**params["profiles"]["smoke"], **sections}
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump({"profile": "t", "profiles": {"t": profile}}), encoding="utf-8")
    return path
