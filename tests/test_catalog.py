"""The catalog (kd_ls/catalog.json) is what the code generates; with it the default study is checked
and planned without torch, to the same plan, run ids and costs as by building everything; any
setting the catalog did not build is still built, and refused in one line when it is wrong."""

import json
import subprocess
import sys

import pytest
import yaml

from kd_ls import catalog
from kd_ls.study.catalog_build import generate, render
from kd_ls.study import StudyError, parse_study
from kd_ls.study.build_checks import built_by_catalog
from kd_ls.study.cost import forward_flops
from kd_ls.study.dry_run import describe
from kd_ls.study.spec import DEFAULT_STUDY

HEAVY = ("torch", "pytorch_lightning", "lightning_fabric", "numpy", "scipy", "matplotlib", "mnist1d")


def default_raw() -> dict:
    return yaml.safe_load(DEFAULT_STUDY.read_text())


def test_the_committed_catalog_is_what_the_code_generates():
    assert catalog.CATALOG_PATH.read_text() == render(generate()), \
        "kd_ls/catalog.json is stale: run `python -m kd_ls.study.catalog_build` and commit it"


def test_the_default_dry_run_imports_neither_torch_nor_lightning_nor_data(tmp_path):
    script = ("import sys\nfrom kd_ls.commands.main import main\nmain(sys.argv[1:])\n"
              f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script, "study", "--dry-run", "--output", str(tmp_path / "s")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "LOADED []" in done.stdout, done.stdout[-500:]
    assert "55 runs planned" in done.stdout and "teacher-89c424a48b4f" in done.stdout


def test_the_catalog_gives_the_plan_and_costs_that_building_gives(tmp_path):
    study = parse_study({**default_raw(), "output": str(tmp_path / "s")})
    assert built_by_catalog(study)
    fast = describe(study, parallel=2)
    unbuilt = {**catalog.catalog(), "built": {"data": [], "networks": []}}
    forward_flops.cache_clear()
    try:
        with catalog.using(unbuilt):
            rebuilt = parse_study({**default_raw(), "output": str(tmp_path / "s")})
            assert not built_by_catalog(rebuilt)
            slow = describe(rebuilt, parallel=2)
    finally:
        forward_flops.cache_clear()
    assert fast == slow  # same runs, ids, FLOPs and training samples


@pytest.mark.parametrize("edit, message", [
    (lambda raw: raw["student"]["model_kwargs"].update(widht=[3]),
     "study.student.model: 'widht' (in model_kwargs) is not an argument of model 'mlp'; allowed: widths, dropout; "
     "did you mean widths?"),
    (lambda raw: raw["dataset"]["options"].update(num_sample=100),
     "study.dataset.options: 'num_sample' is not an option of dataset 'mnist1d'"),
    (lambda raw: raw["teacher"].update(model="conv1e"), "study.teacher.model: model name 'conv1e' is unknown"),
])
def test_unknown_names_are_refused_from_the_catalog_with_a_suggestion(edit, message):
    raw = default_raw()
    edit(raw)
    with pytest.raises(StudyError) as err:
        parse_study(raw)
    assert message in str(err.value) and "\n" not in str(err.value)
    if "num_sample" in message:
        assert "did you mean num_samples?" in str(err.value)


@pytest.mark.parametrize("edit, field", [
    (lambda raw: raw["student"]["model_kwargs"].update(widths=[0]), "study.student.model:"),
    (lambda raw: raw["dataset"]["options"].update(num_samples=5), "study.dataset.options:"),
])
def test_a_setting_the_catalog_did_not_build_is_built_and_refused_in_one_line(edit, field):
    raw = default_raw()
    edit(raw)
    with pytest.raises(StudyError) as err:
        parse_study(raw)
    assert str(err.value).startswith(field) and "\n" not in str(err.value)


def test_the_catalog_records_the_shipped_networks_flops_as_torch_counts_them():
    from kd_ls.study.cost import InputSpec, count_forward_flops

    for entry in catalog.catalog()["built"]["networks"]:
        spec = InputSpec(tuple(entry["input_shape"]), entry["num_classes"])
        assert entry["forward_flops"] == count_forward_flops(entry["net"], entry["net_kwargs"], spec) > 0
    # an MLP's forward FLOPs by hand: 2 * (40*512 + 512*512 + 512*10)
    mlp = next(e for e in catalog.catalog()["built"]["networks"] if e["net"] == "mlp")
    assert mlp["net_kwargs"] == {"widths": [512, 512]}
    assert mlp["forward_flops"] == 2 * (40 * 512 + 512 * 512 + 512 * 10)
    assert json.loads(json.dumps(catalog.catalog())) == catalog.catalog()
