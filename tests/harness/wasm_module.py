"""Reads what the tests check about a built module's shape: its sections and the
size of each function body (the WebAssembly binary format, section 10).

Envoy's V8 compiles every function of the module with TurboFan when it loads it,
and TurboFan's memory and time grow faster than a function's size, so the size of
the largest bodies is part of what each Envoy pays (docs/performance.md, "Footprint").
"""

from dataclasses import dataclass
from pathlib import Path

MAGIC = b"\0asm\x01\0\0\0"
CUSTOM_SECTION = 0
IMPORT_SECTION = 2
CODE_SECTION = 10


class NotAModule(ValueError):
    pass


def _uleb128(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 35:
            raise NotAModule(f"truncated or overlong LEB128 at byte {at}")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


@dataclass(frozen=True)
class ModuleShape:
    size: int
    # Section id -> total bytes of its contents (custom sections, id 0, summed).
    sections: dict[int, int]
    # The byte size of each function body, in the module's order.
    bodies: list[int]
    # Defined-function index -> its name, from the "name" section if the build kept it.
    names: dict[int, str]
    imported_functions: int

    def largest_bodies(self, count: int) -> list[tuple[int, int]]:
        """(defined-function index, body bytes) of the `count` largest bodies."""
        return sorted(enumerate(self.bodies), key=lambda item: -item[1])[:count]


def read(path: Path) -> ModuleShape:
    return read_bytes(path.read_bytes(), str(path))


def read_bytes(data: bytes, name: str = "the module") -> ModuleShape:
    if not data.startswith(MAGIC):
        raise NotAModule(f"{name} is not a WebAssembly 1.0 module")
    sections: dict[int, int] = {}
    bodies: list[int] = []
    names: dict[int, str] = {}
    imported = 0
    at = len(MAGIC)
    while at < len(data):
        section = data[at]
        length, at = _uleb128(data, at + 1)
        end = at + length
        if end > len(data):
            raise NotAModule(f"section {section} runs past the end of {name}")
        sections[section] = sections.get(section, 0) + length
        if section == IMPORT_SECTION:
            imported = _imported_functions(data, at)
        elif section == CUSTOM_SECTION:
            name_length, inner = _uleb128(data, at)
            if data[inner : inner + name_length] == b"name":
                names = _function_names(data, inner + name_length, end)
        elif section == CODE_SECTION:
            count, inner = _uleb128(data, at)
            for _ in range(count):
                body, inner = _uleb128(data, inner)
                bodies.append(body)
                inner += body
            if inner != end:
                raise NotAModule(f"the code section of {name} does not add up")
        at = end
    defined = {index - imported: name for index, name in names.items() if index >= imported}
    return ModuleShape(len(data), sections, bodies, defined, imported)


def _imported_functions(data: bytes, at: int) -> int:
    count, at = _uleb128(data, at)
    functions = 0
    for _ in range(count):
        for _ in range(2):  # module and field names
            length, at = _uleb128(data, at)
            at += length
        kind = data[at]
        at += 1
        if kind == 0:  # function: a type index
            _, at = _uleb128(data, at)
            functions += 1
        elif kind == 1:  # table: element type, limits
            at += 1
            at = _limits(data, at)
        elif kind == 2:  # memory: limits
            at = _limits(data, at)
        elif kind == 3:  # global: value type, mutability
            at += 2
        else:
            raise NotAModule(f"import kind {kind} is not read")
    return functions


def _limits(data: bytes, at: int) -> int:
    flags, at = _uleb128(data, at)
    _, at = _uleb128(data, at)
    if flags & 1:
        _, at = _uleb128(data, at)
    return at


def _function_names(data: bytes, at: int, end: int) -> dict[int, str]:
    names: dict[int, str] = {}
    while at < end:
        subsection = data[at]
        length, at = _uleb128(data, at + 1)
        if subsection == 1:  # function names: (index, name)*
            count, inner = _uleb128(data, at)
            for _ in range(count):
                index, inner = _uleb128(data, inner)
                name_length, inner = _uleb128(data, inner)
                names[index] = data[inner : inner + name_length].decode("utf-8", "replace")
                inner += name_length
        at += length
    return names


def demangle(name: str) -> str:
    """A Rust legacy symbol (`_ZN...17h<hash>E`) as `path::to::item`; others as they are."""
    if not (name.startswith("_ZN") and name.endswith("E")):
        return name
    parts: list[str] = []
    inner, at = name[3:-1], 0
    while at < len(inner):
        digits = at
        while at < len(inner) and inner[at].isdigit():
            at += 1
        if digits == at:
            return name
        length = int(inner[digits:at])
        part = inner[at : at + length]
        # A part that starts with `$` is written with a `_` before it.
        parts.append(part[1:] if part.startswith("_$") else part)
        at += length
    if parts and parts[-1].startswith("h") and len(parts[-1]) == 17:
        parts.pop()
    text = "::".join(parts)
    for escaped, plain in (("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$RF$", "&"), ("$C$", ","), ("..", "::"), ("$u7b$", "{"), ("$u7d$", "}")):
        text = text.replace(escaped, plain)
    return text
