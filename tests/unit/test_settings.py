"""Settings: defaults < POSRAY_* environment < explicit arguments; typed, named errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from posray.settings import Settings, SettingsError


class TestParsingFromEnvironment:
    def test_no_variables_gives_the_defaults(self):
        assert Settings.from_env({}) == Settings()

    def test_integers_are_parsed(self):
        settings = Settings.from_env({"POSRAY_HTTP_PORT": "9000", "POSRAY_SHARD_COUNT": "16"})
        assert (settings.http_port, settings.shard_count) == (9000, 16)

    def test_floats_are_parsed(self):
        settings = Settings.from_env({"POSRAY_SHARD_BATCH_WAIT_MS": "0.5"})
        assert settings.shard_batch_wait_ms == 0.5

    @pytest.mark.parametrize("text", ["1", "true", "TRUE", "yes", "On"])
    def test_true_booleans_are_parsed(self, text):
        assert Settings.from_env({"POSRAY_REDIS_REQUIRE_AOF": text}).redis_require_aof is True

    @pytest.mark.parametrize("text", ["0", "false", "False", "no", "OFF"])
    def test_false_booleans_are_parsed(self, text):
        assert Settings.from_env({"POSRAY_REDIS_REQUIRE_AOF": text}).redis_require_aof is False

    def test_tuples_of_integers_are_comma_separated(self):
        settings = Settings.from_env({"POSRAY_VAT_RATES_BP": "0, 700,1900,"})
        assert settings.vat_rates_bp == (0, 700, 1900)

    def test_paths_are_parsed(self):
        settings = Settings.from_env(
            {"POSRAY_DATA_DIR": "/var/lib/posray", "POSRAY_OPERATOR_SEED_FILE": "/run/seed"}
        )
        assert settings.data_dir == Path("/var/lib/posray")
        assert settings.operator_seed_file == Path("/run/seed")

    def test_strings_are_taken_as_given(self):
        settings = Settings.from_env({"POSRAY_REDIS_URL": "redis://cache:6379/0"})
        assert settings.redis_url == "redis://cache:6379/0"

    def test_variables_without_the_posray_prefix_are_ignored(self):
        assert Settings.from_env({"HTTP_PORT": "1", "posray_http_port": "2"}).http_port == 8000

    def test_the_process_environment_is_read_when_none_is_given(self, monkeypatch):
        monkeypatch.setenv("POSRAY_REPLICAS", "5")
        assert Settings.from_env().replicas == 5


class TestPrecedence:
    def test_the_environment_beats_the_default(self):
        assert Settings.from_env({"POSRAY_REPLICAS": "4"}).replicas == 4

    def test_an_explicit_argument_beats_the_environment(self):
        assert Settings.from_env({"POSRAY_REPLICAS": "4"}, replicas=7).replicas == 7

    def test_explicit_arguments_and_environment_variables_combine(self):
        settings = Settings.from_env({"POSRAY_HTTP_PORT": "9000"}, shard_count=3)
        assert (settings.http_port, settings.shard_count) == (9000, 3)


class TestErrors:
    @pytest.mark.parametrize(
        "name, text",
        [
            ("POSRAY_HTTP_PORT", "eighty"),
            ("POSRAY_HTTP_PORT", "80.5"),
            ("POSRAY_SHARD_BATCH_WAIT_MS", "fast"),
            ("POSRAY_REDIS_REQUIRE_AOF", "maybe"),
            ("POSRAY_VAT_RATES_BP", "0,7%"),
        ],
    )
    def test_a_bad_value_raises_settings_error_naming_the_variable(self, name, text):
        with pytest.raises(SettingsError, match=name) as caught:
            Settings.from_env({name: text})
        assert repr(text) in str(caught.value)

    def test_settings_error_is_a_value_error(self):
        assert issubclass(SettingsError, ValueError)


class TestRepr:
    @pytest.mark.parametrize(
        "field, value, shown",
        [
            ("redis_url", "redis://:s3cret@cache.internal:6379/0", "redis://<credentials>@cache"),
            ("pg_dsn", "postgresql://posray:s3cret@db:5432/x", "postgresql://<credentials>@db"),
            ("pg_dsn", "postgresql://posray:pa@s3cret@db/posray", "<credentials>@db/posray"),
            ("redis_url", "posray:s3cret@cache:6379", "'<credentials>@cache:6379'"),
        ],
    )
    def test_credentials_in_urls_and_dsns_are_redacted(self, field, value, shown):
        text = repr(Settings(**{field: value}))
        assert "s3cret" not in text
        assert shown in text

    def test_a_url_without_credentials_is_shown_whole(self):
        assert "redis://cache:6379/0" in repr(Settings(redis_url="redis://cache:6379/0"))

    def test_the_repr_leaves_the_value_itself_untouched(self):
        settings = Settings(pg_dsn="postgresql://u:s3cret@db/x")
        assert settings.pg_dsn == "postgresql://u:s3cret@db/x"


class TestDerivedValues:
    def test_the_seed_file_defaults_under_the_data_dir(self):
        assert Settings(data_dir=Path("/d")).seed_file == Path("/d/keys/operator.seed")

    def test_an_explicit_seed_file_wins(self):
        settings = Settings(data_dir=Path("/d"), operator_seed_file=Path("/s"))
        assert settings.seed_file == Path("/s")

    def test_idempotency_keys_outlive_the_upload_window_and_skew(self):
        settings = Settings(upload_window_s=1000, future_skew_s=10)
        assert settings.idempotency_ttl_s > 1010

    def test_replace_returns_a_changed_copy_and_settings_are_frozen(self):
        settings = Settings()
        assert settings.replace(replicas=9).replicas == 9
        assert settings.replicas == 2
        with pytest.raises(dataclasses.FrozenInstanceError):
            settings.replicas = 3


class TestReplicatedCaptureSettings:
    def test_sentinels_are_host_port_pairs_separated_by_commas(self):
        settings = Settings.from_env({"POSRAY_REDIS_SENTINELS": "10.0.0.1:26379, sentinel-b:26380,[::1]:26381"})
        assert settings.sentinels == (("10.0.0.1", 26379), ("sentinel-b", 26380), ("::1", 26381))

    def test_no_sentinels_by_default_and_capture_waits_for_no_replica(self):
        settings = Settings()
        assert (settings.sentinels, settings.capture_replicas_min) == ((), 0)

    @pytest.mark.parametrize("text", ["10.0.0.1", "10.0.0.1:", ":26379", "host:port", "h:70000", "h:0"])
    def test_a_malformed_sentinel_list_names_the_variable(self, text):
        with pytest.raises(SettingsError, match="POSRAY_REDIS_SENTINELS"):
            Settings.from_env({"POSRAY_REDIS_SENTINELS": text})

    def test_sentinels_without_a_master_name_are_refused(self):
        with pytest.raises(SettingsError, match="POSRAY_REDIS_MASTER"):
            Settings.from_env({"POSRAY_REDIS_SENTINELS": "h:26379", "POSRAY_REDIS_MASTER": ""})

    def test_a_negative_replica_count_is_refused(self):
        with pytest.raises(SettingsError, match="POSRAY_CAPTURE_REPLICAS_MIN"):
            Settings.from_env({"POSRAY_CAPTURE_REPLICAS_MIN": "-1"})

    def test_the_store_id_of_a_sentinel_set_is_its_master_name_whatever_the_primary(self):
        a = Settings(redis_url="redis://10.0.0.1:6379/0", redis_sentinels="s:26379", redis_master="pos")
        b = a.replace(redis_url="redis://10.0.0.2:6379/0", redis_sentinels="t:26379")
        assert a.capture_store_id == b.capture_store_id == "sentinel:pos#posray"

    def test_the_store_id_without_sentinels_is_the_redacted_url(self):
        settings = Settings(redis_url="redis://:secret@10.0.0.1:6379/0")
        assert settings.capture_store_id == "redis://<credentials>@10.0.0.1:6379/0#posray"
