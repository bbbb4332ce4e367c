"""Every README code block and every example passes ``mypy --strict`` against the installed package.

A reader copies a block into a script of their own, so each block is checked as its own module,
in a directory outside the project: mypy finds ``zdactivity`` the way it finds any installed
package (the editable install is a path entry it follows). What the prose leaves to the reader
(``access_token``, ``agents``, a ``notify`` defined in an earlier block...) is declared, typed,
ahead of the blocks that use it (``READER_PROVIDES``). A block with a top-level ``await``,
``async for`` or ``async with`` is checked as the body of an ``async def``, where a reader runs it.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Always first: the imports the declarations below need.
PRELUDE = """\
from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Protocol

import zdactivity


class _ReaderAgent(Protocol):
    email: str
    token: str
"""

#: Each name a block may use without defining it, and its typed declaration.
READER_PROVIDES: dict[str, str] = {
    "access_token": "access_token: str",
    "refresh_token": "refresh_token: str",
    "client_secret": "client_secret: str",
    "other_token": "other_token: str",
    "admin_token": "admin_token: str",
    "redis_url": "redis_url: str",
    "url": "url: str",
    "since": "since: datetime",
    "agents": "agents: list[_ReaderAgent]",
    "auth": "auth: zdactivity.Auth",
    "account": "account: zdactivity.Client",
    "save_tokens": "async def save_tokens(access: str, refresh: str) -> None: ...",
    "notify": "async def notify(key: str, activity: zdactivity.Activity) -> None: ...",
    "shared": "import redis.asyncio\nshared: redis.asyncio.Redis",
}


def python_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    return re.findall(r"^```python\n(.*?)^```", readme, re.S | re.M)


def bound_names(tree: ast.Module) -> set[str]:
    """The names a block binds at its top level (assignments, defs, imports, ``as`` targets)."""
    names: set[str] = set()
    for statement in tree.body:
        for node in ast.walk(statement):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.alias):
                names.add((node.asname or node.name).split(".")[0])
    return names


def awaits_at_top_level(tree: ast.Module) -> bool:
    """Whether the block awaits outside any function, as the README's fragments do."""

    def visit(node: ast.AST) -> bool:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return False
        if isinstance(node, ast.Await | ast.AsyncFor | ast.AsyncWith):
            return True
        return any(visit(child) for child in ast.iter_child_nodes(node))

    return any(visit(statement) for statement in tree.body)


def as_module(block: str) -> str:
    """A block as a module a reader could type-check: declarations of what it takes from the
    prose, then the block itself (inside ``async def`` if it awaits at top level)."""
    tree = ast.parse(block)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    given = [decl for name, decl in READER_PROVIDES.items() if name in used - bound_names(tree)]
    body = block
    if awaits_at_top_level(tree):
        body = "async def _readme_block() -> None:\n" + textwrap.indent(block, "    ")
    return "\n".join([PRELUDE, *given, "", "", body])


def mypy_strict(paths: list[Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``mypy --strict`` as a user runs it: from a directory outside the project, no MYPYPATH
    nor PYTHONPATH, so ``zdactivity`` resolves only through the installed package. The cache is
    the project's own (``.mypy_cache``, as ``mypy --strict zdactivity`` leaves it)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(ROOT / ".mypy_cache")]
        + [str(p.relative_to(cwd)) for p in paths],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_readme_blocks_and_examples_pass_mypy_strict(tmp_path: Path) -> None:
    readme_dir = tmp_path / "readme"
    readme_dir.mkdir()
    paths = []
    for index, block in enumerate(python_blocks()):
        path = readme_dir / f"readme_block_{index:02}.py"
        path.write_text(as_module(block))
        paths.append(path)
    examples = shutil.copytree(ROOT / "examples", tmp_path / "examples")
    paths += sorted(examples.glob("*.py"))
    assert len(paths) > len(python_blocks()) + 3

    result = mypy_strict(paths, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"no issues found in {len(paths)} source files" in result.stdout


def test_a_user_script_outside_the_project_type_checks_against_the_installed_package(
    tmp_path: Path,
) -> None:
    script = tmp_path / "my_script.py"
    script.write_text(
        textwrap.dedent(
            """\
            import asyncio

            import zdactivity
            from zdactivity.testing import Emulator


            async def main() -> int:
                async with Emulator(agents=1) as emu:
                    agent = emu.agents[0]
                    auth = zdactivity.APIToken(agent.email, agent.api_token)
                    async with zdactivity.Client(base_url=emu.url, auth=auth) as zd:
                        count = await zd.activities.count()
                return count.value


            print(asyncio.run(main()))
            """
        )
    )
    bad = tmp_path / "my_mistake.py"
    bad.write_text("import zdactivity\n\nx: int = zdactivity.Client\n")

    result = mypy_strict([script, bad], tmp_path)

    # Only the deliberate mistake is reported: mypy read zdactivity's own annotations.
    assert 'Cannot find implementation or library stub for module named "zdactivity"' not in (
        result.stdout
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1 and errors[0].startswith("my_mistake.py:3:"), result.stdout
    assert 'type[Client]", variable has type "int"' in errors[0]
