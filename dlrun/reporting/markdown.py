"""report.md: a readable summary of one run (or one fold), built as a pure function of its results."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def _table(rows: list[dict[str, Any]], keys: list[str]) -> str:
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_fmt(row.get(k, "")) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def _setup(results: dict[str, Any]) -> list[str]:
    if "data" not in results:  # a fold's sub-run
        sizes = results.get("sizes", {})
        return ["## Setup", "", f"- fold {results.get('fold')} of the run one directory up; "
                f"seed {results.get('seed')}; epochs run {results.get('epochs_run')}",
                "- sizes: " + ", ".join(f"{k} {v}" for k, v in sizes.items()), ""]  # fmt: skip
    final = (
        f"; final retrain: {results['final_epochs']} epochs" if results.get("final_epochs") else ""
    )
    parallel = " (folds trained in parallel)" if results.get("parallel_folds") else ""
    return [
        "## Setup",
        "",
        *([f"- reproduces: {results['source']}"] if results.get("source") else []),
        f"- task: {results['task']}; protocol: {results['protocol']}{parallel}; "
        f"seed: {results['seed']}",
        f"- data: {results['data']['description']}",
        # a data file that differs from its registered checksum ("note: ..." or "warning: ...")
        *(f"- {note}" for note in results["data"].get("notes", [])),
        "- sizes: " + ", ".join(f"{k} {v}" for k, v in results["data"]["sizes"].items()),
        f"- loss: {results['loss'] or 'defined by the task'}; optimizer: {results['optimizer']}; "
        f"epochs: {results['epochs']}; batch size: {results['batch_size']}{final}",
        f"- device: {results['device']}; duration: {results['duration_s']:.1f} s",
        "",
    ]


def verdict_sentence(verdict: dict[str, Any], markdown: bool = False) -> str:
    """The model against its strongest baseline, with the test behind "beats"."""
    model = f"The model ({verdict['metric']} {_fmt(verdict['model'])})"
    baseline = f"{verdict['baseline']} baseline at {_fmt(verdict['baseline_value'])}"
    p_value = verdict.get("p_value")
    if p_value is None:
        test = "no test was possible on these rows"
    else:
        shown = "p < 1e-16" if p_value < 1e-16 else f"p = {p_value:.2g}"
        test = f"one-sided {verdict['test']} test, {shown}"
    if verdict["beats"]:
        strongest = f"{verdict['baseline']} at {_fmt(verdict['baseline_value'])}"
        return f"{model} beats the strongest baseline ({strongest}): {test}."
    text = f"{model} is no better than the {baseline}: {test}"
    return f"**{text}; it has no statistical power yet.**" if markdown else text


def _baselines(results: dict[str, Any]) -> list[str]:
    baselines = results.get("baselines") or []
    if not baselines:
        return []
    keys = list(dict.fromkeys(k for b in baselines for k in b if k != "name"))
    lines = [
        "### Baselines (models that ignore the inputs)",
        "",
        _table(baselines, ["name", *keys]),
    ]
    verdict = results.get("baseline_verdict")
    if verdict:
        lines += ["", verdict_sentence(verdict, markdown=True)]
    return [*lines, ""]


def _cross_validation(results: dict[str, Any]) -> list[str]:
    cv = results.get("cross_validation")
    if not cv:
        return []
    folds = results.get("folds") or []
    keys = list(cv["metrics"])
    summary = [{"metric": k, "mean": v["mean"], "std": v["std"]} for k, v in cv["metrics"].items()]
    lines = [
        "## Cross-validation (validation parts)",
        "",
        _table(summary, ["metric", "mean", "std"]),
    ]
    lines += ["", _table(folds, ["fold", "epochs_run", *keys]), ""]
    lines += _baselines(cv)
    if cv.get("best_epoch"):
        lines += [f"Best epoch by the smoothed fold-averaged {cv['monitor']}: {cv['best_epoch']} "
                  f"({_fmt(cv['best_smoothed_value'])}); see cv_curves.png.", ""]  # fmt: skip
    return lines


def _metric_meanings(results: dict[str, Any]) -> list[str]:
    meanings = results.get("metric_meanings") or {}
    if not meanings:
        return []
    lines = ["### What the metrics are", ""]
    return [*lines, *(f"- {name}: {text}" for name, text in meanings.items()), ""]


def _leaks(results: dict[str, Any]) -> list[str]:
    duplicates = (results.get("leaks") or {}).get("duplicate_rows")
    if duplicates is None:
        return []
    counts = ", ".join(f"{k.replace('_', '/')} {v}" for k, v in duplicates.items())
    lines = ["## Leak checks", "", "- preprocessing fitted on each training part only",
             f"- exact duplicate rows across splits: {counts}"]  # fmt: skip
    reads = results.get("test_split_reads")
    lines.append(f"- test split read {reads} time(s), after all training")
    lines += [f"- warning: {w}" for w in results.get("warnings") or []]
    return [*lines, ""]


def render_report(
    results: dict[str, Any], history: list[dict[str, Any]], model_summary: str, files: list[str]
) -> str:
    status = results["status"]
    lines = [f"# {results['name']}", ""]
    if status != "completed":
        lines += [f"> **Run {status}**: {results.get('stop_reason') or 'see status.json'}", ""]
    if results.get("description"):
        lines += [results["description"], ""]
    lines += _setup(results)
    if model_summary:
        lines += ["## Model", "", model_summary, ""]
    scored = results.get("evaluation")
    if scored:
        lines += [f"## Final metrics ({scored['split']} split, evaluated once)", ""]
        lines += [_table([scored["metrics"]], list(scored["metrics"])), ""]
        lines += _baselines(results)
    lines += _cross_validation(results)
    lines += _metric_meanings(results)
    if results.get("validation") and not results.get("cross_validation"):
        lines += [
            "## Validation",
            "",
            _table([results["validation"]], list(results["validation"])),
            "",
        ]
    lines += _leaks(results)
    if history:
        keys = list(dict.fromkeys(k for row in history for k in row))
        if all(r.get("phase") == "fit" for r in history):
            keys.remove("phase")
        lines += ["## Per-epoch history", "", _table(history, keys), ""]
    lines += ["## Files", ""] + [f"- [{name}]({name})" for name in files] + [""]
    return "\n".join(lines)
