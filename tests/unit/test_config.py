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
    assert config.servers == ("https://repo.v38armageddon.net/vincent-os/CLP",)


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
