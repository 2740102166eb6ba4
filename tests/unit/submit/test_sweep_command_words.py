"""A sweep command's words reach the task as typed: YAML's booleans and nulls are refused, not turned into
'True' or 'None' (`command: [true]` ran the program 'True')."""

from __future__ import annotations

import pytest
import yaml

from hpcx.errors import HpcxError
from hpcx.submit.sweeps import parse_spec


@pytest.mark.parametrize(
    "text, shown",
    [
        ("[true]", "True"),
        ("[train.py, --flag, yes]", "True"),
        ("[run.sh, off]", "False"),
        ("[run.sh, ~]", "None"),
    ],
)
def test_yaml_values_in_the_command_are_refused_with_the_fix(text, shown):
    doc = yaml.safe_load(f"command: {text}\nparameters: {{grid: {{i: [1]}}}}\n")
    with pytest.raises(HpcxError) as err:
        parse_spec(doc)
    assert f"command word {shown}" in str(err.value) and "quote the word" in (err.value.hint or "")


def test_quoted_words_and_numbers_reach_the_command_as_text():
    doc = yaml.safe_load('command: ["true", train.py, --flag, "yes", --n, 3]\nparameters: {grid: {i: [1]}}\n')
    assert parse_spec(doc).command == ["true", "train.py", "--flag", "yes", "--n", "3"]
