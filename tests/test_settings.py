from __future__ import annotations

import sys
from pathlib import Path

import pytest

from musimilar.errors import EXIT_USAGE, SettingsError
from musimilar.settings import CONFIG_FILE_NAME, MelSettings, Settings, TrainSettings, load_settings, settings_as_toml

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

NO_ENVIRONMENT: dict[str, str] = {}


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_any_source(tmp_path: Path) -> None:
    assert load_settings(home=tmp_path, environ=NO_ENVIRONMENT) == Settings()


def test_precedence_flags_over_environment_over_toml_over_defaults(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "settings.toml", "[train]\nepochs = 5\nbatch_size = 16\nlr = 0.01\n")
    environ = {"MUSIMILAR_TRAIN_EPOCHS": "7", "MUSIMILAR_TRAIN_BATCH_SIZE": "24"}

    settings = load_settings(config, environ=environ, flags={"train.epochs": 9, "train.lr": None})

    assert settings.train.epochs == 9  # flag beats environment and file
    assert settings.train.batch_size == 24  # environment beats file
    assert settings.train.lr == 0.01  # file beats default; a flag of None was not given
    assert settings.train.temperature == TrainSettings().temperature  # default


def test_toml_in_the_home_is_read(tmp_path: Path) -> None:
    write_toml(tmp_path / CONFIG_FILE_NAME, "[mel]\nn_mels = 64\n")
    assert load_settings(home=tmp_path, environ=NO_ENVIRONMENT).mel.n_mels == 64


def test_config_option_replaces_the_home_file(tmp_path: Path) -> None:
    write_toml(tmp_path / CONFIG_FILE_NAME, "[mel]\nn_mels = 64\n[train]\nepochs = 3\n")
    config = write_toml(tmp_path / "other.toml", "[mel]\nn_mels = 96\n")

    settings = load_settings(config, home=tmp_path, environ=NO_ENVIRONMENT)

    assert settings.mel.n_mels == 96
    assert settings.train.epochs == TrainSettings().epochs  # the home's file is not merged in as well


def test_process_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSIMILAR_EMBED_CROPS", "3")
    monkeypatch.setenv("MUSIMILAR_AUGMENT_NOISE_SNR_DB", "[5, 15]")
    monkeypatch.setenv("MUSIMILAR_TRAIN_LOSS", "supcon")
    monkeypatch.setenv("MUSIMILAR_TRAIN_COMPILE", "true")

    settings = load_settings()

    assert settings.embed.crops == 3
    assert settings.augment.noise_snr_db == (5.0, 15.0)
    assert settings.train.loss == "supcon"
    assert settings.train.compile is True


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[train]\nepoch = 3\n", "train.epoch", "unknown key"),
        ('[train]\nepochs = "many"\n', "train.epochs", "integer"),
        ("[mel]\nn_mels = 2\n", "mel.n_mels", "greater than or equal to 8"),
        ("[trian]\nepochs = 3\n", "trian", "unknown key"),
    ],
)
def test_bad_toml_names_the_file_and_the_key(tmp_path: Path, text: str, key: str, problem: str) -> None:
    config = write_toml(tmp_path / "bad.toml", text)

    with pytest.raises(SettingsError) as caught:
        load_settings(config, environ=NO_ENVIRONMENT)

    assert str(caught.value).startswith(f"{config}: {key}: ")
    assert problem in str(caught.value)
    assert "\n" not in str(caught.value)
    assert caught.value.exit_code == EXIT_USAGE


def test_top_level_value_outside_a_section_is_rejected(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "bad.toml", "epochs = 3\n")
    with pytest.raises(SettingsError, match=r"bad\.toml: epochs: expected a \[section\] table"):
        load_settings(config, environ=NO_ENVIRONMENT)


def test_invalid_toml_and_missing_file_name_the_file(tmp_path: Path) -> None:
    broken = write_toml(tmp_path / "broken.toml", "[train\nepochs = \n")
    with pytest.raises(SettingsError, match=r"broken\.toml: not valid TOML"):
        load_settings(broken, environ=NO_ENVIRONMENT)
    with pytest.raises(SettingsError, match=r"absent\.toml: no such settings file"):
        load_settings(tmp_path / "absent.toml", environ=NO_ENVIRONMENT)


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={"MUSIMILAR_TRAIN_EPOCHS": "many"})
    assert str(caught.value).startswith("environment: MUSIMILAR_TRAIN_EPOCHS: ")
    assert "integer" in str(caught.value)


def test_bad_flag_value_names_the_setting() -> None:
    with pytest.raises(SettingsError, match=r"^command line: train\.epochs: "):
        load_settings(environ=NO_ENVIRONMENT, flags={"train.epochs": 0})


def test_combination_across_sources_is_checked(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "band.toml", "[mel]\nf_max = 4000.0\n")
    with pytest.raises(SettingsError, match="f_max must be above f_min"):
        load_settings(config, environ={"MUSIMILAR_MEL_F_MIN": "5000"})


def test_settings_as_toml_round_trips(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {
            "mel": {"n_mels": 96, "f_min": 30.0, "f_max": 8000.0, "amin": 1e-10},
            "augment": {"noise_snr_db": (12.5, 20.0), "per_view": 2},
            "model": {"size": "base", "channels": (16, 32, 64)},
            "train": {"by": 'my "genre" \\ label', "minutes": 2.5, "compile": True, "lr": 3e-4},
        }
    )

    text = settings_as_toml(settings)

    assert Settings.model_validate(tomllib.loads(text)) == settings
    assert load_settings(write_toml(tmp_path / "shown.toml", text), environ=NO_ENVIRONMENT) == settings


def test_settings_as_toml_of_the_defaults_round_trips() -> None:
    text = settings_as_toml(Settings())
    assert Settings.model_validate(tomllib.loads(text)) == Settings()
    assert "# f_max = (unset)" in text


def test_instances_do_not_share_section_defaults() -> None:
    first = Settings()
    first.mel.n_mels = 64
    assert Settings().mel.n_mels == MelSettings().n_mels == 128


def test_player_sections_read_from_toml_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "players.toml"
    config.write_text('[subsonic]\nurl = "http://127.0.0.1:4533"\nuser = "me"\n[mpd]\nkeep = 8\n[playlist]\n')
    settings = load_settings(config, environ={"MUSIMILAR_SUBSONIC_SERVER_ROOT": "/music"})
    assert (settings.subsonic.url, settings.subsonic.user, settings.subsonic.server_root) == (
        "http://127.0.0.1:4533",
        "me",
        "/music",
    )
    assert settings.mpd.keep == 8 and settings.playlist.relative_to is None


@pytest.mark.parametrize("section", ["subsonic", "mpd"])
def test_a_password_is_never_a_setting(tmp_path: Path, section: str) -> None:
    config = tmp_path / "secret.toml"
    config.write_text(f'[{section}]\npassword = "hunter2"\n')
    with pytest.raises(SettingsError) as caught:
        load_settings(config, environ={})
    variable = f"MUSIMILAR_{section.upper()}_PASSWORD"
    assert str(caught.value) == f"{config}: {section}: passwords are not settings: set {variable} or answer the prompt"
    assert "hunter2" not in str(caught.value)
    assert load_settings(environ={variable: "hunter2"}) == Settings()  # the variable is a secret, not a setting


def test_infonce_needs_pairs_of_crops() -> None:
    from musimilar.settings import TrainSettings

    with pytest.raises(ValueError, match="views_per_track = 2"):
        TrainSettings(loss="infonce")
    assert TrainSettings(loss="infonce", views_per_track=2).loss == "infonce"
    assert TrainSettings().views_per_track == 4
