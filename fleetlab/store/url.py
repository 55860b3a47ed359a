"""Where a fleet's database is: a file path (SQLite) or a ``postgresql://`` URL.

Every place that takes a database (``--db``, ``$FLEETLAB_DB``, ``fleetlab digest``, the
digest notebook's ``db`` parameter) takes the same text and passes it through ``resolve``
and ``check``. A URL may carry a password (``postgresql://user:secret@host/fleet`` or
``?password=secret``): pass the URL on, but show only ``redacted(url)``.

A ``postgresql://`` URL may name a PostgreSQL schema with ``?schema=NAME`` (fleetlab's own
parameter, not libpq's): the fleet's tables live in that schema, so several fleets (an
experiment's trials) share one database without seeing each other. ``schema`` reads it,
``without_schema`` gives the URL to hand to libpq, ``with_schema`` sets it.

No database driver is imported here: the URL is checked with ``urllib`` only, and the
backend reports what the server says when it connects.
"""

from __future__ import annotations

import contextlib
import os
import re
import tomllib
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from fleetlab.errors import UserError

__all__ = [
    "DEFAULT_DB",
    "ENV",
    "Origin",
    "check",
    "checkout_root",
    "default_db",
    "describe",
    "is_default",
    "is_server_url",
    "origin",
    "passwords",
    "redacted",
    "resolve",
    "schema",
    "shown",
    "user_data_dir",
    "with_schema",
    "without_schema",
]

#: the file name of the default database (where it is: see ``default_db``)
DEFAULT_DB = "fleet.db"
#: the environment variable that names the database when no argument does
ENV = "FLEETLAB_DB"

#: where the database a command uses was named: ``--db`` (an argument), ``$FLEETLAB_DB``,
#: the default of the fleetlab checkout the command runs in, or the per-user default
Origin = Literal["argument", "env", "checkout", "user"]

_SERVER_SCHEMES = ("postgresql", "postgres")
# ``scheme://``: anything else (``fleet.db``, ``a@b.db``, ``C:x``, ``:memory:``) is a path
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
# a query parameter whose value is a secret (libpq's ``password`` and ``sslpassword``)
_SECRET_PARAM = re.compile(r"((?:^|[?&;])(?:ssl)?password=)[^&;#]*", re.IGNORECASE)
_MASK = "***"
_WHAT_TO_GIVE = "give a file path (SQLite) or postgresql://USER@HOST[:PORT]/DBNAME"
# fleetlab's ``schema=`` query parameter: an unquoted, lower-case PostgreSQL identifier
_SCHEMA_PARAM = "schema"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _scheme(text: str) -> str | None:
    match = _URL.match(text)
    return match.group(1).lower() if match else None


def checkout_root(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The root of the fleetlab checkout that ``start`` (default: the current folder) is in:
    the nearest folder at or above it holding fleetlab's ``pyproject.toml`` and its
    ``fleetlab/`` package; None outside a checkout."""
    here = Path.cwd() if start is None else Path(start)
    for folder in (here, *here.parents):
        project = folder / "pyproject.toml"
        if not (folder / "fleetlab" / "__init__.py").is_file() or not project.is_file():
            continue
        try:
            name = tomllib.loads(project.read_text("utf-8")).get("project", {}).get("name")
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        if name == "fleetlab":
            return folder.resolve()
    return None


def user_data_dir() -> Path:
    """fleetlab's per-user data folder: ``$XDG_DATA_HOME/fleetlab`` (by default
    ``~/.local/share/fleetlab``). Not created here."""
    base = os.environ.get("XDG_DATA_HOME", "").strip()
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "share"
    return root / "fleetlab"


def _default(cwd: Path | None = None) -> tuple[str, Origin]:
    env = os.environ.get(ENV, "").strip()
    if env:
        return env, "env"
    root = checkout_root(cwd)
    if root is not None:
        return str(root / DEFAULT_DB), "checkout"
    return str(user_data_dir() / DEFAULT_DB), "user"


def default_db(cwd: str | os.PathLike[str] | None = None) -> str:
    """The database every command, notebook, widget and ``fleetlab.run`` uses when none is
    named: ``$FLEETLAB_DB``; else ``fleet.db`` at the root of the fleetlab checkout the
    current folder is in (so a notebook running in ``notebooks/`` and the CLI at the root
    agree); else ``fleet.db`` in the per-user data folder (``user_data_dir``).

    The one place this is decided: ``resolve(None)`` returns it. A file path is absolute,
    except a relative ``$FLEETLAB_DB``, returned as given.
    """
    return _default(None if cwd is None else Path(cwd))[0]


def origin(where: str | os.PathLike[str] | None) -> Origin:
    """Where the database ``resolve(where)`` names came from (see ``Origin``)."""
    text = "" if where is None else os.fspath(where).strip()
    return "argument" if text else _default()[1]


def is_default(where: str | os.PathLike[str] | None) -> bool:
    """True when ``where`` names no database, so the default is used (``$FLEETLAB_DB`` or
    the checkout's or the user's ``fleet.db``)."""
    return origin(where) != "argument"


_ORIGINS: dict[str, str] = {
    "argument": "from --db",
    "env": "from $FLEETLAB_DB; --db picks another",
    "checkout": "the default in this checkout; --db or $FLEETLAB_DB picks another",
    "user": "the per-user default; --db or $FLEETLAB_DB picks another",
}


def describe(where: str | os.PathLike[str] | None) -> str:
    """The database ``where`` names, safe to show, and where that came from, for messages:
    ``/abs/fleet.db (the default in this checkout; --db or $FLEETLAB_DB picks another)``.
    A file is shown by its absolute path, a URL without its password."""
    return f"{shown(resolve(where))} ({_ORIGINS[origin(where)]})"


def shown(target: str | os.PathLike[str]) -> str:
    """A resolved database for a message or a log: a file by its absolute path, a URL
    without its password."""
    text = os.fspath(target)
    return redacted(text) if _scheme(text) or text == ":memory:" else os.path.abspath(text)


def resolve(where: str | os.PathLike[str] | None) -> str:
    """The database ``where`` names, as text: ``where`` itself (whitespace stripped), or
    ``default_db()`` when ``where`` is None or blank (``$FLEETLAB_DB``, else the checkout's
    or the user's ``fleet.db``). ``sqlite:///path`` is read as the path ``/path``."""
    text = "" if where is None else os.fspath(where).strip()
    if not text:
        text = default_db()
    if _scheme(text) == "sqlite":
        rest = text[len("sqlite://") :]
        if rest.startswith("/") and len(rest) > 1 and "?" not in rest and "#" not in rest:
            return unquote(rest)
    return text


def is_server_url(where: str | os.PathLike[str]) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) URL, False for a path."""
    return _scheme(os.fspath(where).strip()) in _SERVER_SCHEMES


def redacted(where: str | os.PathLike[str]) -> str:
    """``where`` safe to show: a URL's password (in its user part or its query) replaced
    by ``***``. A path (anything not ``scheme://...``) is returned unchanged. Never raises,
    whatever the text."""
    text = os.fspath(where)
    match = _URL.match(text.strip())
    if match is None:
        return text
    text = text.strip()
    start = match.end()
    head_end = min((i for i in (text.find(c, start) for c in "?#") if i >= 0), default=len(text))
    authority_end = text.find("/", start, head_end)
    authority_end = head_end if authority_end < 0 else authority_end
    # The user part ends at the authority's last "@"; a password with an unescaped "/"
    # pushes the "@" past the first "/", so look up to the query then.
    at = text.rfind("@", start, authority_end)
    if at < 0:
        at = text.rfind("@", start, head_end)
    if at >= 0:
        user, colon, _ = text[start:at].partition(":")
        if colon:
            text = f"{text[:start]}{user}:{_MASK}{text[at:]}"
    query = text.find("?", start)
    if query >= 0:
        text = text[:query] + _SECRET_PARAM.sub(rf"\g<1>{_MASK}", text[query:])
    return text


def passwords(where: str | os.PathLike[str]) -> list[str]:
    """The passwords a URL carries (in its user part, ``password=`` or ``sslpassword=``),
    decoded, as a connection would send them and a driver's message might echo them; []
    for a path or a URL without one. Never raises."""
    text = os.fspath(where).strip()
    if _scheme(text) is None:
        return []
    found: list[str] = []
    with contextlib.suppress(ValueError):
        parts = urlsplit(text)
        if parts.password:
            found += {parts.password, unquote(parts.password)}
        for key, value in parse_qsl(parts.query, keep_blank_values=False):
            if key.lower() in ("password", "sslpassword"):
                found.append(value)
    return found


def _split_query(text: str) -> tuple[str, list[str], str]:
    """``(before the query, its ``&``-separated parts, the ``#fragment`` or "")``."""
    text, hash_, fragment = text.partition("#")
    head, mark, query = text.partition("?")
    return head, (query.split("&") if mark and query else []), hash_ + fragment


def _schema_values(text: str) -> list[str]:
    _, parts, _ = _split_query(text)
    return [
        unquote(value)
        for key, _, value in (p.partition("=") for p in parts)
        if unquote(key) == _SCHEMA_PARAM
    ]


def schema(where: str | os.PathLike[str]) -> str | None:
    """The PostgreSQL schema a server URL names with ``?schema=NAME``; None for a path or
    a URL without one (its tables are in the user's current schema, usually ``public``)."""
    text = os.fspath(where).strip()
    if _scheme(text) not in _SERVER_SCHEMES:
        return None
    values = _schema_values(text)
    return values[-1] if values else None


def without_schema(where: str | os.PathLike[str]) -> str:
    """``where`` without its ``schema=`` parameter (libpq refuses parameters it does not
    know); any other text is unchanged."""
    text = os.fspath(where).strip()
    if _scheme(text) not in _SERVER_SCHEMES:
        return text
    head, parts, fragment = _split_query(text)
    kept = [p for p in parts if unquote(p.partition("=")[0]) != _SCHEMA_PARAM]
    return head + ("?" + "&".join(kept) if kept else "") + fragment


def with_schema(where: str | os.PathLike[str], name: str) -> str:
    """The server URL ``where`` with its ``schema=`` set to ``name`` (replacing any).

    Raises:
        UserError: ``where`` is not a server URL, or ``name`` is not a schema name.
    """
    text = without_schema(where)
    if _scheme(text) not in _SERVER_SCHEMES:
        raise UserError(f"db {redacted(text)!r} is not a postgresql:// URL: it has no schemas")
    _check_schema(name, redacted(text))
    head, parts, fragment = _split_query(text)
    return f"{head}?{'&'.join([*parts, f'{_SCHEMA_PARAM}={name}'])}{fragment}"


def _check_schema(name: str, shown: str) -> None:
    if not _SCHEMA_NAME.fullmatch(name) or name.startswith("pg_"):
        raise UserError(
            f"db {shown!r} has a bad schema={name[:70]!r}: a schema name is 1 to 63 lower-case"
            " letters, digits and '_', not starting with a digit or 'pg_'"
        )


def check(where: str | os.PathLike[str] | None) -> None:
    """Refuse, with one line, a database URL that cannot be meant: an unknown scheme or a
    ``postgresql://`` URL that does not parse (a bad port, an unclosed ``[``, a bad or
    repeated ``schema=``). A path
    passes (the SQLite backend says what is wrong with a file when it opens it).

    Raises:
        UserError: what is wrong and what to give instead, showing the URL redacted.
    """
    text = resolve(where)
    scheme = _scheme(text)
    if scheme is None:
        return
    shown = redacted(text)
    if scheme == "sqlite":
        raise UserError(
            f"db {shown!r} is not a SQLite URL this accepts: use sqlite:///PATH or the path itself"
        )
    if scheme not in _SERVER_SCHEMES:
        raise UserError(f"db {shown!r} has an unknown scheme {scheme + '://'!r}: {_WHAT_TO_GIVE}")
    if any(c.isspace() or not c.isprintable() for c in text):
        raise UserError(
            f"db {shown!r} has a space or control character: percent-encode it (%20) in the URL"
        )
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise UserError(f"db {shown!r} is malformed ({exc}): {_WHAT_TO_GIVE}") from None
    if "@" not in parts.netloc and "@" in parts.path:
        raise UserError(
            f"db {shown!r} has a '/' in its user or password: percent-encode it as %2F"
            " (and '@' as %40, ':' in a user name as %3A)"
        )
    for host in parts.netloc.rpartition("@")[2].split(","):
        _check_host(host, shown)
    schemas = _schema_values(text)
    if len(schemas) > 1:
        raise UserError(f"db {shown!r} names schema= {len(schemas)} times: give it once")
    for name in schemas:
        _check_schema(name, shown)


def _check_host(host: str, shown: str) -> None:
    """One ``host[:port]`` of a URL's host list (libpq allows several, comma-separated).
    Its text is not echoed: with an unescaped ``/`` in a password, it may be a piece of it."""
    if host.startswith("["):
        name, bracket, port = host[1:].partition("]")
        if not bracket or not name:
            raise UserError(f"db {shown!r} has an unclosed or empty [IPv6] host: {_WHAT_TO_GIVE}")
        if port and not port.startswith(":"):
            raise UserError(f"db {shown!r} has text after ']' that is not ':PORT'")
        port = port[1:]
        has_port = bool(port) or host.endswith(":")
    else:
        _, colon, port = host.partition(":")
        has_port = bool(colon)
    if not has_port:
        return
    if not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(
            f"db {shown!r} has a bad port: a port is a number from 1 to 65535"
            " (PostgreSQL listens on 5432 by default)"
        )
