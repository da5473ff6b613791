"""`posray serve-config`: a Serve config Ray accepts, carrying the settings and no credentials."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tooling.cli import main
from deployments.serve_args import settings_from_args
from tooling.serve_config import carries_password, render, to_yaml
from posray.settings import Settings, SettingsError

BASE = Settings(redis_url="redis://10.0.1.20:6379/0", pg_dsn="postgresql://posray_app@10.0.1.21/posray",
                data_dir=Path("/var/lib/posray"), shard_count=64, replicas=4, http_host="0.0.0.0")


def app_of(config: dict) -> dict:
    (app,) = config["applications"]
    return app


class TestTheConfigFile:
    def test_ray_serve_accepts_it(self):
        from ray.serve.schema import ServeDeploySchema

        schema = ServeDeploySchema.model_validate(yaml.safe_load(to_yaml(BASE)))
        assert schema.applications[0].import_path == "deployments.app:build"

    def test_one_application_named_posray_at_the_root(self):
        app = app_of(render(BASE)[0])
        assert (app["name"], app["route_prefix"]) == ("posray", "/")

    def test_the_app_ships_no_working_dir(self):
        assert "working_dir" not in app_of(render(BASE)[0])["runtime_env"]

    def test_the_ingress_deployment_takes_its_options_from_the_settings(self):
        (deployment,) = app_of(render(BASE)[0])["deployments"]
        assert deployment == {"name": "PosrayIngress", "num_replicas": 4, "max_ongoing_requests": 2000,
                              "ray_actor_options": {"num_cpus": 0,
                                                    "runtime_env": {"env_vars": {"FORWARDED_ALLOW_IPS": ""}}},
                              "logging_config": {"enable_access_log": False}}

    def test_the_replicas_environment_is_the_one_the_code_deploys_with(self):
        from deployments.ingress import REPLICA_ENV

        (deployment,) = app_of(render(BASE)[0])["deployments"]
        assert deployment["ray_actor_options"]["runtime_env"]["env_vars"] == REPLICA_ENV

    def test_http_options_follow_the_settings(self):
        assert render(BASE)[0]["http_options"] == {"host": "0.0.0.0", "port": 8000}

    def test_the_seed_file_is_an_absolute_path(self):
        args = app_of(render(BASE.replace(data_dir=Path("rel")))[0])["args"]
        assert Path(args["operator_seed_file"]).is_absolute()

    def test_the_args_give_back_the_same_settings(self):
        args = yaml.safe_load(to_yaml(BASE))["applications"][0]["args"]
        rebuilt = settings_from_args(args, environ={})
        assert rebuilt == BASE.replace(data_dir=Settings().data_dir,
                                       operator_seed_file=Path("/var/lib/posray/keys/operator.seed"))


class TestCredentials:
    @pytest.mark.parametrize("url", ["postgresql://app:s3cret@db/posray", "redis://:s3cret@cache:6379/0",
                                     "host=db user=app password=s3cret dbname=posray"])
    def test_urls_with_a_password_are_recognised(self, url):
        assert carries_password(url)

    @pytest.mark.parametrize("url", ["postgresql://app@db/posray", "redis://cache:6379/0"])
    def test_urls_without_one_are_not(self, url):
        assert not carries_password(url)

    def test_a_password_never_reaches_the_file_and_the_file_says_how_to_set_it(self):
        text = to_yaml(BASE.replace(pg_dsn="postgresql://app:s3cret@db/posray"))
        assert "s3cret" not in text
        assert "pg_dsn" not in yaml.safe_load(text)["applications"][0]["args"]
        assert "POSRAY_PG_DSN" in text

    def test_the_command_writes_the_file_and_warns_on_stderr(self, tmp_path, monkeypatch, capsys):
        monkeypatch.setenv("POSRAY_REDIS_URL", "redis://:s3cret@cache:6379/0")
        monkeypatch.setenv("POSRAY_PG_DSN", "postgresql://app@db/posray")
        out = tmp_path / "posray.yaml"
        assert main(["--data-dir", str(tmp_path), "serve-config", "--out", str(out)]) == 0
        args = yaml.safe_load(out.read_text())["applications"][0]["args"]
        assert args["pg_dsn"] == "postgresql://app@db/posray" and "redis_url" not in args
        printed = capsys.readouterr()
        assert "s3cret" not in out.read_text() + printed.out + printed.err
        assert "POSRAY_REDIS_URL" in printed.err and "POSRAY_REDIS_URL" in out.read_text()


class TestSettingsInsideTheCluster:
    ENV = {"POSRAY_REDIS_URL": "redis://r/0", "POSRAY_PG_DSN": "postgresql://p/db"}

    def test_args_beat_the_nodes_environment(self):
        settings = settings_from_args({"shard_count": 16}, environ=self.ENV | {"POSRAY_SHARD_COUNT": "4"})
        assert settings.shard_count == 16

    def test_the_nodes_environment_fills_in_what_the_args_leave_out(self):
        assert settings_from_args({}, environ=self.ENV).pg_dsn == "postgresql://p/db"

    def test_strings_lists_and_integers_are_converted_to_the_fields_types(self):
        settings = settings_from_args({"replicas": "3", "vat_rates_bp": [0, 700], "shard_batch_wait_ms": 2,
                                       "operator_seed_file": "/etc/posray/operator.seed"}, environ=self.ENV)
        assert (settings.replicas, settings.vat_rates_bp, settings.shard_batch_wait_ms) == (3, (0, 700), 2.0)
        assert settings.operator_seed_file == Path("/etc/posray/operator.seed")

    def test_an_unknown_setting_is_refused_by_name(self):
        with pytest.raises(SettingsError, match="args.shards"):
            settings_from_args({"shards": 4}, environ=self.ENV)

    @pytest.mark.parametrize("name,value", [("shard_count", 2.5), ("redis_require_aof", 1), ("replicas", True)])
    def test_a_value_of_the_wrong_type_is_refused_by_name(self, name, value):
        with pytest.raises(SettingsError, match=f"args.{name}"):
            settings_from_args({name: value}, environ=self.ENV)

    def test_no_redis_or_postgres_anywhere_is_refused(self):
        with pytest.raises(SettingsError, match="POSRAY_REDIS_URL"):
            settings_from_args({}, environ={"POSRAY_PG_DSN": "postgresql://p/db"})
