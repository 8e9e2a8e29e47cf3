"""The release module's shape: within its size budget, and no function body large
enough to make Envoy's V8 pay for it at every start.

Envoy's V8 compiles the whole module with TurboFan when it loads it (Liftoff is
off in proxy-wasm-cpp-host). TurboFan's working memory for one function grows
faster than the function, and tcmalloc keeps what the compilation freed: in
docs/performance.md ("Footprint"), the same 400 KB of code costs each Envoy ~4.5
MiB as 500 small functions and ~23 MiB as 25 large ones. Inlining single-caller
functions (LLVM's and Binaryen's) is what builds large bodies, so a change can grow
one without anyone noticing; this test notices.
"""

import pytest

from harness import wasm_module

# docs/development.md, "Module size".
MODULE_BUDGET_BYTES = 512_000
# The largest body after the configuration's steps were split was 4.9 KB (the
# C allocator's `malloc`); the configuration parser had reached 14.7 KB.
LARGEST_BODY_BYTES = 6 * 1024


@pytest.fixture(scope="module")
def shape(wasm_path):
    return wasm_module.read(wasm_path)


def test_the_module_is_within_its_budget(shape):
    assert shape.size <= MODULE_BUDGET_BYTES, f"{shape.size} bytes: over the {MODULE_BUDGET_BYTES}-byte budget"


def test_no_function_body_is_large(shape):
    largest = shape.largest_bodies(5)
    too_large = [(index, size) for index, size in largest if size > LARGEST_BODY_BYTES]
    assert not too_large, (
        f"function bodies over {LARGEST_BODY_BYTES} bytes (defined-function index, bytes): {too_large}. "
        "`make function-sizes` names them; split them into steps marked #[inline(never)], as "
        "`Config::from_raw` is (docs/development.md, \"Function sizes\")"
    )


def test_the_reader_reads_a_module_by_hand():
    # (module (func) (func (drop (i32.const 7)))): types, functions, code.
    module = (
        wasm_module.MAGIC
        + bytes([1, 4, 1, 0x60, 0, 0])  # type section: () -> ()
        + bytes([3, 3, 2, 0, 0])  # function section: two functions of type 0
        + bytes([10, 10, 2, 2, 0, 0x0B, 5, 0, 0x41, 7, 0x1A, 0x0B])  # code: bodies of 2 and 5 bytes
    )
    shape = wasm_module.read_bytes(module)
    assert shape.bodies == [2, 5]
    assert shape.largest_bodies(1) == [(1, 5)]
    assert shape.sections == {1: 4, 3: 3, 10: 10}
    with pytest.raises(wasm_module.NotAModule):
        wasm_module.read_bytes(module[:-3])
    with pytest.raises(wasm_module.NotAModule):
        wasm_module.read_bytes(b"\0asm\x02\0\0\0")
