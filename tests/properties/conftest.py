"""Hypothesis keeps its caches (the Unicode tables its character strategies use, the constants
it collects from the project's modules) in a temporary directory of the session's own, not in a
`.hypothesis/` beside the sources. Set on import: Hypothesis collects the constants before any
fixture runs. Removed when the session's process exits, whichever tests it ran."""

import atexit
import shutil
import tempfile
from pathlib import Path

from hypothesis.configuration import set_hypothesis_home_dir

HYPOTHESIS_HOME = Path(tempfile.mkdtemp(prefix="repairflow-hypothesis-"))
set_hypothesis_home_dir(HYPOTHESIS_HOME)
atexit.register(shutil.rmtree, HYPOTHESIS_HOME, ignore_errors=True)
