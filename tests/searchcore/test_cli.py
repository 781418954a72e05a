"""`python -m searchcore` end to end on a tiny budget, and every error path's one line."""

import json
import subprocess
import sys

import pytest

from searchcore.cli import main

TINY = ["--dataset", "digits", "--epochs", "1", "--cells", "1", "--filters", "48", "--quiet"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_search_compare_render_end_to_end(tmp_path, capsys):
    for strategy, options in (("ppo", ["--strategy-option", "batch_size=2"]), ("random", [])):
        code, out, _ = run_cli(capsys, "search", "--space", "nasnet", "--strategy", strategy, "--budget", "3",
                               "--out", str(tmp_path / strategy), *TINY, *options)
        assert code == 0
        summary = json.loads(out)
        assert summary["trials"] == 3 and 0.0 <= summary["best_reward"] <= 1.0
        assert len((tmp_path / strategy / "trials.jsonl").read_text().splitlines()) == 3

    # Re-running with the same --out resumes: nothing left to do, nothing trained again.
    code, out, _ = run_cli(capsys, "search", "--strategy", "ppo", "--budget", "3", "--out", str(tmp_path / "ppo"),
                           *TINY, "--strategy-option", "batch_size=2")
    assert code == 0 and len((tmp_path / "ppo" / "trials.jsonl").read_text().splitlines()) == 3

    code, out, _ = run_cli(capsys, "compare", str(tmp_path / "ppo"), str(tmp_path / "random"), "--top", "1,2",
                           "-o", str(tmp_path / "fig6"))
    assert code == 0
    data = json.loads((tmp_path / "fig6.json").read_text())
    assert {s["strategy"] for s in data["strategies"]} == {"ppo", "random"}
    assert len(data["runs"][0]["curves"]["1"]) == 3
    assert (tmp_path / "fig6.html").stat().st_size > 100_000  # plotly.js inlined

    code, out, _ = run_cli(capsys, "render", str(tmp_path / "ppo"), "-o", str(tmp_path / "best.svg"))
    assert code == 0 and (tmp_path / "best.svg").read_text().lstrip().startswith(("<?xml", "<svg"))


def test_describe_prints_params_and_mult_adds_as_json(capsys):
    code, out, _ = run_cli(capsys, "describe", "--genotype", "nasnet-a", "--dataset", "cifar10", "--cells", "6",
                           "--filters", "768", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["params"] == pytest.approx(3.3e6, rel=0.05)  # Table 1: NASNet-A (6 @ 768), 3.3M
    assert info["mult_adds"] > 0


def test_describe_reports_f_and_base_filters_for_any_cell(capsys):
    # DARTS-V2 in DARTS's setting: 20 layers, C = 36, i.e. 6@576 (4 concatenated nodes: F = 16 C),
    # with DARTS's one projection of the stem: DARTS's own 3,349,342 params.
    darts = ["describe", "--genotype", "darts-v2", "--dataset", "cifar10", "--cells", "6", "--project-stem", "--json"]
    code, out, _ = run_cli(capsys, *darts, "--filters", "576")
    assert code == 0
    by_f = json.loads(out)
    assert (by_f["filters"], by_f["base_filters"], by_f["params"]) == (576, 36, 3_349_342)
    code, out, _ = run_cli(capsys, *darts, "--base-filters", "36")
    assert code == 0 and json.loads(out) == by_f
    code, out, _ = run_cli(capsys, "describe", "--genotype", "nasnet-a", "--dataset", "imagenet", "--cells", "4",
                           "--filters", "1056")
    assert code == 0
    lines = {line.split(":")[0].strip(): line.split(":", 1)[1].strip() for line in out.splitlines()}
    assert (lines["filters"], lines["base_filters"]) == ("1056", "44")
    assert lines["params"] == "5.29M (5,289,978)" and lines["mult_adds"] == "563.64M (563,638,816)"


def test_train_takes_base_filters(capsys):
    code, out, _ = run_cli(capsys, "train", "--genotype", "darts-v2", "--dataset", "digits", "--epochs", "1",
                           "--cells", "1", "--base-filters", "2", "--device", "cpu")
    assert code == 0 and json.loads(out)["params"] > 0


def test_describe_takes_a_genotype_file(tmp_path, capsys):
    from searchcore.known import get_known

    path = tmp_path / "cell.json"
    path.write_text(get_known("nasnet-a").to_json())
    code, out, _ = run_cli(capsys, "describe", "--genotype", str(path), "--dataset", "cifar10", "--cells", "2",
                           "--filters", "96", "--json")
    assert code == 0 and json.loads(out)["params"] > 0


def test_the_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "searchcore", "list", "strategies"], capture_output=True,
                            text=True, check=True)
    assert result.stdout.split() == ["evolution", "ppo", "random", "reinforce"]


def _bad_genotype(tmp_path, name, mutate):
    from searchcore.known import get_known

    data = get_known("nasnet-a").to_dict()
    mutate(data)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def _set(data, path, value):
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


@pytest.mark.parametrize("argv, expected", [
    (["search", "--out", "x", "--budget", "abc"], "--budget: invalid int value: 'abc'"),
    (["search", "--out", "x", "--strategy", "hillclimb"], "unknown strategy 'hillclimb'"),
    (["search", "--out", "x", "--dataset", "mnist"], "unknown dataset 'mnist'"),
    (["search", "--out", "x", "--bogus"], "unrecognized arguments: --bogus"),
    (["describe", "--genotype", "nasnet-z"], "neither a known cell"),
    (["compare", "nowhere", "--top", "1"], "not a search run directory"),
    (["compare", "nowhere", "--top", "one"], "--top 'one' must be comma-separated integers"),
    (["describe", "--genotype", "darts-v2", "--filters", "600"], "F = 600 must be a positive multiple of 16"),
    (["describe", "--filters", "768", "--base-filters", "32"], "not allowed with argument --filters"),
    (["describe", "--base-filters", "0"], "base_filters must be a positive whole number"),
    (["search", "--out", "x", "--base-filters", "1"], "base_filters must be in 2..168"),
    (["train", "--filters", "48", "--base-filters", "2"], "not allowed with argument --filters"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, monkeypatch, argv, expected):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("searchcore: error: ") and expected in err


@pytest.mark.parametrize("name, change, expected", [
    ("unknown_op.json", (["normal", 0, "ops", 0], "sep_conv_9x9"), "normal cell, block 0: ops[0] = 'sep_conv_9x9'"),
    ("out_of_range.json", (["reduction", 1, "inputs", 1], 7), "reduction cell, block 1: inputs[1] = 7 is out of range"),
    ("bad_combine.json", (["normal", 2, "combine"], "mul"), "normal cell, block 2: combine = 'mul'"),
    ("bad_format.json", (["format"], "cellsearch.nasnet/9"), "format version 'cellsearch.nasnet/9'"),
])
def test_invalid_genotypes_exit_2_naming_the_fault(tmp_path, capsys, name, change, expected):
    path = _bad_genotype(tmp_path, name, lambda d: _set(d, *change))
    code, _, err = run_cli(capsys, "render", path, "-o", str(tmp_path / "x.svg"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err, err


def test_a_missing_dataset_path_exits_2_before_any_trial(tmp_path, capsys):
    code, _, err = run_cli(capsys, "search", "--out", str(tmp_path / "run"), "--dataset", "cifar10",
                           "--data-root", str(tmp_path / "no-cifar"), "--budget", "1", "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "cifar10" in err and "no-cifar" in err
    assert not (tmp_path / "run" / "trials.jsonl").exists()


def test_a_non_json_genotype_file_exits_2(tmp_path, capsys):
    path = tmp_path / "cell.json"
    path.write_text("{not json")
    code, _, err = run_cli(capsys, "describe", "--genotype", str(path))
    assert code == 2 and "not valid JSON" in err


@pytest.mark.parametrize("argv, expected", [
    (["render", "nasnet-a", "-o", "{tmp}/missing/dir/x.svg"], "No such file or directory"),
    (["render", "nasnet-a", "-o", "{tmp}"], "Is a directory"),
    (["search", "--out", "{tmp}/run", "--space-option", "foo=1"], "unexpected keyword argument 'foo'"),
    (["search", "--out", "{tmp}/run", "--filters", "24"], "filters must be a multiple of 24 in 48..4032"),
    (["search", "--out", "{tmp}/run", "--strategy", "ppo", "--strategy-option", "entropy_weight=NaN"],
     "must be a finite number"),
    (["describe", "--genotype", sys.executable], "not text"),
])
def test_paths_and_settings_that_would_fail_later_exit_2_first(tmp_path, capsys, argv, expected):
    code, _, err = run_cli(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "run").exists()  # nothing written for a search that cannot run
