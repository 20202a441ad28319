"""The commands' one convention for list flags (mixin.argtypes.ListAction): spaces, commas, repeats."""

import argparse

import pytest

from mixin.argtypes import ListAction, nonneg_float, one_of, split_list


def parser():
    p = argparse.ArgumentParser(prog="t", exit_on_error=False)
    p.add_argument("--names", action=ListAction, default=None)
    p.add_argument("--weights", action=ListAction, item=nonneg_float)
    p.add_argument("--sources", action=ListAction, item=one_of(("a", "b", "c")), default=["a", "b", "c"])
    return p


@pytest.mark.parametrize("argv", [["--names", "A", "B"], ["--names", "A,B"], ["--names", "A,", ",B"],
                                  ["--names", "A", "--names", "B"], ["--names", "A,B", "--weights", "1"]])
def test_spaces_commas_and_repeats_give_one_list(argv):
    assert parser().parse_args(argv).names == ["A", "B"]


def test_items_are_converted_and_checked_after_splitting():
    p = parser()
    args = p.parse_args(["--weights", "0.5,0.25", "1", "--sources", "c,a"])
    assert args.weights == [0.5, 0.25, 1.0] and args.sources == ["c", "a"]  # the default replaced
    assert p.parse_args([]).sources == ["a", "b", "c"]
    for bad in (["--weights", "0.5,-1"], ["--sources", "a,d"], ["--names", ","]):
        with pytest.raises(argparse.ArgumentError, match=r"-1|'d'|at least one"):
            p.parse_args(bad)


def test_a_comma_before_a_space_or_in_an_existing_path_stays(tmp_path):
    song = "Jokers, Jacks & Kings - Sea Of Leaves"  # a MUSDB18 name
    assert split_list([song + ",Sodium"]) == [song, "Sodium"]
    folder = tmp_path / "a,b"
    folder.mkdir()
    assert split_list([str(folder), "x,y"]) == [str(folder), "x", "y"]


def test_commands_use_it(tmp_path):
    """train_util.py and mixin-eval take both forms (mixin-eval --songs took only commas, train_util.py
    --validation-songs only spaces)."""
    from mixin.cli import eval as eval_cli
    from mixin.cli import train as train_cli

    for songs in (["S", "P"], ["S,P"]):
        e = eval_cli.get_parser().parse_args(["stems", "--songs", *songs, "--model-dir", "a=x,b=y"])
        assert e.songs == ["S", "P"] and e.model_dir == ["a=x", "b=y"] and e.stems == ["stems"]
        t = train_cli.get_parser().parse_args(["--train-mix", "--validation-songs", *songs,
                                               "--mix-dir-weights", "0.5,0.5", "--stem-dirs", "a", "b"])
        assert t.validation_songs == ["S", "P"] and t.mix_dir_weights == [0.5, 0.5]
        assert t.stem_dirs == ["a", "b"]
    # every list flag of the three commands follows the convention
    from mixin.cli import xtract as xtract_cli

    other = [a.option_strings[-1] for m in (eval_cli, train_cli, xtract_cli)
             for a in m.get_parser()._actions
             if a.option_strings and a.nargs in ("+", "*") and not isinstance(a, ListAction)]
    assert not other


def test_eval_names_a_stems_dir_taken_by_a_list_flag(capsys):
    from mixin.cli import eval as eval_cli

    with pytest.raises(SystemExit) as e:
        eval_cli.main(["--songs", "A", "B", "stems"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "give STEMS_DIR first" in err[-1]
    assert eval_cli.get_parser().parse_args(["--songs", "A", "B", "--", "stems"]).stems == ["stems"]
