"""report.md: a readable summary of one run, built as a pure function of its results."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _table(rows: list[dict[str, Any]], keys: list[str]) -> str:
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_fmt(row.get(k, "")) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def render_report(
    results: dict[str, Any], history: list[dict[str, Any]], model_summary: str, files: list[str]
) -> str:
    status = results["status"]
    title = f"# {results['name']}"
    lines = [title, ""]
    if status != "completed":
        lines += [f"> **Run {status}**: {results.get('stop_reason') or 'see status.json'}", ""]
    if results.get("description"):
        lines += [results["description"], ""]
    lines += [
        "## Setup",
        "",
        f"- task: {results['task']}; protocol: {results['protocol']}; seed: {results['seed']}",
        f"- data: {results['data']['description']}",
        "- sizes: " + ", ".join(f"{k} {v}" for k, v in results["data"]["sizes"].items()),
        f"- loss: {results['loss']}; optimizer: {results['optimizer']}; "
        f"epochs: {results['epochs']}; batch size: {results['batch_size']}",
        f"- device: {results['device']}; duration: {results['duration_s']:.1f} s",
        "",
        "## Model",
        "",
        model_summary,
        "",
    ]
    scored = results.get("evaluation")
    if scored:
        lines += [f"## Final metrics ({scored['split']} split, evaluated once)", ""]
        lines += [_table([scored["metrics"]], list(scored["metrics"]))]
        base = results.get("baseline") or {}
        if base:
            lines += ["", f"Baseline ({base['name']}): " + ", ".join(
                f"{k} {_fmt(v)}" for k, v in base.items() if k != "name"
            )]  # fmt: skip
            verdict = results.get("beats_baseline")
            if verdict is not None:
                lines += ["", "The model beats the baseline." if verdict else
                          "**The model does not beat the baseline.**"]  # fmt: skip
        lines.append("")
    if results.get("validation"):
        lines += [
            "## Validation",
            "",
            _table([results["validation"]], list(results["validation"])),
            "",
        ]
    if history:
        keys = (
            [k for k in history[0] if k != "phase"]
            if all(r.get("phase") == "fit" for r in history)
            else list(history[0])
        )
        lines += ["## Per-epoch history", "", _table(history, keys), ""]
    lines += ["## Files", ""] + [f"- [{name}]({name})" for name in files] + [""]
    return "\n".join(lines)
