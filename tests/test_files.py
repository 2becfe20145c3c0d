"""alexnet_lib.files: the ownership rule (what the project may clean or replace), debris
matched by exact names, and YAML read back under a size and alias budget."""

import os
import time

import pytest
from helpers.hostile import ALIAS_BOMB

from alexnet_lib.files import (
    _HOST,
    MARKER,
    YAML_MAX_NODES,
    claim_folder,
    dump_yaml,
    load_yaml,
    read_yaml,
    remove_debris,
    replace_folder,
    temp_name,
)

DEAD = 4_194_304 + 1  # above Linux's largest pid: no live process has it



def test_debris_is_only_the_project_writers_own_temporary_names(tmp_path):
    """Only ``.<name>.<host>-<pid>.tmp[.<suffix>]`` of a dead writer, for a name the caller
    writes there, is removed: a person's ``.report.2024.tmp`` stays, and so does a live
    writer's file and another writer's name."""
    mine = [tmp_path / f".history.csv.{_HOST}-{DEAD}.tmp",
            tmp_path / f".best.keras.{_HOST}-{DEAD}.tmp.keras"]
    theirs = [tmp_path / ".report.2024.tmp", tmp_path / ".data.999999.tmp",
              tmp_path / f".notes.txt.{_HOST}-{DEAD}.tmp",  # a name the caller does not write
              temp_name(tmp_path / "history.csv")]  # this live process's
    for path in mine + theirs:
        path.write_bytes(b"x")
    (tmp_path / ".cache.4242.tmp").mkdir()
    (tmp_path / ".cache.4242.tmp" / "inside").write_bytes(b"x")
    removed = remove_debris(tmp_path, ["history.csv", "*.keras"])
    assert sorted(removed) == sorted(mine)
    assert all(p.exists() for p in theirs) and (tmp_path / ".cache.4242.tmp" / "inside").exists()


def test_another_hosts_debris_goes_only_when_a_day_old(tmp_path):
    fresh = tmp_path / f".a.yaml.otherhost-{DEAD}.tmp"
    old = tmp_path / f".b.yaml.otherhost-{DEAD}.tmp"
    fresh.write_bytes(b"x")
    old.write_bytes(b"x")
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    assert remove_debris(tmp_path, ["*.yaml"]) == [old]


def test_a_folder_is_claimed_only_when_new_empty_marked_or_proven(tmp_path):
    new = tmp_path / "a" / "new"
    assert claim_folder(new, what="a run folder", option="--run-dir") is True
    assert (new / MARKER).is_file()
    assert claim_folder(new, what="a run folder", option="--run-dir") is False  # marked
    empty = tmp_path / "empty"
    empty.mkdir()
    assert claim_folder(empty, what="a run folder", option="--run-dir") is False
    assert (empty / MARKER).is_file()
    proven = tmp_path / "proven"
    proven.mkdir()
    (proven / "config.yaml").write_text("x: 1\n")
    assert claim_folder(proven, what="a run folder", option="--run-dir",
                        proof=lambda f: (f / "config.yaml").is_file()) is False
    assert not (proven / MARKER).exists()
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "metrics.json").write_text("{}")
    with pytest.raises(ValueError, match=r"--run-dir .*theirs is not empty and is not a run "
                                         r"folder \(metrics.json\)"):
        claim_folder(theirs, what="a run folder", option="--run-dir")
    assert [p.name for p in theirs.iterdir()] == ["metrics.json"]
    with pytest.raises(ValueError, match="is a file, not a folder"):
        claim_folder(theirs / "metrics.json", what="a run folder", option="--run-dir")


def test_a_folder_is_replaced_only_when_empty_or_marked(tmp_path):
    def staged(name):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "saved_model.pb").write_text(name)
        return folder

    target = tmp_path / "out"
    replace_folder(staged("one"), target, "mark.json", what="an export", option="--out")
    assert (target / "saved_model.pb").read_text() == "one"
    with pytest.raises(ValueError, match="is not empty and is not an export"):
        replace_folder(staged("two"), target, "mark.json", what="an export", option="--out")
    assert (target / "saved_model.pb").read_text() == "one"
    (target / "mark.json").write_text("{}")
    replace_folder(tmp_path / "two", target, "mark.json", what="an export", option="--out")
    assert (target / "saved_model.pb").read_text() == "two"


@pytest.mark.parametrize("text, message", [
    (ALIAS_BOMB, f"expand to more than {YAML_MAX_NODES:,} values"),
    ("a: &a [1, *a]\n", "refers to a value that contains it"),
    ('!!python/object/apply:os.system ["echo owned > {marker}"]\n', "python/object/apply"),
    ("[" * 5000 + "]" * 5000, "cannot be read"),
    ("a: [1, 2\n", "cannot be read"),
])
def test_hostile_yaml_is_one_error_within_a_second(tmp_path, text, message):
    marker = tmp_path / "executed"
    started = time.monotonic()
    with pytest.raises(ValueError, match="f.yaml cannot be read as this project's YAML") as error:
        load_yaml(text.format(marker=marker), "f.yaml")
    assert message in str(error.value)
    assert time.monotonic() - started < 1.0
    assert not marker.exists()  # nothing was executed


def test_yaml_files_are_read_with_their_limits_and_written_without_aliases(tmp_path):
    shared = [1, 2]
    text = dump_yaml({"b": shared, "a": shared})
    assert "&" not in text and "*" not in text
    assert list(load_yaml(text, "x")) == ["b", "a"]  # the order given
    path = tmp_path / "big.yaml"
    path.write_text("x: " + "y" * (2 << 20))
    with pytest.raises(ValueError, match="more than the 1,048,576"):
        read_yaml(path, "The file")
    os.mkfifo(tmp_path / "fifo.yaml")
    with pytest.raises(ValueError, match="is not a regular file"):
        read_yaml(tmp_path / "fifo.yaml", "The file")
