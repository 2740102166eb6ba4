"""`--after KEY` refused for a run that already failed: the message repeats KEY only when the run or job it names
does not already show it (`--after: run 20261207-113005-ab12 already ended FAILED` for a run id or its prefix;
`--after 113: run ...` for a job id, whose digits may also appear in a run id's time of day)."""

import pytest

from hpcx.submit.after import _names

RUN = "run 20261207-113005-ab12"


@pytest.mark.parametrize(
    ("what", "key", "shown"),
    [
        (RUN, "20261207-113005-ab12", True),  # the whole run id
        (RUN, "20261207-113", True),  # a prefix of it, as `hpcx status` accepts
        (RUN, "113", False),  # digits only: a job id, even though the run id holds them
        (RUN, "20261207", False),  # digits only, even at the start of the run id
        ("job 113", "113", True),
        ("job 1130", "113", False),  # another job
    ],
)
def test_the_refusal_repeats_the_key_only_when_the_name_does_not_show_it(what, key, shown):
    assert _names(what, key) is shown
