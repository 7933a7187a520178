"""Training-step time of dlrun's recurrent step loop against torch's fused kernel.

Keras 2's recurrent layers (the books') gate with ``hard_sigmoid``, which torch's fused LSTM and
GRU kernels do not offer, so dlrun runs those layers as a loop over the time steps. This times
one training batch of DLwP 6.2.3's model (Embedding(10000, 32), LSTM(32), Dense(1); batch 128,
500 steps) both ways, in this process, alternating, and prints the median ratio loop / fused
(the fused kernel is the reference: sigmoid gates, the same shapes and work).

    python bench/bench_recurrent.py [--repeats 5] [--steps 500]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dlrun.config.load import config_from_data
from dlrun.evaluation.fitting import task_for
from dlrun.tasks.base import Task
from dlrun.training.batches import FieldSpec


def lstm_task(gates: str, steps: int) -> Task:
    cfg = config_from_data({
        "name": "bench", "task": "binary", "data": {"dataset": "iris"}, "preprocess": [],
        "model": {"layers": [{"embedding": {"input_dim": 10000, "output_dim": 32}},
                             {"lstm": {"units": 32, "recurrent_activation": gates}},
                             {"dense": {"units": 1, "activation": "sigmoid"}}]},
        "loss": "binary_crossentropy", "optimizer": "rmsprop", "metrics": ["accuracy"],
    })  # fmt: skip
    torch.manual_seed(0)
    task = task_for(cfg)
    fields = {"x": FieldSpec((steps,), torch.int64), "y": FieldSpec((1,), torch.float32)}
    task.build(fields, torch.device("cpu"))
    return task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5, help="timed batches per form")
    parser.add_argument("--steps", type=int, default=500, help="time steps per sequence")
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    batch = {"x": torch.randint(0, 10000, (128, args.steps), generator=gen),
             "y": torch.randint(0, 2, (128, 1), generator=gen).float()}  # fmt: skip
    forms = {"loop (hard_sigmoid_keras2)": lstm_task("hard_sigmoid_keras2", args.steps),
             "fused (sigmoid)": lstm_task("sigmoid", args.steps)}  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in forms}
    for task in forms.values():
        task.train_step(batch)  # warm up
    for _ in range(args.repeats):
        for name, task in forms.items():
            started = time.perf_counter()
            task.train_step(batch)
            times[name].append(time.perf_counter() - started)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, LSTM(32) training "
          f"step, batch 128 x {args.steps} steps, {args.repeats} alternating repeats")  # fmt: skip
    for name, values in times.items():
        print(f"  {name}: {statistics.median(values):.3f} s")
    loop, fused = times.values()
    ratio = statistics.median(a / b for a, b in zip(loop, fused, strict=True))
    print(f"ratio loop / fused: {ratio:.2f}")


if __name__ == "__main__":
    main()
