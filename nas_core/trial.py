"""``python -m nas_core.trial``: the trial command NNI configs name (``trialCommand``).

A stable entry point only; the trial itself is NNI's business and lives in
:mod:`nas_core.nni_adapter.trial`.
"""

import sys

from .nni_adapter.trial import main

if __name__ == "__main__":
    sys.exit(main())
