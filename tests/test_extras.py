"""The light core install: plotly, pyarrow, scipy and pandas are extras. Without them the README's
first command works, and each command that needs one says which extra installs it (one line,
exit 2, nothing written)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"plotly": "plot", "pyarrow": "sweep", "scipy": "calibrate", "pandas": "notebook"}


def gnasim_without(blocked: list[str], *args: str) -> subprocess.CompletedProcess:
    """The CLI in a process where ``blocked`` cannot be imported (as if not installed); prints the
    heavy modules that were imported after a successful run."""
    code = ("import sys\n"
            f"for m in {blocked!r}: sys.modules[m] = None\n"
            "sys.argv = ['gnasim'] + sys.argv[1:]\n"
            "from gnasim.console import main\n"
            "try:\n    main()\n"
            "finally:\n"
            f"    print('heavy:', sorted(m for m in {list(HEAVY)!r} if sys.modules.get(m)),"
            " file=sys.stderr)\n")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def test_pyproject_core_leaves_the_heavy_parts_to_extras():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"])
    extras = project["optional-dependencies"]
    for module, extra in HEAVY.items():
        assert module not in core
        assert any(d.startswith(module) for d in extras[extra]), (module, extra)
    assert "numba" not in core and "llvmlite" not in core
    assert "gnasim[all]" in extras["test"]                 # CI installs .[test,validate]


def test_readme_first_command_runs_on_the_core_install():
    first = (ROOT / "README.md").read_text().split("```bash\n", 1)[1].splitlines()[0]
    assert first.startswith("pip install -e . && gnasim predict ")
    args = first.split("gnasim ", 1)[1].split()
    res = gnasim_without(list(HEAVY), *args)
    assert res.returncode == 0, res.stderr
    assert "predicted kernel time" in res.stdout
    installed = gnasim_without([], *args)                   # and with them installed: not imported
    assert installed.returncode == 0 and installed.stdout == res.stdout
    assert installed.stderr.strip().splitlines()[-1] == "heavy: []"


@pytest.mark.parametrize("module, args, what", [
    ("pyarrow", ["sweep", "-i", "16", "-w", "4", "--hardware", "none", "--q-tile", "4",
                 "--kv-tile", "4", "--out", "{tmp}/s.csv"], "sweep"),
    ("pyarrow", ["sweep", "-i", "16", "-w", "4", "--hardware", "none", "--q-tile", "4",
                 "--kv-tile", "4", "--out", "{tmp}/s.parquet"], "sweep"),
    ("scipy", ["calibrate", "--out", "{tmp}"], "calibrate"),
    ("scipy", ["compare", "--loo", "--out", "{tmp}/c.csv"], "compare --loo"),
    ("plotly", ["compare", "--plot", "{tmp}/c.html"], "compare --plot"),
])
def test_a_command_without_its_extra_names_it(tmp_path, module, args, what):
    res = gnasim_without([module], *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert res.returncode == 2
    assert res.stderr.splitlines()[0] == (f"error: {what}: needs {module}, which the core "
                                          f"install leaves out: pip install 'gnasim[{HEAVY[module]}]'")
    assert list(tmp_path.iterdir()) == []
