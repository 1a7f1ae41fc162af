#!/usr/bin/env python3
"""Inclusive CPU shares under chosen functions, from a perf.data recorded
with DWARF call graphs (`bench/profile.sh perf-dwarf ...`).

    bench/perf-tree.py PERF_DATA FUNCTION...

For each FUNCTION (a substring of a symbol), prints the share of all samples
whose stack contains it, then how that share splits over the functions it
calls directly ("(self)": samples in the function itself, including what
the compiler inlined into it). Shares are of all the server's samples.
"""

import collections
import re
import subprocess
import sys


def samples(perf_data):
    out = subprocess.run(
        ["perf", "script", "-i", perf_data, "-F", "comm,ip,sym"],
        check=True,
        capture_output=True,
        text=True,
        errors="replace",
    ).stdout
    stack = None
    for line in out.splitlines():
        if not line.strip():
            if stack is not None:
                yield stack
            stack = None
        elif not line[0].isspace():
            stack = []  # a new sample: "comm"
        elif stack is not None:
            parts = line.strip().split(" ", 1)
            sym = parts[1] if len(parts) > 1 else "?"
            stack.append(re.sub(r"\+0x[0-9a-f]+$", "", sym).replace(" (inlined)", ""))
    if stack:
        yield stack


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    stacks = list(samples(sys.argv[1]))
    total = len(stacks)
    print(f"{total} samples in {sys.argv[1]}")
    for root in sys.argv[2:]:
        children = collections.Counter()
        inclusive = 0
        for frames in stacks:  # leaf first
            hits = [i for i, f in enumerate(frames) if root in f]
            if not hits:
                continue
            outer = max(hits)
            inclusive += 1
            children[frames[outer - 1] if outer > 0 else "(self)"] += 1
        print(f"\n== {root}: {100 * inclusive / max(total, 1):.1f}% of all samples")
        for child, n in children.most_common(12):
            name = child if len(child) < 110 else child[:107] + "..."
            print(f"   {100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
