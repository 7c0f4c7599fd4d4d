"""How results show themselves: short reprs, HTML tables for Jupyter and rich tables that print as text.

Results hold long per-step lists (a 5000-epoch loss curve, a 100-step lr sweep); their reprs summarize those
as "[5000 values]" so that printing a result, or a list of them, stays readable.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["TextTable", "brief", "brief_repr", "html_table", "results_html", "results_table"]

# Lists and dicts up to this many items are shown whole; longer ones by their length only.
_SHOWN_ITEMS = 4


def brief(value: Any) -> str:
    """A short text for a field: floats to 4 significant digits, long lists and dicts as their length."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else repr(value)
    if isinstance(value, list | tuple):
        if len(value) > _SHOWN_ITEMS:
            return f"[{len(value)} values]"
        inner = ", ".join(brief(item) for item in value)
        return f"({inner}{',' if len(value) == 1 else ''})" if isinstance(value, tuple) else f"[{inner}]"
    if isinstance(value, Mapping):
        if len(value) > _SHOWN_ITEMS:
            return f"{{{len(value)} entries}}"
        return "{" + ", ".join(f"{brief(k)}: {brief(v)}" for k, v in value.items()) + "}"
    return repr(value)


def brief_repr(name: str, fields: Mapping[str, Any]) -> str:
    """`Name(key=value, ...)` with every value through `brief`; None values are left out."""
    return f"{name}(" + ", ".join(f"{key}={brief(value)}" for key, value in fields.items() if value is not None) + ")"


def html_table(
    header: Sequence[str] | None,
    rows: Iterable[Sequence[str]],
    *,
    title: str = "",
    caption: str = "",
    row_styles: Sequence[str] | None = None,
) -> str:
    """An HTML table of text cells (escaped here), with an optional bold title above and a caption below."""
    head = "<thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in header) + "</tr></thead>" if header else ""
    styles = list(row_styles or [])
    body = "".join(
        (f"<tr style='{styles[i]}'>" if i < len(styles) and styles[i] else "<tr>")
        + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells)
        + "</tr>"
        for i, cells in enumerate(rows)
    )
    top = f"<b>{html.escape(title)}</b>" if title else ""
    bottom = f"<p>{html.escape(caption)}</p>" if caption else ""
    return f"<div>{top}<table>{head}<tbody>{body}</tbody></table>{bottom}</div>"


def _results(
    final: Mapping[str, float], best: Mapping[str, float], test: Mapping[str, float] | None
) -> tuple[list[str], list[list[str]]]:
    """A fit's result table: each final value (the lr aside) beside the best epoch's, then the test values."""
    header = ["", "final", f"best (epoch {int(best.get('epoch', 0))})"]
    rows = [
        [key, f"{value:.6g}", f"{best[key]:.6g}" if key in best else ""] for key, value in final.items() if key != "lr"
    ]
    rows += [[f"test_{key}", f"{value:.6g}", ""] for key, value in (test or {}).items()]
    return header, rows


def results_table(
    title: str,
    final: Mapping[str, float],
    best: Mapping[str, float],
    test: Mapping[str, float] | None = None,
    caption: str = "",
) -> Any:
    """A fit's result table for rich (the terminal): FitResult's and the CLI's summary."""
    from rich.table import Table

    header, rows = _results(final, best, test)
    table = Table(title=title, caption=caption or None)
    table.add_column(header[0], style="bold")
    for column in header[1:]:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*row)
    return table


def results_html(title: str, final: Mapping[str, float], best: Mapping[str, float], caption: str = "") -> str:
    """The same table in HTML, for Jupyter."""
    header, rows = _results(final, best, None)
    return html_table(header, rows, title=title, caption=caption)


class TextTable:
    """A rich renderable that prints as its text table: `print(result.table())` shows the table, and a
    rich Console (the CLI's) still renders it with its colours."""

    def __init__(self, renderable: Any) -> None:
        self.renderable = renderable

    def __rich__(self) -> Any:
        return self.renderable

    def __str__(self) -> str:
        from rich.console import Console

        # Wide enough that no column wraps; the table is only as wide as its content.
        console = Console(file=io.StringIO(), width=1000, color_system=None, force_terminal=False, force_jupyter=False)
        console.print(self.renderable)
        text = console.file.getvalue()  # type: ignore[attr-defined]
        return "\n".join(line.rstrip() for line in text.splitlines())

    def __repr__(self) -> str:
        return str(self)
