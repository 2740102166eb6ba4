"""Whatever a user types reaches the job verbatim, through the real template and the real script, and runs
nothing: quotes, $(...), backticks, newlines, #SBATCH, unicode, 10 kB strings."""

import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpcx.site import load_site
from hpcx.submit.submission import Request, render_script, resolve

SITE = load_site(None)
SENTINEL = Path("/tmp/hpcx-pwned")
HOSTILE = st.one_of(
    st.sampled_from(
        [
            "$(touch /tmp/hpcx-pwned)",
            "`touch /tmp/hpcx-pwned`",
            "a'b\"c",
            "\n#SBATCH --wrap=x\n",
            "x; touch /tmp/hpcx-pwned",
            "☃ naïve",
            "\\",
            "$HOME",
            "*",
            "",
            "-n",
            "x" * 10_000,
        ]
    ),
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=200),
)
ECHO = ("bash", "-c", 'printf "%s\\0" "$HPCX_VAR_V" "$@"', "echo")


def _run(tmp_path: Path, value: str, args: list[str]) -> list[str]:
    prep = resolve(Request("serial", variables={"v": value}, command=(*ECHO, *args)), SITE)
    script = render_script(prep, run_id="r", run_dir=tmp_path, workdir=tmp_path).text
    header = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert len(header) == 6, header  # no value added a directive
    path = tmp_path / "job.sbatch"
    path.write_text(script)
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "LANG": "C.UTF-8"}
    out = subprocess.run(["bash", str(path)], capture_output=True, timeout=60, env=env, cwd=tmp_path).stdout
    return out.decode("utf-8", "surrogateescape").split("\0")[:-1]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=HOSTILE, args=st.lists(HOSTILE, max_size=3))
def test_values_reach_the_job_verbatim_and_execute_nothing(tmp_path, value, args):
    assert _run(tmp_path, value, args) == [value, *args]
    assert not SENTINEL.exists()
