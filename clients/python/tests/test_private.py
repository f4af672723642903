"""The saved login is written so that no link found on the way receives it."""
import os
import stat

from gatehouse.credentials import write_private


def test_a_link_planted_at_a_guessable_temporary_name_receives_nothing(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched\n")
    target = tmp_path / "credentials.json"
    os.symlink(victim, "%s.%d.tmp" % (target, os.getpid()))
    write_private(str(target), "secret\n")
    assert victim.read_text() == "untouched\n"
    assert target.read_text() == "secret\n"
    assert stat.S_IMODE(os.lstat(target).st_mode) == 0o600


def test_a_link_at_the_name_is_replaced_not_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched\n")
    target = tmp_path / "credentials.json"
    os.symlink(victim, target)
    write_private(str(target), "secret\n")
    assert victim.read_text() == "untouched\n"
    assert not os.path.islink(target)
    assert target.read_text() == "secret\n"
