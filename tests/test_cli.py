"""The CLI: fast help, settings from flags / GAZE_* / --config, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gazecli.core.settings import SplitSettings, load_settings
from tests.helpers import make_gazefollow, run_cli


def test_help_imports_no_heavy_library():
    code = ("import sys\nfrom gazecli.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "heavy = [m for m in ('torch', 'torchvision', 'transformers', 'numpy', 'pydantic') if m in sys.modules]\n"
            "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
    assert "data" in out and "eval" in out


def test_entry_points():
    out = subprocess.run([sys.executable, "-m", "gazecli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("gazecli ")


@pytest.fixture
def root(tmp_path):
    return make_gazefollow(tmp_path / "gf")


def printed(out: str) -> dict:
    import tomllib

    return tomllib.loads(out)


def test_precedence_flags_over_env_over_config_over_defaults(root, tmp_path):
    config = tmp_path / "split.toml"
    config.write_text("ratio = 0.3\nseed = 7\nval_fraction = 0.2\n")
    code, out, err = run_cli("data", "split", root, "--config", config, "--print-config")
    assert code == 0, err
    s = printed(out)
    assert (s["ratio"], s["seed"], s["val_fraction"], s["force"]) == (0.3, 7, 0.2, False)
    code, out, _ = run_cli("data", "split", root, "--config", config, "--print-config", env={"GAZE_SEED": "11"})
    assert printed(out)["seed"] == 11
    code, out, _ = run_cli("data", "split", root, "--config", config, "--print-config", "--seed", "12",
                           env={"GAZE_SEED": "11"})
    assert printed(out)["seed"] == 12 and printed(out)["ratio"] == 0.3


def test_print_config_round_trips(root, tmp_path):
    code, out, _ = run_cli("data", "split", root, "--ratio", "0.25", "--seed", "3", "--print-config")
    assert code == 0
    saved = tmp_path / "again.toml"
    saved.write_text(out)
    code, again, _ = run_cli("data", "split", "--config", saved, "--print-config")
    assert code == 0 and printed(again) == printed(out)
    direct = load_settings(SplitSettings, {"root": root, "ratio": 0.25, "seed": 3})
    assert printed(out)["ratio"] == direct.ratio and printed(out)["root"] == str(direct.root)


@pytest.mark.parametrize("args,env,expected", [
    (["--ratio", "-0.1"], {}, "error: --ratio: input should be greater than 0 (got -0.1)"),
    (["--ratio", "1.5"], {}, "error: --ratio: input should be less than 1 (got 1.5)"),
    (["--ratio", "abc"], {}, "error: Invalid value for '--ratio': Input should be a valid number, unable to parse string as a number"),
    ([], {"GAZE_RATIO": "-2"}, "error: GAZE_RATIO: input should be greater than 0 (got '-2')"),
    ([], {}, "error: --ratio is required"),
    (["--ratio", "0.1", "--bogus"], {}, "error: No such option: --bogus (Possible options: --out)"),
])
def test_invalid_values_are_one_line_exit_2(root, args, env, expected):
    code, out, err = run_cli("data", "split", root, *args, env=env)
    assert code == 2
    assert err.strip() == expected
    assert "Traceback" not in out + err


def test_invalid_choice_names_the_choices(tmp_path):
    code, _, err = run_cli("data", "synth", "--out", tmp_path / "w", "--difficulty", "extreme")
    assert code == 2
    assert err.strip() == "error: --difficulty: input should be 'easy', 'normal' or 'hard' (got 'extreme')"


def test_bad_config_file(root, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("ratio = 0.1\nwhatever = 3\n")
    code, _, err = run_cli("data", "split", root, "--config", bad)
    assert code == 2 and err.startswith("error: bad.toml: whatever: unknown option (known options: ")
    broken = tmp_path / "broken.toml"
    broken.write_text("ratio = = 0.1\n")
    code, _, err = run_cli("data", "split", root, "--config", broken)
    assert code == 2 and err.startswith("error: --config broken.toml: not valid TOML")
    code, _, err = run_cli("data", "split", root, "--config", tmp_path / "none.toml")
    assert code == 2 and "--config: file not found" in err


def test_env_vars_of_other_commands_are_ignored(root):
    code, out, _ = run_cli("data", "split", root, "--ratio", "0.5", "--print-config", env={"GAZE_DIFFICULTY": "hard"})
    assert code == 0 and "difficulty" not in out
