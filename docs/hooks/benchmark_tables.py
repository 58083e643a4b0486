"""The Benchmarks pages' tables, computed from the stored runs under benchmarks/results/.

Each table is the output of one benchmark command (``python -m benchmarks.stats table`` and so on) over
the files it reads. The bootstrap intervals take minutes to compute, so the output is kept in
docs/benchmarks/generated/NAME.md together with the SHA-256 of those files: at every build this hook
hashes the files again, and if any changed (a new seed, a re-run) it runs the command again and
rewrites the snippet, so a table can never disagree with the stored runs. The pages embed the
snippets with ``--8<--``, and each snippet ends with the command, the machines and the dates of the runs.

    python docs/hooks/benchmark_tables.py [--force] [NAME ...]   # refresh outside a build
"""
from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "docs", "benchmarks", "generated")
RESULTS = "benchmarks/results"


@dataclass(frozen=True)
class Table:
    """One generated table: the module run with ``python -m`` and the stored files it reads."""

    name: str
    args: tuple[str, ...]
    inputs: tuple[str, ...]  # globs relative to the repository root
    exit_codes: tuple[int, ...] = (0,)  # adoption.py exits 1 when its rule fails: the table is still the answer

    @property
    def command(self) -> str:
        return "python -m " + " ".join(self.args)


def _adoption(name: str, baseline: str, candidate: str) -> Table:
    return Table(name, ("benchmarks.adoption", "--baseline", f"{RESULTS}/{baseline}", "--candidate",
                        f"{RESULTS}/{candidate}", "--reference", f"{RESULTS}/seeds"),
                 (f"{RESULTS}/{baseline}/**/*.json", f"{RESULTS}/{candidate}/**/*.json",
                  f"{RESULTS}/seeds/**/*.json", f"{RESULTS}/reference_scores.json"), exit_codes=(0, 1))


TABLES = (
    Table("seeds", ("benchmarks.stats", "table"),
          (f"{RESULTS}/seeds/**/*.json", f"{RESULTS}/timing/summary.csv", f"{RESULTS}/reference_scores.json")),
    _adoption("adoption_first_rollout", "seeds_v0.1.0", "seeds"),
    _adoption("adoption_fisher_subsample", "seeds", "fisher_subsample"),
    _adoption("adoption_gauss_newton", "seeds", "gauss_newton"),
    _adoption("adoption_gn_sub2", "seeds", "gn_sub2"),
    # issue 28's widened rule: the README's four, Ant-v5 and Swimmer-v5 (their seeds in results/wide)
    Table("adoption_reward_step", ("benchmarks.adoption", "--baseline", f"{RESULTS}/seeds", f"{RESULTS}/wide",
                                   "--candidate", f"{RESULTS}/ahead/reward_step", "--widened"),  # no --reference: sb3-contrib has no Ant runs
          (f"{RESULTS}/seeds/**/*.json", f"{RESULTS}/wide/**/*.json", f"{RESULTS}/ahead/reward_step/**/*.json",
           f"{RESULTS}/reference_scores.json"), exit_codes=(0, 1)),
    Table("wide", ("benchmarks.stats", "table", "--seeds-dir", f"{RESULTS}/wide", "--task", "Swimmer-v5:1e6",
                   "Ant-v5:1e6"),
          (f"{RESULTS}/wide/**/*.json", f"{RESULTS}/timing/summary.csv", f"{RESULTS}/reference_scores.json")),
    Table("recurrent", ("benchmarks.recurrent", "table"),
          (f"{RESULTS}/recurrent/**/*.json", f"{RESULTS}/ahead/cpnv_g995_trial7/**/*.json")),  # the preset's seeds
    Table("masks", ("benchmarks.masks", "table"), (f"{RESULTS}/masks/**/seed_*.json",)),
    Table("ablations", ("benchmarks.ablation_stats",),
          (f"{RESULTS}/ablations/**/*.json", f"{RESULTS}/seeds/**/*.json")),
    Table("diagnostics", ("benchmarks.diagnostics_plot",), (f"{RESULTS}/diagnostics/**/*.json",
                                                            f"{RESULTS}/diagnostics/**/*.csv")),
    Table("tune", ("benchmarks.tune_evidence",),
          (f"{RESULTS}/tune/Pendulum-v1/study.journal", f"{RESULTS}/tune/Pendulum-v1/best.yaml",
           f"{RESULTS}/tune/seeds/**/*.json", f"{RESULTS}/seeds/**/*.json")),
    Table("scaling", ("benchmarks.scaling", "model"), (f"{RESULTS}/scaling.json",)),
)


def input_files(table: Table) -> list[str]:
    """The files a table reads, sorted, relative to the repository root."""
    files: set[str] = set()
    for pattern in table.inputs:
        files.update(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern), recursive=True)
                     if os.path.isfile(p))
    return sorted(files)


def digest(files: list[str]) -> str:
    h = hashlib.sha256()
    for rel in files:
        h.update(rel.encode() + b"\0")
        with open(os.path.join(ROOT, rel), "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def provenance(files: list[str]) -> str:
    """'DATES on MACHINES' of the runs behind a table, read from the seed files and summary CSVs."""
    dates: set[str] = set()
    machines: set[str] = set()
    for rel in files:
        path = os.path.join(ROOT, rel)
        if rel.endswith(".json"):
            try:
                with open(path) as f:
                    record = json.load(f)
            except (OSError, ValueError):
                continue
            if isinstance(record, dict) and "machine" in record:
                machines.add(str(record["machine"]))
                started = (record.get("timing") or {}).get("started") or record.get("date")
                if started:
                    dates.add(str(started)[:10])
        elif rel.endswith(".csv"):
            with open(path, newline="") as f:
                for row in csv.DictReader(f):
                    if row.get("machine"):
                        machines.add(row["machine"])
                    if row.get("date"):
                        dates.add(row["date"][:10])
    if not machines:
        return ""
    span = min(dates) if len(dates) <= 1 else f"{min(dates)} to {max(dates)}"
    return f"runs {span} on {'; '.join(sorted(machines))}".replace("runs  on", "runs on")


def header(table: Table, sha: str) -> str:
    return f"<!-- generated by docs/hooks/benchmark_tables.py: {table.command}; inputs sha256 {sha} -->\n"


def snippet_path(table: Table) -> str:
    return os.path.join(OUT, f"{table.name}.md")


def is_current(table: Table, sha: str) -> bool:
    try:
        with open(snippet_path(table), encoding="utf-8") as f:
            return f.readline() == header(table, sha)
    except OSError:
        return False


def run(table: Table) -> str:
    """The command's standard output, run from the repository root with its code first on the path."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-m", *table.args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode not in table.exit_codes:
        raise RuntimeError(f"{table.command} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    # diagnostics_plot.py ends with the path of the figure it redrew: a local path, not part of the table
    return "\n".join(line for line in done.stdout.splitlines() if not line.startswith("figure: "))


def paragraphs(body: str) -> str:
    """Each line of prose its own paragraph: the scripts print one note per line, which Markdown would join."""
    out: list[str] = []
    fenced = False
    for line in body.split("\n"):
        prose = bool(line.strip()) and not line.startswith(("|", "<!--", "#", "    ", "- ")) and not fenced
        if prose and out and out[-1].strip() and not out[-1].startswith("|"):
            out.append("")
        if line.startswith("```"):
            fenced = not fenced
        out.append(line)
    return "\n".join(out)


def with_sections(body: str) -> str:
    """Mark the output's first Markdown table as the snippet section ``table`` (``--8<-- "FILE:table"``)."""
    lines = body.split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    if start is None:
        return body
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[:start] + ["<!-- --8<-- [start:table] -->"] + lines[start:end]
                     + ["<!-- --8<-- [end:table] -->"] + lines[end:])


def refresh(table: Table, force: bool = False) -> bool:
    """Bring one snippet up to date with its inputs; True if it was recomputed."""
    files = input_files(table)
    if not files:
        raise FileNotFoundError(f"{table.name}: no stored results match {', '.join(table.inputs)}")
    sha = digest(files)
    if not force and is_current(table, sha):
        return False
    body = with_sections(paragraphs(run(table).rstrip())) + "\n"
    where = provenance(files)
    footer = f"\n<small>Computed by `{table.command}` from {len(files)} stored files" + \
             (f" ({where})" if where else "") + ".</small>\n"
    os.makedirs(OUT, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=OUT, prefix=f".{table.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(header(table, sha) + "\n" + body + footer)
    os.replace(tmp, snippet_path(table))
    return True


def table_section(name: str) -> list[str]:
    """The rows of a snippet's ``table`` section."""
    with open(os.path.join(OUT, f"{name}.md"), encoding="utf-8") as f:
        text = f.read()
    body = text.split("[start:table] -->\n", 1)[1].split("\n<!-- --8<-- [end:table]", 1)[0]
    return body.split("\n")


def check_readme_table() -> None:
    """README.md shows the ten-seed table: it must be this build's, row for row."""
    rows = table_section("seeds")
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    if "\n".join(rows) not in readme:
        raise ValueError("README.md's results table differs from docs/benchmarks/generated/seeds.md's "
                         "(python -m benchmarks.stats table): copy the table rows into README.md")


def on_pre_build(config, **kwargs) -> None:  # MkDocs hook
    for table in TABLES:
        if refresh(table):
            print(f"INFO    -  benchmark table {table.name} recomputed: {table.command}", file=sys.stderr)
    check_readme_table()


def main(argv: list[str]) -> int:
    force = "--force" in argv
    names = [a for a in argv if not a.startswith("--")]
    unknown = set(names) - {t.name for t in TABLES}
    if unknown:
        print(f"unknown table(s): {', '.join(sorted(unknown))}; known: {', '.join(t.name for t in TABLES)}",
              file=sys.stderr)
        return 2
    for table in TABLES:
        if not names or table.name in names:
            print(f"{table.name}: {'recomputed' if refresh(table, force) else 'up to date'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
