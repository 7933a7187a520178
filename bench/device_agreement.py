"""One experiment on two devices: do CPU and CUDA train the same model to the same scores?

Each device runs the config as ``dlrun train`` would (same seed, so the same splits and the same
initial weights, drawn on the CPU before the model moves); the per-epoch losses and the test
scores are printed side by side with their largest difference over the epochs both ran.
Dropout draws its masks from each device's own generator, so a config with dropout trains
differently from the first epoch (and may stop early at another epoch); an override such as
``model.layers.1.dropout=0`` compares the arithmetic alone.

    python bench/device_agreement.py configs/quickstart.yaml [--devices cpu cuda] [overrides...]
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from dlrun.api import run_experiment
from dlrun.config.load import load_config


@dataclass(frozen=True)
class DeviceRun:
    """What one device's run gave: its wall time, epoch rows and test scores."""

    device: str
    seconds: float
    epochs: list[dict[str, float]]  # the fit rows of metrics.jsonl
    test: dict[str, float]


def run_on(config: Path, overrides: list[str], device: str) -> DeviceRun:
    """Train ``config`` on ``device`` in this process, in a throwaway runs directory."""
    cfg = load_config(config, [*overrides, f"train.device={device}", "train.progress=none"])
    with tempfile.TemporaryDirectory() as runs:
        started = time.perf_counter()
        result = run_experiment(cfg, Path(runs), Console(file=io.StringIO()))
        seconds = time.perf_counter() - started
        lines = (result.run_dir / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    fit = [row for row in rows if row.get("phase") == "fit"]
    return DeviceRun(device, seconds, fit, result.results.get("test") or {})


def compare(first: DeviceRun, second: DeviceRun) -> None:
    """Print both runs' epoch losses side by side, the largest gaps and the test scores."""
    runs = (first, second)
    if not (first.epochs and second.epochs):
        print(f"no epochs to compare: {first.device} ran {len(first.epochs)}, "
              f"{second.device} {len(second.epochs)}")  # fmt: skip
        return
    names: list[str] = [n for n in ("loss", "val_loss") if n in first.epochs[0]]
    print(f"epochs run: {first.device} {len(first.epochs)}, {second.device} {len(second.epochs)}; "
          f"seconds: {first.device} {first.seconds:.1f}, {second.device} {second.seconds:.1f}")  # fmt: skip
    header = "".join(f"  {n} {r.device:>6}" for n in names for r in runs)
    print(f"epoch{header}")
    for a, b in zip(first.epochs, second.epochs, strict=False):
        print(
            f"{a['epoch']:5d}"
            + "".join(f"  {r[n]:{len(n) + 7}.6f}" for n in names for r in (a, b))
        )
    for name in names:
        gaps = [abs(a[name] - b[name]) for a, b in zip(first.epochs, second.epochs, strict=False)]
        print(f"largest {name} difference: {max(gaps):.2e}")
    for metric, ours in first.test.items():
        theirs = second.test.get(metric, float("nan"))
        print(f"test {metric}: {first.device} {ours:.4f}, {second.device} {theirs:.4f}, "
              f"difference {abs(ours - theirs):.2e}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", type=Path)
    parser.add_argument("overrides", nargs="*", help="dotted overrides, as for dlrun train")
    parser.add_argument("--devices", nargs=2, default=["cpu", "cuda"])
    args = parser.parse_intermixed_args()
    first, second = (run_on(args.config, args.overrides, device) for device in args.devices)
    compare(first, second)


if __name__ == "__main__":
    main()
