"""The app on the deploying machine: which garrison.toml applies, read from disk, checked against the folder.

`find_project(folder)` finds the file (garrison.toml, else [tool.garrison] of
pyproject.toml, else the bundled sample app when asked), `load_project(path)`
reads it, hands its text to the pure `garrison.config` to parse, and checks
that the folders and files the config names exist. `Project` is the result:
the config, the file it came from and the folder of the app's code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from garrison.config import Config, parse_config, parse_toml, settings_table
from garrison.errors import ConfigError

__all__ = ["Project", "SAMPLE_APP_DIR", "find_project", "load_config", "load_project", "read_toml"]

SAMPLE_APP_DIR = Path(__file__).resolve().parent / "sample_app"


@dataclass(frozen=True)
class Project:
    """A loaded config plus where it came from."""

    config: Config
    source: Path  # the garrison.toml or pyproject.toml it was read from
    root: Path  # absolute folder of the app's code

    @property
    def is_sample(self) -> bool:
        return self.source.parent == SAMPLE_APP_DIR


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's tables; a missing or unreadable file is a ConfigError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found; run `garrison init` in the app's folder to write one") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    return parse_toml(text, path.name)


def load_config(path: Path) -> Config:
    """Load a garrison.toml, or the [tool.garrison] table of a pyproject.toml."""
    return load_project(path).config


def load_project(path: Path) -> Project:
    path = Path(path)
    data, label = settings_table(read_toml(path), path.name)
    cfg = parse_config(data, label)
    root = (path.parent / cfg.app.root).resolve()
    if not root.is_dir():
        raise ConfigError(f"{label}: app.root: expected an existing folder, got \"{cfg.app.root}\" ({root} does not exist)")
    if cfg.app.requirements and not (root / cfg.app.requirements).is_file():
        raise ConfigError(
            f"{label}: app.requirements: expected a file in the app folder, got \"{cfg.app.requirements}\" "
            f"({root / cfg.app.requirements} does not exist); set it to \"\" if the app has none"
        )
    for i, st in enumerate(cfg.app.static):
        # A release hook may create the folder on the host: Django's collectstatic
        # fills STATIC_ROOT (usually git-ignored, so absent from the source) in each
        # new release before it takes traffic. Without a hook, nothing would.
        if cfg.hooks.release and not (root / st.path).exists():
            continue
        if not (root / st.path).is_dir():
            raise ConfigError(
                f"{label}: app.static[{i}].path: expected a folder in the app folder, got \"{st.path}\" "
                f"({root / st.path} does not exist)"
            )
    return Project(config=cfg, source=path.resolve(), root=root)


def find_project(folder: Path, *, config: Path | None = None, sample_if_missing: bool = False) -> Project:
    """The project for `folder`: its garrison.toml, else pyproject's [tool.garrison].

    With `sample_if_missing`, a folder with neither (and no app code) gets the
    bundled sample app, which is what `garrison up` on a fresh machine serves.
    """
    if config is not None:
        return load_project(config)
    folder = Path(folder)
    toml = folder / "garrison.toml"
    if toml.is_file():
        return load_project(toml)
    pyproject = folder / "pyproject.toml"
    if pyproject.is_file():
        data = read_toml(pyproject)
        if "garrison" in data.get("tool", {}):
            return load_project(pyproject)
    if sample_if_missing and not _looks_like_an_app(folder):
        return load_project(SAMPLE_APP_DIR / "garrison.toml")
    raise ConfigError(
        f"{toml}: not found; run `garrison init` here to write one (or run from a folder without an app to serve the sample app)"
    )


# Garrison's own checkout (where the README runs ./up): its pyproject.toml is the
# tool's, not an app's, so `up` there serves the sample app.
_OWN_CHECKOUT = Path(__file__).resolve().parents[1]


def _looks_like_an_app(folder: Path) -> bool:
    if folder.resolve() == _OWN_CHECKOUT and (_OWN_CHECKOUT / "garrison" / "sample_app").is_dir():
        return False
    return any((folder / n).exists() for n in ("app.py", "main.py", "wsgi.py", "manage.py", "requirements.txt", "pyproject.toml"))
