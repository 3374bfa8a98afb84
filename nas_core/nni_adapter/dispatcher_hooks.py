"""Three things NNI's dispatcher knows and does not tell the tuner, observed where it handles them.

The tuner runs inside NNI's dispatcher process; the dispatcher is the object whose bound
``send_trial_callback`` NNI passes to the tuner as ``st_callback``. :func:`install` wraps that
dispatcher's ``send`` and ``handle_trial_end`` once, for three reasons:

* **Keep the experiment RUNNING at a barrier.** NNI 3.0's dispatcher (``handle_request_trial_jobs``
  in ``nni/runtime/msg_dispatcher.py``) sends the manager ``NO_MORE_TRIAL_JOBS`` whenever a tuner
  answers fewer parameter sets than were requested, and the manager (``nni_node/core/nnimanager.js``)
  then shows ``TUNER_NO_MORE_TRIAL`` until the next trial arrives, with a warning ("It is not
  supposed to receive more trials after NO_MORE_TRIAL is set"). The manager has no other use for
  it: it requests trials and reaches DONE by its trial budget either way. A tuner that waits at a
  generation barrier answers fewer on purpose and fills the held ids later, so the message is
  left out when the tuner says, in the thread answering the request, that it kept the missing ids.
  When the strategy has really finished, the message goes through.
* **Know which trials the assessor stopped.** When an assessor judges a trial poor, the dispatcher
  sends ``KILL_TRIAL_JOB``. NNI 3.0's local training service then often lists the trial as
  ``USER_CANCELED`` rather than ``EARLY_STOPPED`` (its ``cancelTrialJob`` marks the trial early-stopped
  only after the stop it awaits, and the trial's end can come first), so the job ids the assessor
  killed are reported to the tuner as they are sent.
* **Know which trial job ended.** ``handle_trial_end`` receives the job id from the manager but
  calls ``tuner.trial_end`` with the parameter id alone, which a resume hands out again; the job
  id is reported, on the same thread, just before the tuner's ``trial_end`` runs (and None after).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

_logger = logging.getLogger("nas_core.tuner")

NO_MORE_TRIAL_JOBS = "NO"
"""The command code of ``CommandType.NoMoreTrialJobs`` in NNI 3.0."""
KILL_TRIAL_JOB = "KI"
"""The command code of ``CommandType.KillTrialJob`` (an assessor's Bad verdict) in NNI 3.0."""
_MARK = "_nas_core_hooked"


def install(st_callback: Any, *, holding: Callable[[], bool], killed: Callable[[str], None],
            ending: Callable[[str | None], None] | None = None) -> bool:
    """Hook the dispatcher behind ``st_callback``: skip NO_MORE_TRIAL_JOBS while ``holding()`` (called
    in the sending thread), call ``killed(job_id)`` for every trial job the assessor kills, and
    ``ending(job_id)`` in the thread handling a trial's end just before the tuner hears of it
    (``ending(None)`` once it has been handled).

    Returns whether the hooks are in place (False when ``st_callback`` is not a dispatcher's bound
    method); installing twice keeps the first.
    """
    dispatcher = getattr(st_callback, "__self__", None)
    send = getattr(dispatcher, "send", None)
    if dispatcher is None or not callable(send):
        return False
    if getattr(send, _MARK, False):
        return True
    handle_trial_end = getattr(dispatcher, "handle_trial_end", None)
    if ending is not None and callable(handle_trial_end):

        def hooked_trial_end(data: Any) -> Any:
            job_id = data.get("trial_job_id") if isinstance(data, dict) else None
            ending(str(job_id) if job_id is not None else None)
            try:
                return handle_trial_end(data)
            finally:
                ending(None)

        dispatcher.handle_trial_end = hooked_trial_end  # looked up per command by process_command

    def hooked_send(command: Any, data: Any) -> Any:
        code = getattr(command, "value", command)
        if code == NO_MORE_TRIAL_JOBS and holding():
            _logger.debug("kept the experiment RUNNING: the requested trial ids wait for the strategy")
            return None
        if code == KILL_TRIAL_JOB:
            try:
                job_id = json.loads(data) if isinstance(data, str) else data
                killed(str(job_id))
            except Exception:  # never let bookkeeping stop the kill
                _logger.exception("cannot note the assessor's kill of %r", data)
        return send(command, data)

    setattr(hooked_send, _MARK, True)
    dispatcher.send = hooked_send
    return True
