"""Whether Ray Tune's saved experiment state can be restored, checked before ``Tuner.restore``.

Tune copies its experiment state (``tuner.pkl``, ``experiment_state-*.json``, the searcher's
``searcher-state-*.pkl`` or ``basic-variant-state-*.json``) into the storage folder in place, so a
driver killed during a copy leaves a file empty or cut short. ``Tuner.restore`` then fails, or
worse, Tune logs "Failed to restore the run state" and runs an empty experiment, whose results
hold no study at all (seen with the driver killed at random points). Such a folder is moved aside
(kept as ``<name>.incomplete-<time>``, nothing is deleted) with a warning, and the caller starts
a fresh Tune experiment.
"""

from __future__ import annotations

import io
import json
import logging
import pickletools
import time
import zipfile
from pathlib import Path

log = logging.getLogger("raynas")

#: Tune's pickles in an experiment folder; the newest of each is the one ``Tuner.restore`` reads.
PICKLES = ("tuner.pkl", "searcher-state-*.pkl", "basic-variant-state-*.json")


def state_problem(folder: Path) -> str | None:
    """Why the Tune experiment in ``folder`` cannot be restored exactly, or None when it can.

    Pickles are only parsed (:func:`pickletools.genops`), never loaded, so no code runs here.
    """
    states = sorted(folder.glob("experiment_state-*.json"))
    if not states:
        return "no experiment state"
    try:
        json.loads(states[-1].read_text())
    except (OSError, ValueError):
        return f"{states[-1].name} is cut short"
    for pattern in PICKLES:
        files = sorted(folder.glob(pattern))
        if files and not _whole_pickle(files[-1]):
            return f"{files[-1].name} is {'empty' if files[-1].stat().st_size == 0 else 'cut short'}"
    return None


def _whole_pickle(path: Path) -> bool:
    """Whether ``path`` holds a whole pickle, or a whole ``torch.save`` archive.

    A raynas searcher saves its state with ``torch.save`` (a zip archive, no pickle of code)
    under the name Tune gives it, ``searcher-state-*.pkl``; a cut archive fails the zip check.
    """
    data = path.read_bytes()
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                return archive.testzip() is None
        except (zipfile.BadZipFile, OSError, EOFError):
            return False
    try:
        for _ in pickletools.genops(data):
            pass
    except Exception:  # e.g. ValueError: the pickle ends before its STOP opcode
        return False
    return True


def restorable(folder: Path, what: str, then: str) -> bool:
    """Whether ``Tuner.restore`` can restore ``folder`` exactly; if not, move it aside with a warning.

    Args:
        folder: A Tune experiment folder.
        what: What the folder holds, for the warning (e.g. ``"study tpe_seed0"``).
        then: What happens instead, for the warning.
    """
    from ray import tune

    if not tune.Tuner.can_restore(str(folder)):
        return False
    problem = state_problem(folder)
    if problem is None:
        return True
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = folder.with_name(f"{folder.name}.incomplete-{stamp}")
    count = 1
    while aside.exists():
        count += 1
        aside = folder.with_name(f"{folder.name}.incomplete-{stamp}-{count}")
    folder.rename(aside)
    log.warning("%s cannot be resumed exactly (%s, written when the run was killed); %s, and the old "
                "folder is kept as %s", what, problem, then, aside.name)
    return False
