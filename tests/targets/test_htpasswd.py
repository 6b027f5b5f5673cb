"""htpasswd lines: Apache's apr1 MD5 (as `openssl passwd -apr1`) for Squid, {SHA} for mitmproxy."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from proxy_lab.targets.htpasswd import apr1_line, md5_crypt, sha1_line

NCSA = "/usr/lib/squid/basic_ncsa_auth"


def test_apr1_matches_openssl_passwd() -> None:
    # `openssl passwd -apr1 -salt abcdefgh 'Postage-2020!'` and `openssl passwd -1 ...`
    assert md5_crypt("Postage-2020!", "abcdefgh") == "$apr1$abcdefgh$mE4zBj3jtFwK8hiSfWC1B."
    assert md5_crypt("Postage-2020!", "abcdefgh", "$1$") == "$1$abcdefgh$SpqMfY1e8Az/4MOhsxp.20"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
@pytest.mark.parametrize("password", ["", "x", "sixteen-chars-pw", "a much longer password than sixteen bytes", "Päss wörd"])
def test_apr1_agrees_with_openssl_for_any_length(password: str) -> None:
    done = subprocess.run(
        ["openssl", "passwd", "-apr1", "-salt", "s4lt", "-stdin"], input=password + "\n", capture_output=True, text=True, check=True
    )
    assert md5_crypt(password, "s4lt") == done.stdout.strip()


@pytest.mark.skipif(not os.access(NCSA, os.X_OK), reason="squid's basic_ncsa_auth is not installed")
def test_squids_basic_ncsa_auth_accepts_the_right_password_only(tmp_path: Path) -> None:
    (tmp_path / "passwd").write_text(apr1_line("meter", "Postage-2020!") + "\n")
    # Squid sends "user password" URL-escaped (rfc1738) to basic helpers, one line per check.
    lines = "meter Postage-2020%21\nmeter postage-2020%21\nMeter Postage-2020%21\n"
    done = subprocess.run([NCSA, str(tmp_path / "passwd")], input=lines, capture_output=True, text=True, timeout=10, check=False)
    answers = [line.split()[0] for line in done.stdout.splitlines()]
    assert answers == ["OK", "ERR", "ERR"]


def test_sha1_line_is_apaches_sha_format() -> None:
    assert sha1_line("meter", "password") == "meter:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="


@pytest.mark.parametrize("user", ["", "a:b", "line\nbreak"])
def test_user_names_that_break_the_file_format_are_refused(user: str) -> None:
    with pytest.raises(ValueError, match="cannot go in an htpasswd file"):
        apr1_line(user, "pw")
