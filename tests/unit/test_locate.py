"""Where the posray command finds its deployment, and the deployment's Ray token file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from posray import locate, ray_auth


@pytest.fixture
def in_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


class TestFindDataDir:
    def test_the_pointer_of_the_last_up_is_found_from_another_folder(self, in_folder, tmp_path):
        env = {"HOME": str(tmp_path / "home")}
        deployed = tmp_path / "clone" / ".posray"
        deployed.mkdir(parents=True)
        pointer = locate.remember(deployed, env)
        assert pointer == tmp_path / "home" / ".config" / "posray" / "current"
        assert locate.find_data_dir(None, env) == deployed.resolve()

    def test_posray_data_dir_and_the_flag_override_the_pointer(self, in_folder, tmp_path):
        env = {"HOME": str(tmp_path / "home"), "POSRAY_DATA_DIR": str(tmp_path / "env")}
        locate.remember(in_folder, env)
        assert locate.find_data_dir(None, env) == (tmp_path / "env").resolve()
        assert locate.find_data_dir(str(tmp_path / "flag"), env) == (tmp_path / "flag").resolve()

    def test_xdg_config_home_holds_the_pointer_when_set(self, tmp_path):
        env = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
        assert locate.pointer_file(env) == tmp_path / "xdg" / "posray" / "current"

    def test_a_deployment_in_the_current_folder_wins_over_the_pointer(self, in_folder, tmp_path):
        env = {"HOME": str(tmp_path / "home")}
        other = tmp_path / "other"
        other.mkdir()
        locate.remember(other, env)
        (in_folder / ".posray").mkdir()
        (in_folder / ".posray" / "state.json").write_text("{}")
        assert locate.find_data_dir(None, env) == (in_folder / ".posray").resolve()

    def test_a_pointer_to_a_vanished_folder_is_ignored(self, in_folder, tmp_path):
        env = {"HOME": str(tmp_path / "home")}
        locate.remember(tmp_path / "gone", env)
        assert locate.find_data_dir(None, env) == (in_folder / ".posray").resolve()


class TestRayToken:
    def test_the_token_file_is_private_and_created_once(self, tmp_path):
        path = ray_auth.create_token(tmp_path)
        token = path.read_text()
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
        assert len(bytes.fromhex(token)) == ray_auth.TOKEN_BYTES
        assert ray_auth.create_token(tmp_path).read_text() == token

    def test_a_deployment_token_replaces_an_inherited_one(self, tmp_path, monkeypatch):
        monkeypatch.setenv("RAY_AUTH_TOKEN", "from-the-shell")
        monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", "/restored/after/the/test")
        ray_auth.create_token(tmp_path)
        ray_auth.use_deployment_token(tmp_path)
        assert "RAY_AUTH_TOKEN" not in os.environ
        assert Path(os.environ["RAY_AUTH_TOKEN_PATH"]) == ray_auth.token_path(tmp_path)
        assert os.environ["RAY_AUTH_MODE"] == "token"

    def test_without_a_deployment_token_the_shells_settings_stay(self, tmp_path, monkeypatch):
        monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", "/somewhere/else")
        monkeypatch.setenv("RAY_AUTH_MODE", "token")
        ray_auth.use_deployment_token(tmp_path)
        assert os.environ["RAY_AUTH_TOKEN_PATH"] == "/somewhere/else"
