"""A command pays only for what it uses: heavy libraries are imported where they are needed.

Each check runs in a fresh interpreter (this one has imported everything already) and lists
which heavy modules ended up in ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO
from tests.conftest import tiny_config

# Reporting, sweeps and scikit-learn: none is needed to check a config (iris itself is shipped
# inside scikit-learn, so validating against its data imports that package and nothing else).
NOT_FOR_VALIDATE = ["matplotlib", "tensorboard", "torch.utils.tensorboard", "optuna", "sklearn",
                    "scipy.stats", "PIL", "torch._dynamo"]  # fmt: skip
# A small run draws its figures and writes TensorBoard events; it never needs the sweep engine.
# (scikit-learn splits, loads its bundled datasets and writes the per-class report: on purpose.)
NOT_FOR_A_RUN = ["optuna"]

PROBE = """
import json, sys
from pathlib import Path

args = json.loads(sys.argv[1])

def loaded(names):
    return sorted(n for n in names if n in sys.modules)

import dlrun.cli
seen = {"cli": loaded(args["validate"])}
from dlrun.api import run_experiment, validate_experiment
from dlrun.config.load import load_config
validate_experiment(load_config(args["mnist"], []), use_data=False)
seen["validate --no-data"] = loaded(args["validate"])
validate_experiment(load_config(args["iris"], []))
seen["validate iris"] = loaded(args["validate"])
run_experiment(load_config(args["iris"], []), Path(args["runs"]))
seen["train iris"] = loaded(args["run"])
print(json.dumps(seen))
"""


def test_cli_validate_and_a_small_run_import_only_what_they_use(tmp_path: Path) -> None:
    iris = tmp_path / "iris.yaml"
    iris.write_text(yaml.safe_dump(tiny_config(), sort_keys=False))
    args = {"validate": NOT_FOR_VALIDATE, "run": NOT_FOR_A_RUN, "iris": str(iris),
            "mnist": str(REPO / "configs/dlwp/ch2_mnist_dense.yaml"),
            "runs": str(tmp_path / "runs")}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True,
                          text=True, cwd=REPO, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"cli": [], "validate --no-data": [], "validate iris": ["scipy.stats", "sklearn"],
                    "train iris": []}  # fmt: skip
