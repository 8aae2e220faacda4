"""Reading a dataflow file, and ``tether dataflow``: check a file, print or write its JSON Schema.

The shell around ``services.mapper.domain.dataflow``: it reads the file (JSON), validates it and
turns every problem into one ``ConfigurationError`` whose lines read ``<file>: <path>: <message>``
(``flows[1].properties[0].property: unknown property 'emial'``), so an operator sees where to
look. A file is validated against the systems the mapper registers
(``services.mapper.wiring.REGISTERED``). The mapper loads the file once at start-up
(``MapperSettings.dataflow``) and exits with code 2 on a bad one; importing ``services.mapper``
installs the shipped default (``install_shipped_dataflow``), so that the domain's registries are
never empty.

``tether dataflow check [FILE]`` validates a file (default: the shipped one) and prints a summary;
``tether dataflow schema [--write PATH]`` prints (or writes) the JSON Schema that
``dataflows/dataflow.schema.json`` must equal (a test checks it).

Imports: the standard library, pydantic, ``services.core.errors``, the mapper's domain and
``wiring`` only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from services.core.errors import ConfigurationError
from services.mapper.domain.dataflow import CompiledDataflow, Dataflow, json_schema
from services.mapper.wiring import REGISTERED, install

DATAFLOWS_DIR = Path(__file__).resolve().parent / "dataflows"
"""The shipped dataflow files (``services/mapper/dataflows`` links to the top-level
``dataflows/``; the wheel carries them as package data)."""
DEFAULT_DATAFLOW_FILE = DATAFLOWS_DIR / "default.json"
SCHEMA_FILE = DATAFLOWS_DIR / "dataflow.schema.json"


def _path_of(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def describe(error: ValidationError) -> list[str]:
    """One ``path: message`` line per problem (model-level problems carry their own path)."""
    lines: list[str] = []
    for item in error.errors(include_url=False, include_input=False):
        message = str(item["msg"]).removeprefix("Value error, ")
        path = _path_of(item["loc"])
        if path:
            lines.append(f"{path}: {message}")
        else:
            lines.extend(part for part in message.splitlines() if part)
    return lines


def parse_dataflow(text: str | bytes, source: str) -> Dataflow:
    """Validate a dataflow file's text; ``ConfigurationError`` naming ``source`` and each path."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"{source}: not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{source}: a dataflow file holds one JSON object")
    try:
        return Dataflow.from_mapping(data, REGISTERED)
    except ValidationError as exc:
        lines = "\n".join(f"{source}: {line}" for line in describe(exc))
        raise ConfigurationError(f"invalid dataflow file\n{lines}") from None


def load_dataflow(path: Path) -> Dataflow:
    """Read and validate the dataflow file at ``path``."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read the dataflow file: {exc.strerror}") from None
    return parse_dataflow(text, str(path))


def load_compiled(path: Path) -> CompiledDataflow:
    """Read, validate and compile the dataflow file at ``path``."""
    return load_dataflow(path).compile(REGISTERED)


def install_shipped_dataflow() -> None:
    """Install the shipped default dataflow: the registries every process starts with (the
    mapper's ``main`` replaces them with the configured file's)."""
    install(load_compiled(DEFAULT_DATAFLOW_FILE))


def schema_text() -> str:
    """The JSON Schema as committed in ``dataflows/dataflow.schema.json``."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


USAGE = (
    "usage: tether dataflow check [FILE]          validate a dataflow file (default: shipped)\n"
    "       tether dataflow schema [--write PATH]  print (or write) the file's JSON Schema\n"
)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(argv or [])
    if not args or args[0] in ("-h", "--help"):
        (sys.stdout if args else sys.stderr).write(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "schema":
        if not rest:
            sys.stdout.write(schema_text())
            return 0
        if rest[0] == "--write" and len(rest) <= 2:
            target = Path(rest[1]) if len(rest) == 2 else SCHEMA_FILE
            target.write_text(schema_text())
            sys.stdout.write(f"wrote {target}\n")
            return 0
    if command == "check" and len(rest) <= 1:
        path = Path(rest[0]) if rest else DEFAULT_DATAFLOW_FILE
        try:
            compiled = load_compiled(path)
        except ConfigurationError as exc:
            sys.stderr.write(f"{exc}\n")
            return 1
        flows = ", ".join(
            f"{spec.label}={name}({len(spec.properties)} properties)"
            for name, spec in compiled.flows.items()
        )
        sys.stdout.write(f"{path}: valid; flows: {flows}\n")
        return 0
    sys.stderr.write(USAGE)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
