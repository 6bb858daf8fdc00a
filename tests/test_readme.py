"""README.md works as written.

* Every ```python block runs, in order, in one namespace, in a fresh process (with a private
  ``SYMGRAD_CACHE_DIR``), exactly as a reader pasting them one after the other would run
  them. Excerpts that are not meant to run (generated code) use another fence.
* Every file or folder the README cites (relative links, and backticked paths such as
  ``examples/w1_two_layer.py``) exists in the repository.
* The quick start's command runs the benchmark runner's quick default.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def fenced_blocks(text: str, language: str) -> list:
    """``[(first line number, code)]`` of the fenced blocks opened with ```language."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].strip() == f"```{language}":
            start, body = i + 2, []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            out.append((start, "\n".join(body) + "\n"))
        i += 1
    return out


def run_blocks(path: Path, tmp_path: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the ```python blocks of ``path`` in order, in one namespace, in a new process."""
    blocks = fenced_blocks(path.read_text(encoding="utf-8"), "python")
    script = tmp_path / "run_blocks.py"
    script.write_text(
        "import json, sys\n"
        "ns = {'__name__': '__main__'}\n"
        "for line, code in json.load(open(sys.argv[1])):\n"
        f"    exec(compile(code, f'{path.name}, block at line {{line}}', 'exec'), ns)\n"
        "print('ALL BLOCKS RAN')\n")
    (tmp_path / "blocks.json").write_text(json.dumps(blocks))
    env = dict(os.environ, SYMGRAD_CACHE_DIR=str(tmp_path / "cache"), MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, str(script), str(tmp_path / "blocks.json")],
                          cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_python_blocks_parse():
    blocks = fenced_blocks(README.read_text(encoding="utf-8"), "python")
    assert len(blocks) >= 3
    for line, code in blocks:
        try:
            ast.parse(code)
        except SyntaxError as err:  # an excerpt: give it another fence (```text)
            pytest.fail(f"README.md block at line {line} is not valid Python: {err}")


def test_python_blocks_run_in_order(tmp_path):
    proc = run_blocks(README, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ALL BLOCKS RAN" in proc.stdout
    # what the tour's comments promise
    assert "2*cos(x)*sin(x)" in proc.stdout
    assert r"\mathbin{@}" in proc.stdout
    assert "[0. 3. 3. 0.]" in proc.stdout


def test_generated_code_is_fenced_apart():
    """The samples of generated code are not ```python blocks (they are not runnable)."""
    text = README.read_text(encoding="utf-8")
    assert "```py-generated" in text
    for _, code in fenced_blocks(text, "python"):
        assert "_check_inputs" not in code and "def train_step(_state" not in code


# ---------------------------------------------------------------------------------------
# Every cited file exists
# ---------------------------------------------------------------------------------------

#: A word is taken for a path when it has a file extension, or is a slash-separated path
#: starting at one of the repository's top-level folders (``dloss/dA`` is not a path).
_PATHLIKE = re.compile(r"^[\w.-]+(/[\w.-]+)*\.(py|md|toml|j2|txt|cfg|sh|json)$"
                       r"|^(symgrad|examples|docs|benchmarks|tests|templates|\.ci)(/[\w.-]*)*$")

#: Paths a reader's commands create (not files of the repository).
CREATED_BY_RUNNING = (".venv/", "examples/out/")


def cited_paths(text: str) -> set:
    """Relative link targets, and the path-like words of backticked spans and of ```bash
    blocks (``python examples/w1.py``, ``examples/w1.py:build``), of a Markdown text."""
    found = set()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if not re.match(r"^[a-z]+:|^#", target):
            found.add(target.split("#")[0])
    spans = re.findall(r"`([^`\n]+)`", text)
    spans += [code for _, code in fenced_blocks(text, "bash")]
    for span in spans:
        words = span.split()
        for prev, word in zip([""] + words, words):
            if prev.startswith("--"):
                continue  # an option's value: an output file (--json out.json), not a citation
            word = word.strip("\"',;()")
            word = re.sub(r":[A-Za-z_][\w.]*$", "", word)  # examples/w1_two_layer.py:build
            if word.startswith(("-", "http", "/", "~")) or not _PATHLIKE.match(word):
                continue
            if not word.startswith(CREATED_BY_RUNNING):
                found.add(word)
    return {p for p in found if p}


def test_cited_paths_parser():
    text = ("see [docs](docs/ops.md) and [site](https://example.org), `examples/w1.py:build`, "
            "`sg.grad(x)`, `--full`, `symgrad.tape`, `templates/`, `.ci/run`, `x / y`, "
            "`python benchmarks/swell.py`, `. .venv/bin/activate`, `--json out/r.json`, "
            "`dloss/dA`, `med/hand`\n```bash\n"
            "python examples/w4.py --steps 2  # a comment\n```\n")
    assert cited_paths(text) == {"docs/ops.md", "examples/w1.py", "templates/", ".ci/run",
                                 "benchmarks/swell.py", "examples/w4.py"}


@pytest.mark.parametrize("doc", ["README.md", "examples/README.md", "docs/workloads.md",
                                 "docs/tape_vs_symbolic.md"])
def test_every_cited_file_exists(doc):
    path = ROOT / doc
    cited = cited_paths(path.read_text(encoding="utf-8"))
    assert cited or doc != "README.md"
    missing = []
    for p in sorted(cited):
        candidates = [path.parent / p, ROOT / p]
        if not any(c.exists() for c in candidates):
            missing.append(p)
    assert not missing, f"{doc} cites files that do not exist: {missing}"


def test_readme_links_the_docs():
    text = README.read_text(encoding="utf-8")
    for doc in ("docs/workloads.md", "docs/ops.md", "docs/api.md", "docs/tape_vs_symbolic.md"):
        assert f"]({doc})" in text, doc
    assert "WORKLOADS.md" not in text


def test_placeholder_sections_for_the_lead():
    headings = re.findall(r"^## (.+)$", README.read_text(encoding="utf-8"), re.M)
    for h in ("Quick start", "A tour of the API", "The generated code", "How it works",
              "Benchmarks", "Security", "Checkpoints and resuming", "Gradient checking",
              "Compile time at scale"):
        assert h in headings, h


# ---------------------------------------------------------------------------------------
# The quick start
# ---------------------------------------------------------------------------------------

def test_quick_start_runs_the_quick_benchmark():
    text = README.read_text(encoding="utf-8")
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    first = fenced_blocks(quick, "bash")[0][1].strip()
    assert first.endswith("python -m benchmarks"), first  # no flag: the default run
    assert "pip install -e ." in first
    assert "--full" in quick  # the full sweep is named, behind its flag
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.cli import parser
        from benchmarks.workloads import catalogue
    finally:
        sys.path.remove(str(ROOT))
    args = parser().parse_args([])
    assert not args.full  # so main() runs catalogue(quick=True)
    assert "W3 batch=4096" not in {w.name for w in catalogue(quick=not args.full)}
