"""The writing rules every command shares: an existing output is refused unless --overwrite; folders appear whole."""

import pytest

from namespace.files import atomic_folder, atomic_write, check_new_output


def test_an_existing_output_is_refused_naming_the_argument(tmp_path):
    (tmp_path / "alice.safetensors").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match=r"--output: expected a new file, '.*alice.safetensors' already exists"):
        check_new_output(tmp_path / "alice.safetensors", "--output", overwrite=False)
    assert check_new_output(tmp_path / "alice.safetensors", "--output", overwrite=True).name == "alice.safetensors"
    assert check_new_output(tmp_path / "new.safetensors", "--output", overwrite=False).name == "new.safetensors"


def test_an_empty_folder_is_new_a_used_one_is_not(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "used").mkdir()
    (tmp_path / "used/000.png").write_bytes(b"png")
    assert check_new_output(tmp_path / "empty", "--output", overwrite=False, folder=True).is_dir()
    with pytest.raises(FileExistsError, match=r"\(a non-empty folder\); choose another path or pass --overwrite true"):
        check_new_output(tmp_path / "used", "--output", overwrite=False, folder=True)


def test_a_folder_appears_whole_and_a_failed_write_leaves_the_previous_one(tmp_path):
    def write(folder, text):
        (folder / "config.json").write_text(text)
        (folder / "weights.safetensors").write_text(text)

    atomic_folder(tmp_path / "encoder", lambda folder: write(folder, "first"))
    assert (tmp_path / "encoder/config.json").read_text() == "first"

    def killed(folder):
        (folder / "weights.safetensors").write_text("half")
        raise KeyboardInterrupt  # killed mid-export

    with pytest.raises(KeyboardInterrupt):
        atomic_folder(tmp_path / "encoder", killed)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encoder"]  # no temporary folder left behind
    assert (tmp_path / "encoder/weights.safetensors").read_text() == "first"
    atomic_folder(tmp_path / "encoder", lambda folder: write(folder, "second"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encoder"]
    assert (tmp_path / "encoder/config.json").read_text() == "second"


def test_an_empty_folder_claimed_beforehand_is_filled_in_one_step(tmp_path):
    """The app claims a story folder with mkdir, then writes it whole: the name is never free in between."""
    (tmp_path / "story").mkdir()
    inode = (tmp_path / "story").stat().st_ino
    atomic_folder(tmp_path / "story", lambda folder: (folder / "story.json").write_text("{}"))
    assert (tmp_path / "story/story.json").read_text() == "{}" and (tmp_path / "story").stat().st_ino != inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["story"]


def test_atomic_write_leaves_no_half_file(tmp_path):
    def killed(temporary):
        temporary.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "metrics.json", killed)
    assert list(tmp_path.iterdir()) == []
