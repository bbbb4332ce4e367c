"""Reading the ``zdactivity fan-out --agents FILE`` file: CSV or TOML, one credential per agent.

CSV: a header line naming ``key`` and either ``email`` + ``api_token`` or ``oauth_token`` (both
may be columns; each row fills one pair). TOML: ``[[agent]]`` tables with the same keys.
Errors name the file and the line or table, never a credential.
"""

from __future__ import annotations

import csv
import io
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..auth import APIToken, Auth, OAuthToken

__all__ = ["AgentSpec", "AgentsFileError", "read_agents"]

_COLUMNS = ("key", "email", "api_token", "oauth_token")


class AgentsFileError(Exception):
    """The agents file cannot be read or does not make sense (the message says where)."""


@dataclass(frozen=True)
class AgentSpec:
    """One agent of the file: its key (how the output tags it) and its credentials."""

    key: str
    auth: Auth = field(repr=False)


def _value(where: str, row: dict[str, str], column: str) -> str:
    """A cell without its surrounding blanks; one with a control character inside (a line
    break, CR, NUL) is refused, naming the cell, never its value."""
    value = row.get(column, "").strip()
    if not value.isprintable():
        raise AgentsFileError(
            f"{where}: {column} contains a control or invisible character (a line break?)"
        )
    return value


def _auth(where: str, row: dict[str, str]) -> Auth:
    email = _value(where, row, "email")
    api_token = _value(where, row, "api_token")
    oauth_token = _value(where, row, "oauth_token")
    if oauth_token and (api_token or email):
        raise AgentsFileError(f"{where}: give either email + api_token or oauth_token, not both")
    try:
        if oauth_token:
            return OAuthToken(oauth_token)
        if email and api_token:
            return APIToken(email, api_token)
    except (ValueError, TypeError) as exc:
        # The credential classes check their values too; their message may quote the value.
        column = "oauth_token" if oauth_token else "email or api_token"
        raise AgentsFileError(
            f"{where}: {column} is not a usable credential ({type(exc).__name__})"
        ) from None
    if email or api_token:
        missing = "api_token" if email else "email"
        raise AgentsFileError(f"{where}: {missing} is missing (email and api_token go together)")
    raise AgentsFileError(f"{where}: no credentials (email + api_token, or oauth_token)")


def _spec(where: str, row: dict[str, str], seen: set[str]) -> AgentSpec:
    key = _value(where, row, "key")
    if not key:
        raise AgentsFileError(f"{where}: key is missing")
    if key in seen:
        raise AgentsFileError(f"{where}: key {key!r} appears twice")
    seen.add(key)
    return AgentSpec(key, _auth(where, row))


def _read_csv(name: str, text: str) -> list[AgentSpec]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in reader.fieldnames or ()]
    if not header:
        raise AgentsFileError(f"{name}: empty file (expected a header like key,email,api_token)")
    unknown = [h for h in header if h not in _COLUMNS]
    if unknown or "key" not in header:
        raise AgentsFileError(
            f"{name}: line 1: the header must name key and email,api_token or oauth_token"
            + (f" (unknown column {unknown[0]!r})" if unknown else "")
        )
    reader.fieldnames = header
    specs: list[AgentSpec] = []
    seen: set[str] = set()
    try:
        for row in reader:
            where = f"{name}: line {reader.line_num}"
            if None in row:
                raise AgentsFileError(f"{where}: more fields than the header names")
            values = {k: v for k, v in row.items() if v is not None}
            if not any(v.strip() for v in values.values()):
                continue  # a blank line
            specs.append(_spec(where, values, seen))
    except csv.Error as exc:
        raise AgentsFileError(f"{name}: line {reader.line_num}: {exc}") from None
    return specs


def _read_toml(name: str, text: str) -> list[AgentSpec]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AgentsFileError(f"{name}: not valid TOML: {exc}") from None
    tables = data.get("agent")
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise AgentsFileError(f"{name}: expected [[agent]] tables")
    specs: list[AgentSpec] = []
    seen: set[str] = set()
    for i, table in enumerate(tables, 1):
        where = f"{name}: [[agent]] #{i}"
        unknown = [k for k in table if k not in _COLUMNS]
        if unknown:
            raise AgentsFileError(f"{where}: unknown key {unknown[0]!r}")
        if not all(isinstance(v, str | int) for v in table.values()):
            raise AgentsFileError(f"{where}: values must be strings")
        specs.append(_spec(where, {k: str(v) for k, v in table.items()}, seen))
    return specs


def read_agents(path: str) -> list[AgentSpec]:
    """The agents of ``path`` (TOML if it ends in ``.toml``, CSV otherwise)."""
    name = path
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise AgentsFileError(f"cannot read agents file {name}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise AgentsFileError(f"{name}: not UTF-8 text") from None
    specs = _read_toml(name, text) if path.endswith(".toml") else _read_csv(name, text)
    if not specs:
        raise AgentsFileError(f"{name}: no agents in the file")
    return specs
