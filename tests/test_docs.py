"""The documentation stays current: every internal link resolves (the file, and the heading it points to),
and every command shown in a shell block names things that exist (make targets and variables, scripts and
their options, snakemake's options, profiles, configuration keys)."""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
import sys

import pytest
import yaml
from helpers import REPO

DOCS = sorted(
    {
        REPO / "README.md",
        REPO / "DEVELOPERS.md",
        REPO / "config" / "README.md",
        REPO / "benchmarks" / "README.md",
        *(REPO / "docs").glob("*.md"),
    }
)
LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")
SHELL_BLOCK = re.compile(r"```(?:bash|sh|shell)\n(.*?)```", re.S)


def _slug(heading):
    """GitHub's anchor of a markdown heading: lower case, punctuation dropped (but - and _), spaces to -."""
    text = re.sub(r"`", "", heading.strip().lstrip("#").strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@functools.cache
def _anchors(path):
    slugs, seen = set(), {}
    in_code = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not re.match(r"^#{1,6} ", line):
            continue
        slug = _slug(line)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        slugs.add(slug if count == 0 else f"{slug}-{count}")
    return slugs


def _prose(text):
    """The text outside code blocks (links in code are code)."""
    return re.sub(r"```.*?```", "", text, flags=re.S)


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(REPO)))
def test_every_internal_link_resolves(doc):
    broken = []
    for label, target in LINK.findall(_prose(doc.read_text())):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (doc.parent / path).resolve() if path else doc
        if not resolved.exists():
            broken.append(f"[{label}]({target}): no {resolved}")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"[{label}]({target}): no heading #{anchor} in {resolved.relative_to(REPO)}")
    assert not broken, "\n".join(broken)


def _make_targets():
    text = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-zA-Z][\w.-]*):", text, re.MULTILINE))
    variables = set(re.findall(r"^([A-Z_]+)\s*[?:]?=", text, re.MULTILINE))
    return targets, variables


@functools.cache
def _help(command):
    """The --help text of a command (a script of this repository, or snakemake)."""
    return subprocess.run(
        [sys.executable, *command, "--help"], capture_output=True, text=True, timeout=300, cwd=REPO
    ).stdout


def _commands():
    for doc in DOCS:
        for block in SHELL_BLOCK.findall(doc.read_text()):
            for line in block.replace("\\\n", " ").splitlines():  # a line continued with a backslash is one command
                line = line.strip()
                if line and not line.startswith("#"):
                    yield doc, shlex.split(line, comments=True)


COMMANDS = list(_commands())


@pytest.mark.parametrize(
    "doc, words", COMMANDS, ids=[f"{doc.relative_to(REPO)}: {' '.join(words)[:60]}" for doc, words in COMMANDS]
)
def test_every_command_shown_names_what_exists(doc, words):
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())["properties"]
    program = words[0].rsplit("/", 1)[-1]
    problems = []
    if program == "make":
        targets, variables = _make_targets()
        for word in words[1:]:
            name, equals, _ = word.partition("=")
            if equals and name not in variables:
                problems.append(f"make variable {name} is not in the Makefile")
            elif not equals and word not in targets:
                problems.append(f"make target {word} is not in the Makefile")
        assert not problems, problems
        return
    arguments = words[1:]
    if program.startswith("python") and arguments[:1] == ["-m"]:
        command, arguments = ["-m", arguments[1]], arguments[2:]
    elif program.startswith("python") and arguments and arguments[0].endswith(".py"):
        script = REPO / arguments[0]
        assert script.is_file(), f"{arguments[0]} does not exist"
        command, arguments = [str(script)], arguments[1:]
    elif program == "snakemake":
        command = ["-m", "snakemake"]
    else:
        return  # pip, venv, the python -c one-liners: nothing of ours to resolve
    if command[:2] == ["-m", "pip"] or arguments[:1] == ["-c"] or command[:2] == ["-m", "venv"]:
        return
    help_text = _help(tuple(command))
    for index, word in enumerate(arguments):
        if word.startswith("--"):
            option = word.split("=", 1)[0]
            if option not in help_text:
                problems.append(f"{' '.join(command)} has no option {option}")
        previous = arguments[index - 1] if index else ""
        if previous == "--profile" and not word.startswith("/") and not (REPO / word).is_dir():
            problems.append(f"no profile {word}")
        if previous == "--config" or (not word.startswith("-") and "=" in word and "--config" in arguments[:index]):
            key = word.split("=", 1)[0]
            if key not in schema:
                problems.append(f"no config key {key}")
    assert not problems, problems
