"""The `[sync]` setting: replay by default, snapshot by the config file or `node run --sync`;
anything else is a coded configuration error."""

from __future__ import annotations

from pathlib import Path

import pytest

from bilayer.errors import ConfigError
from bilayer.node.config import NodeConfig, NodeHome, SyncConfig, load_config, write_config


def test_a_new_node_replays_by_default_and_joins_by_snapshot_when_set(tmp_path: Path) -> None:
    assert NodeConfig().sync.mode == "replay"
    home = NodeHome(tmp_path)
    write_config(home, NodeConfig(sync=SyncConfig(mode="snapshot", chunk_nodes=300)))
    loaded = load_config(home).sync
    assert (loaded.mode, loaded.chunk_nodes) == ("snapshot", 300)


@pytest.mark.parametrize(("old", "new"), [('mode = "snapshot"', 'mode = "fast"'),
                                          ("chunk_nodes = 300", "chunk_nodes = 0"),
                                          ("chunk_nodes = 300", "chunk_nodes = 8001"),
                                          ("chunk_burst = 100.0", "chunk_burst = 0.5"),
                                          ("chunk_rate = 50.0", "chunk_rate = -1.0")])
def test_a_bad_sync_setting_is_refused_with_a_code(tmp_path: Path, old: str, new: str) -> None:
    home = NodeHome(tmp_path)
    write_config(home, NodeConfig(sync=SyncConfig(mode="snapshot", chunk_nodes=300)))
    text = home.config_file.read_text()
    assert old in text
    home.config_file.write_text(text.replace(old, new))
    with pytest.raises(ConfigError) as refused:
        load_config(home)
    assert refused.value.code == "config_error"
