"""Finding and creating a workspace: the directory holding engrain.toml, with its state in .engrain/."""
from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from datagen.config import DEFAULT_TOML, DatasetConfig, parse_config
from datagen import safefs
from datagen.errors import DatagenError, PathOutsideWorkspace, WorkspaceNotFound

CONFIG_NAME = "engrain.toml"
STATE_NAME = ".engrain"


class Workspace(BaseModel):
    model_config = ConfigDict(frozen=True)

    root: Path
    config: DatasetConfig
    raw: dict[str, Any]

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_NAME

    @property
    def db_path(self) -> Path:
        return self.state_dir / "engrain.db"

    @property
    def database(self) -> Path | str:
        """What the store opens: the configured database URL (a relative sqlite:/// path counts from the
        workspace root), else the SQLite file in .engrain/."""
        url = self.config.database_url
        if url and url.startswith("sqlite:///"):
            return self.root / Path(url.removeprefix("sqlite:///")).expanduser()
        return url or self.db_path

    @property
    def cache_dir(self) -> Path:
        return self.state_dir / "cache"

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"

    def inside(self, path: Path) -> Path:
        """`path` resolved, or PathOutsideWorkspace when it escapes the workspace root."""
        resolved = Path(path).expanduser().resolve()
        try:
            resolved.relative_to(self.root)
        except ValueError:
            raise PathOutsideWorkspace(
                f"{resolved} is outside the workspace {self.root}; choose a path inside it or pass --force"
            ) from None
        return resolved


def load_workspace(root: Path) -> Workspace:
    root = Path(root).expanduser().resolve()
    path = root / CONFIG_NAME
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WorkspaceNotFound(f"no {CONFIG_NAME} in {root}; run `engrain init` there first") from None
    except tomllib.TOMLDecodeError as exc:
        raise DatagenError(f"{path} is not valid TOML ({exc}); fix it and run the command again") from exc
    except UnicodeDecodeError as exc:
        raise DatagenError(f"{path} is not text (invalid UTF-8 at byte {exc.start}); restore it from version "
                           "control, or move it away and run `engrain init`") from None
    (root / STATE_NAME).mkdir(exist_ok=True)
    return Workspace(root=root, config=parse_config(raw), raw=raw)


def workspace_root(start: Path | None = None) -> Path | None:
    """The directory holding engrain.toml, or None. The one place every command finds its workspace: at or above
    `start` (--workspace DIR); without it, at or above $ENGRAIN_WORKSPACE; without that, at or above the cwd, then
    at or above $CLAUDE_PROJECT_DIR (where Claude Code runs the MCP server)."""
    if start is None and os.environ.get("ENGRAIN_WORKSPACE"):
        start = Path(os.environ["ENGRAIN_WORKSPACE"])
    candidates = [Path(start)] if start is not None else [Path.cwd()]
    if start is None and os.environ.get("CLAUDE_PROJECT_DIR"):
        candidates.append(Path(os.environ["CLAUDE_PROJECT_DIR"]))
    for base in candidates:
        base = base.expanduser().resolve()
        for directory in (base, *base.parents):
            if (directory / CONFIG_NAME).is_file():
                return directory
    return None


def find_workspace(start: Path | None = None) -> Workspace:
    """The workspace `workspace_root` finds, loaded; WorkspaceNotFound when there is none."""
    root = workspace_root(start)
    if root is None:
        where = start if start is not None else os.environ.get("ENGRAIN_WORKSPACE") or Path.cwd()
        raise WorkspaceNotFound(f"no {CONFIG_NAME} found from {where} upward; run `engrain init` in your project "
                                "or pass --workspace DIR (or set ENGRAIN_WORKSPACE)")
    return load_workspace(root)


def init_workspace(root: Path, *, force: bool = False, template: Path | None = None,
                   extra_toml: Sequence[str] = ()) -> list[Path]:
    """Write engrain.toml and .engrain/ under `root`; returns the files written (none when already there)."""
    root = Path(root).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    config_path = root / CONFIG_NAME
    if force or not config_path.exists():
        text = _template_text(template)
        present = tomllib.loads(text).keys()
        for fragment in extra_toml:
            # A template that already configures a section (e.g. [training]) keeps its own version.
            if not present & tomllib.loads(fragment).keys():
                text = text.rstrip("\n") + "\n\n" + fragment.strip("\n") + "\n"
        parse_config(tomllib.loads(text))  # refuse to write a file that the next command cannot read
        with safefs.open_for_write(root, config_path, force=True) as handle:
            handle.write(text)
        written.append(config_path)
    state = root / STATE_NAME
    state.mkdir(exist_ok=True)
    ignore = state / ".gitignore"
    if not ignore.exists():
        # The database and caches are machine state, not source: keep them out of the user's commits.
        with safefs.open_for_write(root, ignore, force=False) as handle:
            handle.write("*\n")
        written.append(ignore)
    from datagen import store  # the database is created here so concurrent first writers find it ready

    store.connect(load_workspace(root).database)
    return written


def _template_text(template: Path | None) -> str:
    if template is None:
        return DEFAULT_TOML
    source = Path(template).expanduser()
    source = source / CONFIG_NAME if source.is_dir() else source
    if not source.is_file():
        raise DatagenError(f"template {template} has no {CONFIG_NAME}; pass a workspace directory")
    return source.read_text(encoding="utf-8")
