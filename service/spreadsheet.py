"""Cells a spreadsheet opens safely (OWASP, "CSV injection"): a text cell that Excel, LibreOffice
or Google Sheets would read as a formula (it starts with =, +, -, @, a tab or a carriage
return, or their full-width forms) gets a leading apostrophe, which those programs show as
text. A reviewer's note `=HYPERLINK(...)` is then shown, never run. Every text export goes
through here: the CSV exports and `queue --csv`."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")


def safe_cell(value: Any) -> Any:
    """`value` with a leading ' when it is text a spreadsheet would run; anything else as it is
    (numbers stay numbers: a negative one is no formula)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def safe_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of `df` whose text cells and column names are safe_cell'd."""
    from pandas.api.types import is_numeric_dtype

    out = df.rename(columns=safe_cell)
    for column in out.columns:
        if not is_numeric_dtype(out[column]):   # text, whatever pandas calls its type (object, str)
            out[column] = out[column].map(safe_cell)
    return out
