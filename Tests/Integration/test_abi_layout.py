"""include/redirector.h is the one declaration of the C ABI: the Python binding (testkit/abi.py)
and the Lua binding's cdef (lua/resty/redirector.lua) must agree with it.

The header is compiled by gcc into a program that prints, for every field of every struct it
declares, the field's offset, size and kind (signed or unsigned integer, pointer, array) and the
struct's size, and the value of every RDR_* constant (#define or enum member). The same facts
are read from the ctypes structures and module constants, and from the cdef as LuaJIT evaluates
it (ffi.offsetof, ffi.sizeof, and a probe that fills each field to measure its size and sign).
"""

from __future__ import annotations

import ctypes
import re

import pytest

from testkit import abi
from testkit.paths import HEADER, LUA_DIR, LUAJIT
from testkit.processes import run

PYTHON_STRUCTS = {"rdr_header": abi.Header, "rdr_request": abi.Request, "rdr_decision": abi.Decision,
                  "rdr_presence": abi.Presence}


def header_declarations() -> tuple[dict[str, list[tuple[str, str]]], list[str], list[str]]:
    """From the header's text: each struct's fields as (name, kind of declaration), the RDR_*
    constant names, and the function names. (Values, sizes and offsets come from the compiler.)"""
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    structs = {}
    for body, name in re.findall(r"typedef\s+struct\s*\{(.*?)\}\s*(\w+)\s*;", text, flags=re.S):
        fields = []
        for declaration in filter(str.strip, body.split(";")):
            field = re.search(r"(\w+)\s*(\[\s*\d+\s*\])?\s*$", declaration).group(1)
            kind = "array" if "[" in declaration else "pointer" if "*" in declaration else "integer"
            fields.append((field, kind))
        structs[name] = fields
    constants = re.findall(r"#define\s+(RDR_\w+)\s", text)
    for body in re.findall(r"typedef\s+enum\s*\{(.*?)\}", text, flags=re.S):
        constants += re.findall(r"(RDR_\w+)\s*=", body)
    functions = re.findall(r"\b(rdr_\w+)\s*\(", text)
    return structs, constants, functions


def parse_facts(output: str) -> dict[tuple, tuple]:
    """`field STRUCT NAME OFFSET SIZE KIND`, `size STRUCT N` and `const NAME VALUE` lines."""
    facts = {}
    for line in output.splitlines():
        words = line.split()
        if words[0] == "field":
            facts[("field", words[1], words[2])] = (int(words[3]), int(words[4]), words[5])
        elif words[0] == "size":
            facts[("size", words[1])] = (int(words[2]),)
        elif words[0] == "const":
            facts[("const", words[1])] = (int(words[2]),) if words[2] != "missing" else ("missing",)
    return facts


@pytest.fixture(scope="module")
def header():
    """The facts the C compiler derives from the header, and the declarations they are about."""
    structs, constants, functions = header_declarations()
    assert set(structs) == set(PYTHON_STRUCTS) and len(constants) >= 18, (structs, constants)
    return structs, constants, functions


@pytest.fixture(scope="module")
def compiled(header, tmp_path_factory):
    structs, constants, _ = header
    lines = ['#include <stddef.h>', '#include <stdio.h>', '#include "redirector.h"', "int main(void) {"]
    for struct, fields in structs.items():
        lines.append(f'    printf("size {struct} %zu\\n", sizeof({struct}));')
        for field, kind in fields:
            member = f"((({struct} *)0)->{field})"
            if kind == "integer":
                kind_expr = f'((__typeof__{member})0 - 1 < (__typeof__{member})0 ? "signed" : "unsigned")'
            else:
                kind_expr = f'"{kind}"'
            lines.append(f'    printf("field {struct} {field} %zu %zu %s\\n", offsetof({struct}, {field}), '
                         f'sizeof {member}, {kind_expr});')
    lines += [f'    printf("const {name} %lld\\n", (long long)({name}));' for name in constants]
    lines += ["    return 0;", "}"]
    work = tmp_path_factory.mktemp("abi-layout")
    (work / "layout.c").write_text("\n".join(lines) + "\n")
    run(["gcc", "-std=gnu11", "-Wall", "-Werror", "-I", HEADER.parent, work / "layout.c", "-o", work / "layout"])
    return parse_facts(run([work / "layout"]).stdout)


def python_facts(structs, constants) -> str:
    out = []
    for struct, fields in structs.items():
        cls = PYTHON_STRUCTS[struct]
        out.append(f"size {struct} {ctypes.sizeof(cls)}")
        types = dict(cls._fields_)
        for field, _ in fields:
            if field not in types:
                continue
            t = types[field]
            if issubclass(t, ctypes.Array):
                kind = "array"
            elif t in (ctypes.c_char_p, ctypes.c_void_p) or issubclass(t, ctypes._Pointer):
                kind = "pointer"
            else:
                kind = "signed" if t(-1).value < 0 else "unsigned"
            descriptor = getattr(cls, field)
            out.append(f"field {struct} {field} {descriptor.offset} {descriptor.size} {kind}")
    out += [f"const {name} {getattr(abi, name, 'missing')}" for name in constants]
    return "\n".join(out)


LUA_PROBE = r"""
package.path = arg[1] .. "/?.lua;" .. package.path
require "resty.redirector"
local ffi = require "ffi"
-- arg[2]: "struct field field ...;struct field ..." ; arg[3]: constant names, space-separated
local function probe(ct, field)
  local offset = ffi.offsetof(ct, field)
  if offset == nil then return nil end
  local x = ffi.new(ct)
  local kind
  if type(x[field]) == "number" or tostring(ffi.typeof(x[field])):match("^ctype<u?int64_t>$") then
    x[field] = -1LL  -- all bits set, whatever the width and sign
    kind = x[field] < 0 and "signed" or "unsigned"
  elseif tostring(ffi.typeof(x[field])):find("%[") then
    kind = "array"
    ffi.fill(x[field], ffi.sizeof(x[field]), 255)
  else
    kind = "pointer"
    x[field] = ffi.cast("void *", -1)
  end
  local bytes, size = ffi.cast("uint8_t *", x), 0
  for i = 0, ffi.sizeof(ct) - 1 do
    if bytes[i] == 255 then size = size + 1 end
  end
  return offset, size, kind
end
for spec in arg[2]:gmatch("[^;]+") do
  local words = {}
  for w in spec:gmatch("%S+") do words[#words + 1] = w end
  local ct = words[1]
  print("size " .. ct .. " " .. ffi.sizeof(ct))
  for i = 2, #words do
    local offset, size, kind = probe(ct, words[i])
    if offset then print(("field %s %s %d %d %s"):format(ct, words[i], offset, size, kind)) end
  end
end
for name in arg[3]:gmatch("%S+") do
  local ok, value = pcall(function() return ffi.C[name] end)
  print("const " .. name .. " " .. (ok and tostring(tonumber(value)) or "missing"))
end
"""


def lua_facts(structs, constants, tmp_path) -> str:
    script = tmp_path / "probe.lua"
    script.write_text(LUA_PROBE)
    spec = ";".join(" ".join([struct] + [field for field, _ in fields]) for struct, fields in structs.items())
    return run([LUAJIT, script, LUA_DIR, spec, " ".join(constants)]).stdout


def disagreements(who: str, facts: dict, reference: dict) -> list[str]:
    out = []
    for key, want in reference.items():
        got = facts.get(key)
        if got != want:
            out.append(f"{who} {' '.join(key)}: {got if got is not None else 'not declared'}, header {want}")
    out += [f"{who} {' '.join(key)}: {value}, not in the header" for key, value in facts.items() if key not in reference]
    return out


def test_python_binding_agrees_with_the_header(header, compiled):
    structs, constants, functions = header
    problems = disagreements("Python", parse_facts(python_facts(structs, constants)), compiled)
    for struct, fields in structs.items():
        declared = [name for name, _ in PYTHON_STRUCTS[struct]._fields_]
        if declared != [name for name, _ in fields]:
            problems.append(f"Python {struct} fields {declared}, header {[name for name, _ in fields]}")
    if sorted(abi.PROTOTYPES) != sorted(functions):
        problems.append(f"Python prototypes {sorted(abi.PROTOTYPES)}, header functions {sorted(functions)}")
    assert not problems, "\n".join(problems)


@pytest.mark.skipif(LUAJIT is None, reason="luajit is not installed")
def test_lua_cdef_agrees_with_the_header(header, compiled, tmp_path):
    structs, constants, _ = header
    problems = disagreements("Lua", parse_facts(lua_facts(structs, constants, tmp_path)), compiled)
    assert not problems, "\n".join(problems)
