"""What quote() writes into a job script, word by word: the line a user reads in job.sbatch (and bash runs)."""

import pytest

from hpcx.errors import UsageError
from hpcx.templates import Shell, join_argv, quote


@pytest.mark.parametrize(
    "value, word",
    [
        (True, "1"),  # a flag in a template: `if [ {{ profile }} = 1 ]`
        (False, "0"),
        (4, "4"),
        (-2, "-2"),
        (0.25, "0.25"),
        ("gpu:tesla:2", "gpu:tesla:2"),  # plain tokens stay as typed
        ("a=b,c/d@e%f+g.h_i-j", "a=b,c/d@e%f+g.h_i-j"),
        ("", "''"),  # an empty value is still one word
        ("a b", "'a b'"),
        ("it's", "'it'\"'\"'s'"),
        ("$HOME", "'$HOME'"),
        ("naïve ☃", "'naïve ☃'"),  # printable text keeps its characters
        ("a\nb", "$'a\\nb'"),  # a line break can never start a new line of the script
        ("plain\n", "$'plain\\n'"),  # also at the end of an otherwise plain token
        ("0\n", "$'0\\n'"),
        ("\n#SBATCH --wrap=x", "$'\\n#SBATCH --wrap=x'"),
        ("a\tb\r", "$'a\\tb\\r'"),
        ("it's\n", "$'it\\'s\\n'"),
        ("back\\slash\n", "$'back\\\\slash\\n'"),
        ("é\n", "$'é\\n'"),
        ("\x01\x7f", "$'\\x01\\x7f'"),
        ("\u2028", "$'\\xe2\\x80\\xa8'"),  # a Unicode line separator, as its UTF-8 bytes
        ("\udcff", "$'\\xff'"),  # a raw byte of a non-UTF-8 argument, as that byte
    ],
)
def test_each_value_becomes_one_word(value, word):
    assert quote(value) == word


def test_text_hpcx_built_is_pasted_as_is():
    assert quote(Shell("$HOME/x | tee log")) == "$HOME/x | tee log"
    assert join_argv([Shell("$A"), "b c"]) == "$A 'b c'"


def test_a_command_is_its_quoted_words_joined_by_spaces():
    assert join_argv(["python", "train.py", "--lr", 0.1, "a b", ""]) == "python train.py --lr 0.1 'a b' ''"
    assert join_argv([]) == ""


def test_a_nul_byte_is_refused_naming_the_value():
    with pytest.raises(UsageError) as err:
        quote("data\x00file")
    assert str(err.value) == "value 'data\\x00file' contains a NUL byte; remove it; a shell cannot carry one"


def test_a_long_value_with_a_nul_is_named_by_its_start():
    with pytest.raises(UsageError) as err:
        quote("x" * 100 + "\x00")
    assert str(err.value).startswith(f"value '{'x' * 40}' contains a NUL byte")
