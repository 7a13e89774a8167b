"""Write engine/confusables.tsv: the Unicode TR39 confusable prototype of every code point that
has one, as ICU computes it, for engine/names.py (which needs no ICU at run time).

    pip install --target /tmp/icu pyicu-wheels==2.15.2      # ICU 77.1, Unicode 16.0, from PyPI
    PYTHONPATH=/tmp/icu python bench/make_confusables.py

For each code point c that NFD leaves alone (a decomposable one is decomposed before the table
is used), ICU's SpoofChecker.getSkeleton(c) is TR39's skeleton of c: NFD of its prototype in
confusables.txt. A row is written where that differs from c. Surrogates and private use are
left out. The data are Unicode's (confusables.txt, compiled into ICU's data): licence in
engine/confusables-LICENSE.txt.
"""
from __future__ import annotations

import sys
import unicodedata
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "engine" / "confusables.tsv"


def main() -> int:
    import icu  # pyicu-wheels: only this script needs it

    checker = icu.SpoofChecker()
    rows = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF or 0xE000 <= cp <= 0xF8FF or cp >= 0xF0000:
            continue
        c = chr(cp)
        if unicodedata.normalize("NFD", c) != c:
            continue
        skeleton = checker.getSkeleton(0, c)
        if skeleton != c:
            rows.append(f"{cp:04X}\t{' '.join(f'{ord(x):04X}' for x in skeleton)}\n")
    header = (f"# TR39 confusable prototypes (code point, then its skeleton's code points), from ICU "
              f"{icu.ICU_VERSION} (Unicode {icu.UNICODE_VERSION}) via pyicu-wheels; written by "
              f"bench/make_confusables.py. Data: Unicode, Inc.; licence in confusables-LICENSE.txt.\n")
    OUT.write_text(header + "".join(rows), encoding="utf-8")
    print(f"wrote {len(rows)} rows to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
