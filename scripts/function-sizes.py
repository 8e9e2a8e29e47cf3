#!/usr/bin/env python3
"""The largest function bodies of a module built with its names kept (`make
function-sizes` builds one): the first place to look when the module's compile
cost at each Envoy start grows (docs/performance.md, "Footprint").

    python3 scripts/function-sizes.py MODULE.wasm [COUNT]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import wasm_module  # noqa: E402


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    shape = wasm_module.read(Path(argv[0]))
    count = int(argv[1]) if len(argv) > 1 else 25
    print(f"{len(shape.bodies)} functions, {sum(shape.bodies)} bytes of code; the largest bodies:")
    for index, size in shape.largest_bodies(count):
        print(f"{size:8d}  {wasm_module.demangle(shape.names.get(index, f'function {index}'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
