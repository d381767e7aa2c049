"""The state retention setting: a number of heights (at least 2) or archive, from the config
file or `node run --retain`; anything else is a coded configuration error."""

from __future__ import annotations

from pathlib import Path

import pytest

from bilayer.errors import ConfigError
from bilayer.node.config import NodeConfig, NodeHome, StateConfig, load_config, parse_retain, write_config


def test_the_default_keeps_ten_thousand_heights_and_archive_keeps_all() -> None:
    assert NodeConfig().state.keep_heights == 10_000
    assert StateConfig("archive").keep_heights is None
    assert parse_retain("archive") == "archive" and parse_retain("2") == 2


@pytest.mark.parametrize("text", ["1", "0", "-5", "all", "", "2.5"])
def test_a_retain_option_that_is_neither_a_count_nor_archive_is_refused(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_retain(text)
    assert caught.value.code == "config_error"


def test_the_config_file_is_read_and_checked(tmp_path: Path) -> None:
    home = NodeHome(tmp_path)
    write_config(home, NodeConfig(state=StateConfig(500)))
    assert load_config(home).state.keep_heights == 500
    home.config_file.write_text(home.config_file.read_text().replace("retain = 500", 'retain = "archive"'))
    assert load_config(home).state.keep_heights is None
    home.config_file.write_text(home.config_file.read_text().replace('retain = "archive"', "retain = 1"))
    with pytest.raises(ConfigError, match=r"state\.retain"):
        load_config(home)
    home.config_file.write_text(home.config_file.read_text().replace("retain = 1", 'retain = "forever"'))
    with pytest.raises(ConfigError):
        load_config(home)
