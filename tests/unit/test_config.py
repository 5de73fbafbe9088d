"""clp.conf and /etc/CLP/mirrors as shipped, read under a root."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from clp_alpm.config import load_config
from clp_alpm.errors import ConfigError
from tests.kits.paths import REPO


def install_shipped(root: Path) -> None:
    (root / "etc/CLP").mkdir(parents=True)
    shutil.copy(REPO / "etc/clp.conf", root / "etc/CLP/clp.conf")
    shutil.copy(REPO / "etc/mirrors", root / "etc/CLP/mirrors")


def test_shipped_files_give_the_defaults_and_the_feed(tmp_path):
    install_shipped(tmp_path)
    config = load_config(tmp_path)
    assert config.warnings == ()
    assert (config.patch_dir, config.state_dir, config.log_file) == (
        "/opt/CLP", "/var/lib/clp", "/var/log/CLP.log")  # fmt: skip
    assert (config.siglevel, config.keyring) == ("Required", "/etc/pacman.d/gnupg")
    assert config.servers == (
        "https://repo.v38armageddon.net/vincent-os/CLP",
        "https://repo-fallback.v38armageddon.net/vincent-os/CLP",
    )


def test_include_is_read_under_the_root_not_the_host(tmp_path):
    install_shipped(tmp_path)
    (tmp_path / "etc/CLP/mirrors").write_text("Server = https://a/$arch\nServer = https://b\n")
    assert load_config(tmp_path).servers == ("https://a/$arch", "https://b")


def test_mirrors_count_without_a_clp_conf_as_clpctl_ships_them(tmp_path):
    (tmp_path / "etc/CLP").mkdir(parents=True)
    (tmp_path / "etc/CLP/mirrors").write_text("# clpctl's file\nServer = https://m/CLP\n")
    assert load_config(tmp_path).servers == ("https://m/CLP",)


def test_unknown_section_and_unreadable_file_are_one_line(tmp_path):
    (tmp_path / "etc/CLP").mkdir(parents=True)
    conf = tmp_path / "etc/CLP/clp.conf"
    conf.write_text("[option]\nSigLevel = Never\n")
    with pytest.raises(ConfigError, match=r"clp.conf:1: unknown section \[option\]"):
        load_config(tmp_path)
    conf.write_bytes(b"\xff\xfe[options]\n")
    with pytest.raises(ConfigError, match="cannot read config file .it is not UTF-8 text."):
        load_config(tmp_path)


def test_history_limit_is_read_and_defaults_to_100(tmp_path):
    install_shipped(tmp_path)
    assert load_config(tmp_path).history_limit == 100
    (tmp_path / "etc/CLP/clp.conf").write_text("[options]\nHistoryLimit = 7\n")
    assert load_config(tmp_path).history_limit == 7


@pytest.mark.parametrize("value", ["0", "-1", "ten", "1.5", "100001", ""])
def test_a_bad_history_limit_is_one_line_naming_the_file(tmp_path, value):
    (tmp_path / "etc/CLP").mkdir(parents=True)
    (tmp_path / "etc/CLP/clp.conf").write_text(f"[options]\nHistoryLimit = {value}\n")
    expected = "needs a value" if not value else "must be a whole number from 1 to 100000"
    with pytest.raises(ConfigError, match=rf"clp.conf:2: HistoryLimit {expected}"):
        load_config(tmp_path)


# -- ArchiveServer: the distribution's archive by default ---------------------------------------


def write_os_release(root: Path, text: str) -> None:
    (root / "usr/lib").mkdir(parents=True, exist_ok=True)
    (root / "usr/lib/os-release").write_text(text)
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/os-release").symlink_to("../usr/lib/os-release")  # as Arch links it


@pytest.mark.parametrize(
    ("os_release", "expected"),
    [
        ('NAME="Arch Linux"\nID=arch\n', ("https://archive.archlinux.org",)),
        ('NAME="Vincent OS"\nID=vincent\nID_LIKE="arch"\n', ("https://archive.archlinux.org",)),
        ("ID=endeavouros\nID_LIKE='arch linux'\n", ("https://archive.archlinux.org",)),
        ('ID=debian\nNAME="Debian GNU/Linux"\n', ()),
        ("ID_LIKE=archlinux\n", ()),  # a word, not a part of one
        ("", ()),
    ],
)
def test_the_shipped_file_searches_the_distributions_archive(tmp_path, os_release, expected):
    install_shipped(tmp_path)
    write_os_release(tmp_path, os_release)
    config = load_config(tmp_path)
    assert config.warnings == () and config.archive_servers is None  # the line is a comment
    assert config.archive_server_urls == expected


def test_no_os_release_no_archive(tmp_path):
    install_shipped(tmp_path)
    assert load_config(tmp_path).archive_server_urls == ()


def test_the_shipped_archive_line_uncommented_reads_as_the_default(tmp_path):
    install_shipped(tmp_path)
    conf = tmp_path / "etc/CLP/clp.conf"
    text = conf.read_text()
    assert text.count("#ArchiveServer = https://archive.archlinux.org\n") == 1
    conf.write_text(text.replace("#ArchiveServer", "ArchiveServer"))
    assert load_config(tmp_path).archive_server_urls == ("https://archive.archlinux.org",)


def test_an_archive_server_line_replaces_the_default_and_an_empty_one_turns_it_off(tmp_path):
    install_shipped(tmp_path)
    write_os_release(tmp_path, "ID=arch\n")
    conf = tmp_path / "etc/CLP/clp.conf"
    shipped = conf.read_text()
    conf.write_text(shipped + "ArchiveServer = http://127.0.0.1:9/a http://b\n")
    assert load_config(tmp_path).archive_server_urls == ("http://127.0.0.1:9/a", "http://b")
    conf.write_text(shipped + "ArchiveServer =\n")
    config = load_config(tmp_path)
    assert config.archive_servers == () and config.archive_server_urls == ()


def test_a_directory_at_etc_os_release_leaves_usr_lib_os_release(tmp_path):
    install_shipped(tmp_path)
    (tmp_path / "etc/os-release").mkdir()
    (tmp_path / "usr/lib").mkdir(parents=True)
    (tmp_path / "usr/lib/os-release").write_text("ID=arch\n")
    # a directory where the file should be is skipped, as systemd does
    assert load_config(tmp_path).archive_server_urls == ("https://archive.archlinux.org",)


def test_feed_siglevel_defaults_to_siglevel_and_is_checked(tmp_path):
    (tmp_path / "etc/CLP").mkdir(parents=True)
    conf = tmp_path / "etc/CLP/clp.conf"
    conf.write_text("[options]\nSigLevel = Optional\n")
    assert load_config(tmp_path).feed_level == "Optional"
    conf.write_text("[options]\nSigLevel = Required\nFeedSigLevel = Never\n")
    config = load_config(tmp_path)
    assert (config.siglevel, config.feed_level) == ("Required", "Never")
    conf.write_text("[options]\nFeedSigLevel = Sometimes\n")
    with pytest.raises(ConfigError, match=r"clp.conf:2: FeedSigLevel must be one of Required"):
        load_config(tmp_path)


def test_health_boots_and_timeout_are_read_and_default_to_3_and_60(tmp_path):
    install_shipped(tmp_path)
    config = load_config(tmp_path)
    assert (config.health_boots, config.health_timeout) == (3, 60)
    (tmp_path / "etc/CLP/clp.conf").write_text("[options]\nHealthBoots = 0\nHealthTimeout = 5\n")
    config = load_config(tmp_path)
    assert (config.health_boots, config.health_timeout) == (0, 5)


@pytest.mark.parametrize("value", ["-1", "three", "1.5", "101", ""])
def test_a_bad_health_boots_is_one_line_naming_the_file(tmp_path, value):
    (tmp_path / "etc/CLP").mkdir(parents=True)
    (tmp_path / "etc/CLP/clp.conf").write_text(f"[options]\nHealthBoots = {value}\n")
    expected = "needs a value" if not value else r"must be a whole number from 0 to 100 \(0"
    with pytest.raises(ConfigError, match=rf"clp.conf:2: HealthBoots {expected}"):
        load_config(tmp_path)


@pytest.mark.parametrize("value", ["0", "-5", "1m", "86401"])
def test_a_bad_health_timeout_is_one_line_naming_the_file(tmp_path, value):
    (tmp_path / "etc/CLP").mkdir(parents=True)
    (tmp_path / "etc/CLP/clp.conf").write_text(f"[options]\nHealthTimeout = {value}\n")
    with pytest.raises(ConfigError, match=r"clp.conf:2: HealthTimeout must be a number of sec"):
        load_config(tmp_path)
