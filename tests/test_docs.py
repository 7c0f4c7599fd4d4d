"""The documentation is a promise: every Python example in README.md and docs/*.md runs as written, every
command line of the README runs, and every `trainwise.NAME` the docs mention exists.

Each ```python block runs as its own script in a fresh process, in an empty temporary folder. The README's
```sh lines run in order in one temporary folder (later lines use the runs of earlier ones); a ```toml or
```python block whose first line is a comment naming its file (`# my.toml`, `# train.py`) is written there
first. `make` lines are what CI runs itself and are skipped here.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import trainwise

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
BIN = Path(sys.executable).parent


def blocks(path: Path, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(path.read_text(encoding="utf-8")) if lang == language]


def script_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env["MPLBACKEND"] = "Agg"
    env["COLUMNS"] = "160"
    env.pop("TRAINWISE_HOME", None)
    return env


PYTHON_EXAMPLES = [
    pytest.param(code, id=f"{path.relative_to(ROOT)}#{i + 1}")
    for path in DOCS
    for i, code in enumerate(blocks(path, "python"))
]


@pytest.mark.parametrize("code", PYTHON_EXAMPLES)
def test_python_example_runs_as_written(code: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=script_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr


def readme_commands() -> list[str]:
    commands = []
    for body in blocks(ROOT / "README.md", "sh"):
        for line in body.splitlines():
            command = line.split("  #")[0].split(" # ")[0].strip()
            if command and not command.startswith(("#", "make ")):
                commands.append(command)
    return commands


def readme_files() -> dict[str, str]:
    files = {}
    for language, suffix in (("toml", "toml"), ("python", "py")):
        for body in blocks(ROOT / "README.md", language):
            named = re.fullmatch(rf"#\s*([\w.-]+\.{suffix})\b.*", body.splitlines()[0])
            if named:
                files[named.group(1)] = body
    return files


@pytest.mark.slow
def test_readme_command_lines_run_in_order(tmp_path: Path) -> None:
    for name, text in readme_files().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    commands = readme_commands()
    assert any(command.startswith("trainwise fit") for command in commands)
    for command in commands:
        done = subprocess.run(
            command, shell=True, cwd=tmp_path, env=script_env(), capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr, command
        assert shlex.split(command)[0] in {"trainwise", "python", "printf", "cat", "ls"}, command


# `trainwise.NAME[.NAME...]` in prose and code; file names such as trainwise.toml are not names
MENTION = re.compile(r"\btrainwise((?:\.[A-Za-z_]\w*)+)")


def mentioned_names() -> list[str]:
    names = set()
    for path in DOCS:
        for match in MENTION.finditer(path.read_text(encoding="utf-8")):
            dotted = match.group(1).lstrip(".")
            if not dotted.endswith(("toml", "md", "py", "json", "html", "png", "csv", "sqlite")):
                names.add(dotted)
    return sorted(names)


def resolve(dotted: str) -> object:
    """trainwise.a.b.c as Python resolves it: attributes, importing submodules where an attribute is missing."""
    obj: object = trainwise
    module_path = "trainwise"
    for part in dotted.split("."):
        module_path = f"{module_path}.{part}"
        obj = getattr(obj, part) if hasattr(obj, part) else importlib.import_module(module_path)
    return obj


@pytest.mark.parametrize("dotted", mentioned_names())
def test_every_documented_name_exists(dotted: str) -> None:
    resolve(dotted)


def test_documented_functions_are_not_shadowed_by_modules() -> None:
    """`import trainwise.X` must not turn the function trainwise.X into a module: no submodule shares a name with
    a public function."""
    submodules = {p.stem for p in (ROOT / "src" / "trainwise").glob("*.py")} | {
        p.name for p in (ROOT / "src" / "trainwise").iterdir() if (p / "__init__.py").exists()
    }
    assert not submodules & set(trainwise.__all__)
    for name in ("watch", "check", "lr_find", "compare", "gradcheck", "report", "Doctor", "Finding"):
        assert callable(getattr(trainwise, name)), name


DOC_TOML = [
    pytest.param(body, id=f"{path.relative_to(ROOT)}#{i + 1}")
    for path in DOCS[1:]
    for i, body in enumerate(blocks(path, "toml"))
]


@pytest.mark.parametrize("body", DOC_TOML)
def test_toml_fragments_in_the_docs_are_valid_config(body: str, tmp_path: Path) -> None:
    """A docs page's ```toml block, its sections put into a classification recipe, is a valid config."""
    import tomllib

    import tomli_w

    from trainwise.config import load_config, recipe_text

    document = tomllib.loads(recipe_text("w2-logistic"))
    for section, keys in tomllib.loads(body).items():
        document[section] = {**document.get(section, {}), **keys} if isinstance(keys, dict) else keys
    path = tmp_path / "config.toml"
    path.write_text(tomli_w.dumps(document), encoding="utf-8")
    load_config(path)
