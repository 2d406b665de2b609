"""data.files: an OSError told as one line naming its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from data.files import ensure_writable, not_a, os_error_line


def test_a_folder_asked_for_where_a_file_is_says_so(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(OSError) as err:  # --out a-file/x.pt: its folder is a file
        ensure_writable(tmp_path / "a-file")
    assert os_error_line(err.value) == f"{tmp_path / 'a-file'}: a file, where a folder is needed"  # "File exists"
    with pytest.raises(OSError) as err:
        ensure_writable(tmp_path / "a-file" / "sub")
    assert os_error_line(err.value) == f"{tmp_path / 'a-file'}: a file, where a folder is needed"  # "Not a directory"
    assert [not_a("folder", tmp_path / "a-file"), not_a("file", tmp_path), not_a("file", tmp_path / "nope")] == [
        "a file, where a folder is needed",
        "a folder, where a file is needed",
        "no such file",
    ]
