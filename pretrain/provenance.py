"""What a result records about its making: the weights' hash, the default backbone, versions.

Torch-free, so the app can check a cached space against its weights at start-up without
importing torch.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

from pretrain import config
from pretrain.files import sha256_file


def default_backbone_path() -> Path:
    """The backbone shipped in ``assets/``."""
    return config.ASSETS_DIR / config.DEFAULT_BACKBONE_FILE


def weights_sha256(path: str | Path) -> str:
    """Content hash of a weights file: the provenance key of everything embedded with it.

    Remembered per version of the file (its inode, times and size: a rewrite changes
    them): the app asks on every rerun, and a backbone is tens of MB.
    """
    st = Path(path).stat()
    return _cached_sha256(str(path), (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size))


@functools.lru_cache(maxsize=8)
def _cached_sha256(path: str, version: tuple[int, ...]) -> str:
    return sha256_file(path)


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages a representation or a map depends on."""
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for name in ("torch", "numpy", "scikit-learn", "umap-learn", "pandas", "pyarrow"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
