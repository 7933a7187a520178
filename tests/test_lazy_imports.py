"""A command pays only for what it uses: heavy libraries are imported where they are needed.

Each check runs in a fresh interpreter (this one has imported everything already) and lists
which heavy modules ended up in ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.conftest import tiny_config

# Reporting, sweeps and scikit-learn: none is needed to check a config (iris itself is shipped
# inside scikit-learn, so validating against its data imports that package and nothing else).
NOT_FOR_VALIDATE = ["matplotlib", "tensorboard", "torch.utils.tensorboard", "optuna", "sklearn",
                    "scipy.stats", "PIL", "torch._dynamo"]  # fmt: skip
# A small run draws its figures and writes TensorBoard events; it never needs the sweep engine,
# nor torch's compiler, which torch's optimizers import on their first use (1.2 s here).
# (scikit-learn reads a bundled dataset the first time, as validating iris just did.)
NOT_FOR_A_RUN = ["optuna", "torch._dynamo"]

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
import torch  # torch's own mark for compiled code is left as torch made it
seen["marked"] = hasattr(torch.optim.Optimizer.add_param_group.__wrapped__, "__dynamo_disable")
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
                    "train iris": [], "marked": False}  # fmt: skip


# TensorBoard's TensorFlow stand-ins (0.3 to 0.4 s): its record writer and plugin helpers load
# them; a run writes its events with TensorBoard's protobufs alone.
HEAVY = ["torch", "sklearn", "scipy", "matplotlib", "pydantic", "optuna", "tensorboard",
         "tensorboard.compat.tensorflow_stub"]  # fmt: skip
IRIS_RUN = (
    "import sys, tempfile\n"
    "from pathlib import Path\n"
    "from dlrun.api import run_experiment\n"
    "from dlrun.config.load import config_from_data\n"
    "from tests.conftest import tiny_config\n"
    "run_experiment(config_from_data(tiny_config()), Path(tempfile.mkdtemp()))"
)
# What each part of a run needs, loaded in a fresh interpreter: no part loads scikit-learn or
# scipy (scipy.stats over a second to import here, scipy.special a quarter) once the bundled
# dataset is in the cache.
PARTS = {
    "the figure process": ("from dlrun.reporting import figure_worker, curves, drawing\n"
                           "from dlrun.evaluation import aggregate\n"
                           "figure_worker.warm_up()", ["matplotlib"]),
    "a stratified hold-out split": ("import numpy as np\n"
                                    "from dlrun.evaluation.splits import holdout_indices\n"
                                    "holdout_indices(100, np.arange(100) % 3, 0, fraction=0.2,"
                                    " stratify=True)", []),
    "the significance tests": ("import numpy as np\n"
                               "from dlrun.evaluation import significance as s\n"
                               "s.binomial_tail(7, 10, 0.5), s.paired_t_less(np.arange(5.0))",
                               ["pydantic", "torch"]),
    "the class report": ("import torch\n"
                         "from dlrun.evaluation.analysis import analyse_classification\n"
                         "from dlrun.training.metrics import Predictions\n"
                         "y = torch.eye(3)[[0, 1, 2, 1]]\n"
                         "analyse_classification(Predictions(y, y, y.argmax(1), y.argmax(1)), None)",
                         ["torch"]),
    "an iris run, its table cached": (IRIS_RUN, ["matplotlib", "pydantic", "tensorboard", "torch"]),
}  # fmt: skip


def loaded_by(script: str, names: list[str]) -> list[str]:
    """Which of ``names`` a fresh interpreter has loaded after running ``script``."""
    probe = f"{script}\nimport sys\nprint(sorted(n for n in {names!r} if n in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=REPO, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"'))
    return loaded


@pytest.mark.parametrize("part", PARTS)
def test_each_part_of_a_run_loads_only_what_it_needs(part: str) -> None:
    script, expected = PARTS[part]
    if script is IRIS_RUN:
        loaded_by(script, [])  # the first run reads iris through scikit-learn and caches it
    assert loaded_by(script, HEAVY) == expected
