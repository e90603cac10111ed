"""The command line as an operator meets it: global options anywhere, one line per failure with
the documented exit code, a quiet broken pipe, `mailbot init` for a deployment folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.config import RULES_DIR
from mailbot.desk.deploy import CONFIG
from tests.support.samples import SAMPLES_DIR

ROOT = Path(__file__).resolve().parent.parent
NOW = "2026-11-25T10:00"


@pytest.fixture
def desk_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_NOW", raising=False)
    return tmp_path


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("mailbot: "), err
    assert "Traceback" not in err
    return err


def test_global_options_before_or_after_the_subcommand(desk_dir: Path, capsys):
    sample = str(SAMPLES_DIR / "05_question.eml")
    assert main(["ingest", sample, "--now", NOW]) == 0
    capsys.readouterr()
    assert main(["cases", "--json", "--now", "2026-11-26T10:00", "-v"]) == 0
    after = capsys.readouterr().out
    assert main(["--now", "2026-11-26T10:00", "cases", "--json"]) == 0
    assert capsys.readouterr().out == after
    assert json.loads(after)[0]["received_at"] == "2026-11-25T10:00:00+09:00"
    config = desk_dir / "elsewhere.toml"
    config.write_text(
        CONFIG.replace('rules = "rules"', f'rules = "{RULES_DIR}"')
        .replace('templates = "templates"', f'templates = "{RULES_DIR.parent / "templates"}"')
        .replace("data/", "other/"),
        encoding="utf-8",
    )
    assert main(["cases", "--config", str(config), "--now", NOW]) == 0
    assert (desk_dir / "other" / "mailbot.db").exists()


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert re.fullmatch(r"mailbot \d+\.\d+\.\d+\n", capsys.readouterr().out)


@pytest.mark.parametrize(
    ("argv", "code", "expected"),
    [
        (["ingest", "missing.eml"], 4, "mailbot: missing.eml: No such file or directory\n"),
        (["deliver", "missing.eml"], 4, "mailbot: missing.eml: No such file or directory\n"),
        (["operators", "import", "missing.csv"], 4, "missing.csv"),
        (["sources", "import", "missing.csv"], 4, "missing.csv"),
        (["decisions", "apply", "missing.xlsx"], 5, "missing.xlsx"),
        (["report", "--xlsx", "a-file/queue.xlsx"], 4, "mailbot: a-file: File exists\n"),
        (["case", "MB-000099"], 5, "mailbot: no case MB-000099\n"),
        (["case", "twelve"], 2, "is not a case number"),
        (["decide", "1", "issue-code"], 5, "no case MB-000001"),
        (["deliver"], 2, "give FILE.eml"),
        (["init", "a-file/desk"], 4, "mailbot: a-file/desk: Not a directory\n"),
        (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
        (["cases", "--bogus"], 2, "unrecognized arguments: --bogus"),
        (["--now", "yesterday", "cases"], 3, "--now: not an ISO-8601 date-time: 'yesterday'"),
    ],
)
def test_each_failure_is_one_line_with_its_exit_code(
    desk_dir: Path, capsys, argv: list[str], code: int, expected: str
):
    (desk_dir / "a-file").write_text("not a folder")
    if argv[0] in ("frobnicate", "cases") and argv[-1] != "cases":
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == code
    else:
        assert main(argv) == code
    err = one_line(capsys.readouterr().err)
    assert expected in err


def test_verbose_shows_the_traceback(desk_dir: Path, capsys):
    assert main(["ingest", "missing.eml", "-v"]) == 4
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().endswith(
        "mailbot: missing.eml: No such file or directory"
    )


def run_cli(*args: str, cwd: Path, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MAILBOT_NOW"}
    return subprocess.run(
        [sys.executable, "-m", "mailbot", *args],
        cwd=cwd,
        env=env,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )


def test_a_closed_pipe_is_quiet(desk_dir: Path):
    files = sorted(str(p) for p in SAMPLES_DIR.glob("*.eml"))
    assert run_cli("--now", NOW, "ingest", *files, cwd=desk_dir).returncode == 0
    pipeline = subprocess.run(
        f"{sys.executable} -m mailbot cases --json | head -n 1",
        shell=True,
        cwd=desk_dir,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "MAILBOT_NOW"} | {"PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert pipeline.stdout == "[\n"
    assert pipeline.stderr == ""


def test_init_writes_a_deployment_that_runs_from_its_folder(tmp_path: Path, capsys):
    folder = tmp_path / "desk"
    assert main(["init", str(folder)]) == 0
    assert (folder / "config.toml").is_file()
    assert (folder / "rules" / "procedures.toml").read_bytes() == (
        RULES_DIR / "procedures.toml"
    ).read_bytes()
    assert (folder / "templates" / "mail" / "receipt.txt.j2").is_file()
    assert sorted(p.name for p in (folder / "samples").iterdir()) == sorted(
        p.name for p in SAMPLES_DIR.iterdir()
    )
    edited = folder / "rules" / "schedule.toml"
    edited.write_text(edited.read_text(encoding="utf-8") + "\n# staff edit\n", encoding="utf-8")
    assert main(["init", str(folder)]) == 0
    assert "0 file(s) written" in capsys.readouterr().out
    assert edited.read_text(encoding="utf-8").endswith("# staff edit\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = str(folder / "config.toml")
    for argv in (
        ["deliver", "--samples"],
        ["run", "--once"],
    ):
        assert run_cli("--config", config, "--now", NOW, *argv, cwd=elsewhere).returncode == 0
    listed = run_cli("--config", config, "cases", "--json", cwd=elsewhere)
    assert listed.returncode == 0
    assert len(json.loads(listed.stdout)) == 9  # the corrected resubmission joins its case
    assert (folder / "data" / "mailbot.db").is_file()
    assert len(list((folder / "data" / "outbox" / "new").iterdir())) == 9
    assert list(elsewhere.iterdir()) == []


def test_case_shows_the_mails_as_text_with_attachments_listed(desk_dir: Path, capsys):
    sample = SAMPLES_DIR / "03_grid_code_application.eml"
    assert main(["--now", NOW, "ingest", str(sample)]) == 0
    capsys.readouterr()
    assert main(["--now", NOW, "case", "MB-000001"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("MB-000001  容量市場向けアグリゲータ用系統コード申請\n")
    assert "  状態: 修正依頼中 (needs_correction)" in out
    assert "    添付: 発電所マスタ申込書.xlsx (" in out
    assert (
        "    添付の通り、『容量市場向けアグリゲータ用系統コード』を申請します。" in out
    )  # decoded
    assert "【受付番号 MB-000001】不備のご連絡" in out and "送信済 2026/11/25 10:00" in out
    assert "problems=事業者コード(発電所所有者): 事業者コード 1234 は発番されておりません" in out
    for python_repr in ("{'", "['", "datetime.", "b'", '[{"'):
        assert python_repr not in out


def test_decide_says_what_it_issued_and_when_the_mail_goes(desk_dir: Path, capsys):
    sample = SAMPLES_DIR / "01_operator_code_complete.eml"
    assert main(["--now", NOW, "ingest", str(sample)]) == 0
    capsys.readouterr()
    assert main(["--now", "2026-11-25T18:00", "decide", "MB-000001", "issue-code", "4321"]) == 0
    assert capsys.readouterr().out == (
        # issue 26: "English and ids leak: … CLI 「→ 完了; the mail was sent」"
        "MB-000001: コード発番・通知 → 完了。事業者コード 4321。"
        "参加者へのメールは 2026/11/26 09:00 に送信します（送信時間帯を待っています）。\n"
    )
    assert main(["--now", NOW, "decide", "MB-000001", "reject"]) == 5
    assert capsys.readouterr().err == (
        "mailbot: 状態が「完了」の案件では「お断り（理由を通知）」は選べません\n"
    )


def test_the_readme_documents_every_exit_code():
    import mailbot.cli as cli

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("### Exit codes")[1].split("###")[0]
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", table, flags=re.MULTILINE)}
    defined = {v for k, v in vars(cli).items() if k.startswith("EXIT_")}
    assert documented == defined


def test_the_readme_lists_every_command():
    from mailbot.cli import build_parser

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("| command | what it does |")[1].split("\n\n")[0]
    parser = build_parser()
    [commands] = [a for a in parser._actions if a.dest == "command"]
    for name in commands.choices:
        assert f"`mailbot {name}" in table, name
