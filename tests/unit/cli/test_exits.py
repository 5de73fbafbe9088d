"""One exception hierarchy, one table of exit statuses: every error the library raises is
declared in errors.py and ends `clp` with the status the man page documents for its kind."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import clp_alpm
from clp_alpm import errors
from clp_alpm.cli.exits import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_USAGE,
    exit_code_for,
)

PACKAGE = Path(clp_alpm.__file__).resolve().parent

ERROR_CLASSES = [
    value
    for value in vars(errors).values()
    if inspect.isclass(value) and issubclass(value, errors.ClpError)
]


def _expected(kind: type[errors.ClpError]) -> int:
    if issubclass(kind, errors.Interrupted):
        return EXIT_INTERRUPTED
    if issubclass(kind, errors.LockError):
        return EXIT_LOCKED
    if issubclass(kind, errors.UsageError):
        return EXIT_USAGE
    return EXIT_FAILED


def _instance(kind: type[errors.ClpError]) -> errors.ClpError:
    if kind is errors.UpdateFailed:
        return errors.UpdateFailed(1, 2, False)
    if kind is errors.Declined:
        return errors.Declined()
    return kind("message")


@pytest.mark.parametrize("kind", ERROR_CLASSES, ids=lambda kind: kind.__name__)
def test_every_error_maps_to_the_status_of_its_kind(kind: type[errors.ClpError]) -> None:
    assert exit_code_for(_instance(kind)) == _expected(kind)


def test_the_table_knows_the_kinds_users_script_against() -> None:
    assert exit_code_for(errors.LockError("pacman is running")) == 3
    assert exit_code_for(errors.MetadataError("PKGINFO.meta:3: bad")) == 2
    assert exit_code_for(errors.SignatureError("bad signature")) == 2
    assert exit_code_for(errors.OperationFailed("undone")) == 1
    assert exit_code_for(errors.CorruptStoreError("damaged")) == 1


def _classes_outside_errors() -> list[tuple[str, ast.ClassDef]]:
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path == PACKAGE / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                found.append((str(path.relative_to(PACKAGE)), node))
    return found


def _base_names(node: ast.ClassDef) -> set[str]:
    names = set()
    for base in node.bases:
        if isinstance(base, ast.Name):
            names.add(base.id)
        elif isinstance(base, ast.Attribute):
            names.add(base.attr)
    return names


def test_no_module_but_errors_declares_a_clp_error() -> None:
    error_names = {kind.__name__ for kind in ERROR_CLASSES}
    strays = [
        f"{where}: {node.name}"
        for where, node in _classes_outside_errors()
        if _base_names(node) & error_names
    ]
    assert strays == []


def test_other_exceptions_are_private_signals_of_their_module() -> None:
    """An exception that is not a ClpError never leaves its module, so it has a private name."""
    public = [
        f"{where}: {node.name}"
        for where, node in _classes_outside_errors()
        if _base_names(node) & {"Exception", "BaseException", "RuntimeError", "ValueError"}
        and not node.name.startswith("_")
    ]
    assert public == []
