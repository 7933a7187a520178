"""Keras-style model summary: a rich table for the terminal, a markdown table for report.md.

Both end with the same one totals line (:func:`totals_line`), printed once: the table itself
holds only the layers, so no total appears twice.
"""

from __future__ import annotations

from rich.table import Table

from dlrun.models.build import BuiltModel


def format_shape(shape: tuple[int, ...]) -> str:
    return "(None, " + ", ".join(str(d) for d in shape) + ")"


def totals_line(model: BuiltModel) -> str:
    """``Total params: 8,970 (trainable 8,970)``: what the model weighs."""
    return f"Total params: {model.total_params:,} (trainable {model.trainable_params:,})"


def summary_table(model: BuiltModel, title: str = "Model") -> Table:
    """The layers with their output shapes and sizes; the input shape is the caption."""
    table = Table(title=title, caption=f"input {format_shape(model.input_shape)}")
    table.add_column("Layer (type)")
    table.add_column("Output Shape")
    table.add_column("Param #", justify="right")
    for row in model.rows:
        table.add_row(
            f"{row.name} ({row.kind})", format_shape(row.output_shape), f"{row.params:,}"
        )
    return table


def summary_text(model: BuiltModel) -> str:
    """Markdown summary for report.md."""
    lines = [
        f"Input: {format_shape(model.input_shape)}",
        "",
        "| Layer (type) | Output Shape | Param # |",
        "|---|---|---:|",
    ]
    for row in model.rows:
        lines.append(
            f"| {row.name} ({row.kind}) | {format_shape(row.output_shape)} | {row.params:,} |"
        )
    lines.append(f"\n{totals_line(model)}")
    return "\n".join(lines)
