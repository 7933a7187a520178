"""Keras-style model summary as a rich table."""

from __future__ import annotations

from rich.table import Table

from dlrun.models.build import BuiltModel


def format_shape(shape: tuple[int, ...]) -> str:
    return "(None, " + ", ".join(str(d) for d in shape) + ")"


def summary_table(model: BuiltModel, title: str = "Model") -> Table:
    table = Table(title=title, show_footer=True)
    table.add_column("Layer (type)", footer="Total params")
    table.add_column("Output Shape", footer="Trainable params")
    table.add_column("Param #", justify="right")
    for row in model.rows:
        table.add_row(
            f"{row.name} ({row.kind})", format_shape(row.output_shape), f"{row.params:,}"
        )
    table.columns[2].footer = f"{model.total_params:,}\n{model.trainable_params:,}"
    table.columns[1].footer = f"input {format_shape(model.input_shape)}\nTrainable params"
    return table


def summary_text(model: BuiltModel) -> str:
    """Plain-text summary for report.md."""
    lines = ["| Layer (type) | Output Shape | Param # |", "|---|---|---:|"]
    for row in model.rows:
        lines.append(
            f"| {row.name} ({row.kind}) | {format_shape(row.output_shape)} | {row.params:,} |"
        )
    lines.append(f"\nTotal params: {model.total_params:,} (trainable {model.trainable_params:,})")
    return "\n".join(lines)
