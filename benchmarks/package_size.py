"""Size of the ``ssc_edge`` package per folder: physical lines and code lines, now or at a git revision.

Physical lines are ``wc -l``'s count. Code lines are lines holding a token other than a comment, a docstring or
blank space (counted with ``ast`` and ``tokenize``), so that prose and code can be told apart.

    python benchmarks/package_size.py                 # the working tree
    python benchmarks/package_size.py --rev 754c78b   # a revision (read with git archive, nothing checked out)
"""

from __future__ import annotations

import argparse
import ast
import io
import subprocess
import tarfile
import tokenize
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIPPED = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}


def code_lines(source: str) -> int:
    """Lines of ``source`` holding a token that is not a comment, a docstring or whitespace."""
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                if isinstance(first.value.value, str):
                    docstrings.update(range(first.lineno, first.end_lineno + 1))
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in SKIPPED:
            lines.update(n for n in range(token.start[0], token.end[0] + 1) if n not in docstrings)
    return len(lines)


def package_files(rev: str | None) -> dict[str, str]:
    """``{path relative to ssc_edge/: source}`` of every .py file, in the working tree or at ``rev``."""
    if rev is None:
        root = REPO / "ssc_edge"
        return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.py"))}
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "ssc_edge"], capture_output=True, check=True)
    files = {}
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(".py"):
                files[member.name.removeprefix("ssc_edge/")] = tar.extractfile(member).read().decode()
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="A git revision (default: the working tree).")
    args = parser.parse_args(argv)
    physical, code = Counter(), Counter()
    for path, source in package_files(args.rev).items():
        parts = Path(path).parts
        folder = parts[0] + "/" if len(parts) > 1 else "(top-level modules)"
        physical[folder] += source.count("\n")
        code[folder] += code_lines(source)
    print(f"{'folder':22s} {'physical':>9s} {'code':>7s}")
    for folder in sorted(physical):
        print(f"{folder:22s} {physical[folder]:9d} {code[folder]:7d}")
    train = "train/"
    print(f"{'all':22s} {sum(physical.values()):9d} {sum(code.values()):7d}")
    rest_p, rest_c = sum(physical.values()) - physical[train], sum(code.values()) - code[train]
    print(f"{'all but train/':22s} {rest_p:9d} {rest_c:7d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
