"""`python worker.py replay FILE...`: the gate an operator runs before deploying worker code."""

import asyncio
import io
import re
import sys
from pathlib import Path

import pytest

from tests.audit.incompatible import INCOMPATIBLE_WORKFLOWS
from worker import parse_args, replay_files

ROOT = Path(__file__).parent.parent.parent
HISTORIES = ROOT / "tests" / "histories"


async def run_replay(*args: str | Path) -> tuple[int, str]:
    """The command as an operator runs it, from the repository root; its status and output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "worker.py",
        "replay",
        *map(str, args),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, output.decode()


class TestReplayFiles:
    async def test_recorded_histories_replay_and_exit_0(self) -> None:
        """Every recorded order is reported ok, by workflow id."""
        paths = sorted(HISTORIES.glob("*.json"))
        status, output = await run_replay(*paths)
        assert status == 0, output
        for path in paths:
            assert f"ok                {path.stem}  (" in output

    async def test_unreadable_file_exits_2_naming_it(self, tmp_path: Path) -> None:
        """A file that is not a history cannot pass the gate, and says which file it was."""
        broken = tmp_path / "broken.json"
        broken.write_text('{"not": "a history"}')
        status, output = await run_replay(HISTORIES / "happy_path.json", broken)
        assert status == 2, output
        assert f"unreadable        {broken}: not a JSON object with an 'events' list" in output
        assert "ok                happy_path" in output

    async def test_missing_file_exits_2(self, tmp_path: Path) -> None:
        """A typo in a file name is not a pass."""
        status, output = await run_replay(tmp_path / "nowhere.json")
        assert status == 2, output
        assert "nowhere.json" in output

    async def test_incompatible_code_exits_1_naming_the_order_and_the_reason(self) -> None:
        """An activity inserted at check-in breaks every order that was checked in."""
        out = io.StringIO()
        paths = [HISTORIES / "cancellation.json", HISTORIES / "happy_path.json"]
        status = await replay_files(paths, INCOMPATIBLE_WORKFLOWS, out)
        assert status == 1
        lines = out.getvalue().splitlines()
        assert re.match(r"ok +cancellation  \(\d+ events", lines[0]), lines[0]
        assert lines[1].startswith("failed            happy_path  (")
        assert "Nondeterminism error" in lines[1]

    async def test_nondeterminism_outranks_an_unreadable_file(self, tmp_path: Path) -> None:
        """A gate that found a broken order says so (1), whatever else went wrong."""
        broken = tmp_path / "broken.json"
        broken.write_text("[]")
        out = io.StringIO()
        status = await replay_files(
            [broken, HISTORIES / "happy_path.json"], INCOMPATIBLE_WORKFLOWS, out
        )
        assert status == 1, out.getvalue()


class TestArguments:
    @pytest.mark.parametrize("argv", [["replay"], ["replay", "--running", "a.json"]])
    def test_files_or_running_exactly(self, argv: list[str]) -> None:
        """Nothing to replay, or two things at once, is a usage error (status 2)."""
        with pytest.raises(SystemExit) as exit_:
            parse_args(argv)
        assert exit_.value.code == 2

    def test_no_command_runs_the_worker(self) -> None:
        """`python worker.py` alone is the worker."""
        assert parse_args([]).command is None
