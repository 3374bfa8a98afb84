"""Keep NNI's experiment status RUNNING while the tuner holds requested trial slots.

NNI 3.0's dispatcher (``nni/runtime/msg_dispatcher.py``, ``handle_request_trial_jobs``) sends the
manager ``NO_MORE_TRIAL_JOBS`` whenever a tuner answers fewer parameter sets than were requested,
and the manager (``nni_node/core/nnimanager.js``) then shows ``TUNER_NO_MORE_TRIAL`` until the next
trial arrives, with a warning ("It is not supposed to receive more trials after NO_MORE_TRIAL is
set"). NNI has no other use for that message: the manager requests trials and reaches DONE by
its trial budget either way. A tuner that waits at a generation barrier answers fewer on purpose
and fills the held ids later through ``st_callback``, so the message is untrue there.

:func:`install` wraps the dispatcher's ``send`` (the dispatcher is the object whose
``send_trial_callback`` NNI passes as ``st_callback``) so that ``NO_MORE_TRIAL_JOBS`` is left out
when the tuner says, in the thread that is answering the request, that it kept the missing ids.
When the tuner really has nothing more (its strategy finished), the message goes through.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

_logger = logging.getLogger("nas_core.tuner")

NO_MORE_TRIAL_JOBS = "NO"
"""The command code of ``CommandType.NoMoreTrialJobs`` in NNI 3.0."""
_MARK = "_nas_core_keep_running"


def install(st_callback: Any, holding: Callable[[], bool]) -> bool:
    """Make the dispatcher behind ``st_callback`` skip NO_MORE_TRIAL_JOBS while ``holding()``.

    ``holding`` is called in the thread that sends, right after the tuner answered. Returns
    whether the hook is in place (False when ``st_callback`` is not a dispatcher's bound method).
    """
    dispatcher = getattr(st_callback, "__self__", None)
    send = getattr(dispatcher, "send", None)
    if dispatcher is None or not callable(send):
        return False
    if getattr(send, _MARK, False):
        return True

    def guarded_send(command: Any, data: Any) -> Any:
        if getattr(command, "value", command) == NO_MORE_TRIAL_JOBS and holding():
            _logger.debug("kept the experiment RUNNING: the requested trial ids wait for the strategy")
            return None
        return send(command, data)

    setattr(guarded_send, _MARK, True)
    dispatcher.send = guarded_send
    return True
