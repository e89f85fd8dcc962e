"""Looking for canaries (unique made-up personal data) in bytes the service wrote: in clear, and
inside every base64 run those bytes hold, decoded, down to a few levels (a payload's `data` in a
history's JSON, itself stored as text in a database page).

A database is also searched as SQLite reads it, value by value (`find_in_database`): a value that
spans two pages of the file, or sits in the WAL, is then searched whole.

A hit names the canary, the file (or what was searched), the byte offset, and the chain of
base64 runs it was found in, with the bytes around it."""

import base64
import binascii
import re
import shutil
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

# A run of base64 (standard or URL-safe alphabet) long enough to hold a word of personal data.
BASE64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{16,}={0,2}")
# Decoded bytes are searched again for base64 runs inside them, this many levels deep.
MAX_DEPTH = 3
CONTEXT = 60


@dataclass(frozen=True)
class Hit:
    canary: str  # which canary: "order A name", ...
    where: str  # the file, the offset and the base64 runs it was found in
    around: bytes  # the bytes around it

    def __str__(self) -> str:
        return f"{self.canary} in {self.where}: {self.around!r}"


def decodings(run: bytes) -> list[tuple[int, bytes]]:
    """The run decoded from each of its first four offsets (a run cut out of binary data may
    start with a stray character or two): (offset, bytes) for each that decodes."""
    standard = run.rstrip(b"=").replace(b"-", b"+").replace(b"_", b"/")
    decoded = []
    for offset in range(4):
        part = standard[offset:]
        # Padded again, so the last bytes decode too (a canary may end the encoded value).
        part = part[: len(part) - 1] if len(part) % 4 == 1 else part
        part += b"=" * (-len(part) % 4)
        if len(part) < 16:
            break
        try:
            decoded.append((offset, base64.b64decode(part, validate=True)))
        except binascii.Error:
            continue
    return decoded


def find(data: bytes, canaries: Mapping[str, str], where: str, depth: int = 0) -> list[Hit]:
    """Every occurrence of every canary (case-insensitive) in the bytes and in the base64 they
    hold, decoded."""
    hits = []
    lowered = data.lower()
    for canary, value in canaries.items():
        needle = value.lower().encode()
        at = lowered.find(needle)
        while at != -1:
            around = data[max(0, at - CONTEXT) : at + len(needle) + CONTEXT]
            hits.append(Hit(canary, f"{where} at byte {at}", around))
            at = lowered.find(needle, at + 1)
    if depth < MAX_DEPTH:
        for run in BASE64_RUN.finditer(data):
            for offset, decoded in decodings(run.group()):
                inside = f"{where}, in base64 at byte {run.start() + offset}"
                hits += find(decoded, canaries, inside, depth + 1)
    return hits


def find_in_files(paths: list[Path], canaries: Mapping[str, str]) -> list[Hit]:
    hits = []
    for path in paths:
        hits += find(path.read_bytes(), canaries, str(path))
    return hits


def files_under(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*") if path.is_file())


def values(database: Path) -> Iterator[tuple[str, bytes]]:
    """Every text or blob value in every table of an SQLite database: (table.column, bytes).
    Virtual tables are left out: their own tables hold what they index."""
    with closing(sqlite3.connect(database)) as connection:
        tables = [
            name
            for name, sql in connection.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
            )
            if not sql.upper().startswith("CREATE VIRTUAL")
        ]
        for table in tables:
            cursor = connection.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - its own names
            columns = [column[0] for column in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    if isinstance(value, str):
                        value = value.encode()
                    if isinstance(value, bytes):
                        yield f"{table}.{column}", value


def copy_database(database: Path, workdir: Path) -> Path:
    """A copy of an SQLite database with its WAL, if one is left, to read without touching the
    files as the service left them."""
    workdir.mkdir(parents=True, exist_ok=True)
    copy = workdir / database.name
    for suffix in ("", "-wal"):
        if (original := database.with_name(database.name + suffix)).exists():
            shutil.copyfile(original, copy.with_name(copy.name + suffix))
    return copy


def find_in_database(database: Path, canaries: Mapping[str, str], workdir: Path) -> list[Hit]:
    """Every canary in the database's values (read from a copy in `workdir`)."""
    hits = []
    for where, value in values(copy_database(database, workdir)):
        hits += find(value, canaries, f"{database} {where}")
    return hits
