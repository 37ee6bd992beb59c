"""The guides in docs/guides run as written: each against a fresh hsmd on a fresh state directory.

A guide's ```sh blocks run in order, in one bash (errexit, pipefail), in a scratch directory; a ```python
block whose first line is `# file: NAME` is written there as NAME first. The guides find the daemon through
HSMD_SOCKET and HSMD_STATE_DIR, and hsmctl beside the hsmd binary on PATH."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import hsmdtest as h

GUIDES = sorted((h.REPO_ROOT / "docs" / "guides").glob("*.md"))
TOOLS = ("bash", "curl", "openssl", "pkcs11-tool", "basenc", "flock", "python3")
BLOCK = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
FILE_LINE = re.compile(r"#\s*file:\s*(\S+)")


def guide_parts(text: str) -> tuple[dict[str, str], str]:
    """({file name: content}, the shell script) of a guide."""
    files, commands = {}, []
    for language, body in BLOCK.findall(text):
        if language == "sh":
            commands.append(body)
        elif language == "python" and (name := FILE_LINE.match(body.splitlines()[0] if body else "")):
            files[name.group(1)] = body
    return files, "\n".join(commands)


def report(stdout, stderr, daemon: h.Daemon) -> str:
    def text(output) -> str:
        return output.decode(errors="replace") if isinstance(output, bytes) else (output or "")
    return (f"--- stdout\n{text(stdout)[-4000:]}\n--- stderr (the commands, traced)\n{text(stderr)[-6000:]}"
            f"\n--- hsmd\n{daemon.log_tail()}")


def test_there_are_guides():
    assert {guide.stem for guide in GUIDES} >= {"jwt-signing", "envelope-encryption", "pkcs11-openssl"}


@pytest.mark.parametrize("guide", GUIDES, ids=lambda path: path.stem)
def test_guide_runs_as_written(guide: Path, tmp_path: Path):
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    assert not missing, f"the guides need {', '.join(missing)} (install with apt-get)"
    binaries = h.hsmd_binary().parent
    assert (binaries / "hsmctl").is_file(), f"no hsmctl beside {h.hsmd_binary()}: run `swift build`"
    files, script = guide_parts(guide.read_text())
    assert script, f"{guide.name} has no ```sh blocks"
    for name, content in files.items():
        (tmp_path / name).write_text(content)

    daemon = h.Daemon()
    try:
        daemon.start()
        environment = {
            **os.environ,
            "HSMD_SOCKET": str(daemon.socket_path),
            "HSMD_STATE_DIR": str(daemon.state_dir),
            "PATH": f"{binaries}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        try:
            result = subprocess.run(
                ["bash", "-c", "set -euo pipefail -x\n" + script], cwd=tmp_path, env=environment,
                capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired as timeout:
            pytest.fail(f"{guide.name} did not finish in {timeout.timeout} s\n{report(timeout.stdout, timeout.stderr, daemon)}")
        assert result.returncode == 0, (
            f"{guide.name} failed with exit code {result.returncode}\n{report(result.stdout, result.stderr, daemon)}")
    finally:
        daemon.stop()
        daemon.cleanup()
