"""Everything that talks to NNI 3.0, and every workaround for it; the rest of nas_core never imports nni.

Modules:

* :mod:`.tuner` — any registered strategy as an NNI custom tuner (slots kept at a barrier, DONE
  when the strategy is finished, results matched by candidate key, state written after each result);
* :mod:`.trial` — the trial command (``python -m nas_core.trial`` runs it): parameters in, epochs
  and a final dict out, with the candidate key and the evaluator's description;
* :mod:`.trial_io` — one trial's conversation with NNI, built from the environment NNI gave it;
* :mod:`.trial_env` — whether a process is an NNI trial with an HTTP channel, read by the thin
  client without :mod:`.trial_io`'s HTTP stack;
* :mod:`.worker_pool`, :mod:`.worker_server` — resident trial workers: the trial command is a
  thin client handing its candidate to a warm process of its slot (benchmark B2: with a process per
  trial, 61 % of the slot time went to start-up), so torch and the data are loaded once per slot (and NNI not at all);
* :mod:`.experiment` — launching and watching an experiment from Python; loads ``loopback.js``
  (web server on 127.0.0.1), ``manager_poll.js`` (manager loop 0.02 s instead of 0.5 s, range
  in ``manager_poll.json``) and ``tuner_wait.js`` (the tuner may take 120 s to connect, not 10 s)
  into NNI's node process (the last three patch NNI's modules as node loads them, through
  ``nni_module_hook.js``), and waits for NNI's manager to boot longer than NNI's launcher does;
* :mod:`.rest` — every call this package makes to the manager's REST API, the tuner's and each
  trial's look-up of its own trial job alike (under the manager's URL prefix, never through a proxy);
* :mod:`.trial_outcome` — why a trial ended without success (failed, cancelled, early-stopped by an
  assessor), from the manager's record of the job;
* :mod:`.dispatcher_hooks` — the experiment kept RUNNING while the tuner holds slots at a barrier,
  the trials NNI's assessor kills noted as they are killed, and the job id of each trial's end;
* :mod:`.nni_records` — search records rebuilt from an experiment's own trial database
  (``db/nni.sqlite``), for ``report`` on experiments run with NNI's own tuners;
* :mod:`.registration` — our strategies under NNI builtin tuner names.

Outside this package, only ``nas_core/__init__``'s lazily loaded names serve NNI: they keep the
thin client's start free of the core's imports (B2 in docs/benchmarks.md has the figures).

NNI private behaviour this package relies on (NNI 3.0 is no longer developed, so these are
fixed; tests/test_nni_e2e.py and tests/test_manager_poll.py exercise them against the installed NNI):

* NNI 3.0's HTTP trial channel, spoken with the standard library (:mod:`.trial_io`), as
  ``nni.runtime.trial_command_channel.v3.TrialCommandChannelV3`` and ``HttpChannel`` speak it: ``PUT``
  of a JSON command (``request_parameter``; ``metric`` whose ``metric`` is the JSON of parameter_id,
  trial_job_id, type, sequence and the JSON ``value``), ``GET`` long-polling for the answer (408:
  again, 410: closed), the ``parameter`` field being ``nni.dump`` text of the record
  (``parameter_id``, ``parameters``). NNI's public ``get_next_parameter``/``report_*`` bind to one
  process's environment at import, so a resident worker serving many trials needs one channel
  per trial; speaking it without NNI keeps ``import nni`` out of every worker's start. Payloads
  that plain JSON cannot carry (json_tricks' ``__name__`` markers) go through ``nni.load``/``nni.dump``.
  ``get_default_trial_command_channel`` for the older file-based services.
* The trial environment NNI sets (:mod:`.trial_io`, :mod:`.worker_pool`): ``NNI_PLATFORM``,
  ``NNI_TRIAL_COMMAND_CHANNEL`` (an ``http://`` URL: local and remote services), ``NNI_TRIAL_JOB_ID``,
  ``NNI_OUTPUT_DIR``, ``NNI_SYS_DIR``, ``NNI_TRIAL_SEQ_ID``, ``NNI_CODE_DIR``: which variables are
  per trial decides which trials may share a worker.
* What lets a trial train the parameters the manager shows for it (:mod:`.trial_io`): NNI 3.0's
  local and remote (``reuseMode: false``) services answer a trial's ``request_parameter`` from one
  FIFO queue of submitted parameters, whichever trial asks (``training_service/v3/compat.js``:
  ``parameters``, pushed by ``submitTrialJob`` and shifted by ``onRequestParameter``; only a trial
  submitted with an id of its own, e.g. a resumed one, is answered from ``allocatedParameters``).
  ``GET [/prefix]/api/v1/nni/trial-jobs/<id>`` answers an empty body until the manager has stored
  the job, which it does just after starting its process, and then the job whose
  ``hyperParameters[0]`` is the submitted record (re-serialised by JavaScript: ``1.0`` reads ``1``).
  The local trial's channel URL is ``http://host:port[/prefix]/env/<environment>/<trial>``, served by
  the manager's own web server; a remote trial's is served by its machine's trial keeper, whose
  launch file ``environments/<environment>/trial_keeper[_N]/launcher_config.json`` (``_N``: started
  again by a resume; the newest counts) names the manager in ``managerCommandChannel``
  (``ws://host:port[/prefix]/platform/...``), found from ``NNI_OUTPUT_DIR`` =
  ``environments/<environment>/trials/<trial>``.
* ``NNI_PLATFORM=unittest`` while importing ``nni`` where a worker needs it (:mod:`.trial_io`, only
  for a payload plain JSON cannot carry): importing NNI in a trial's environment redirects the root
  logger and ``sys.stdout`` for good; the worker serves many trials, so it imports NNI under the
  platform that configures nothing.
* ``st_callback`` (:mod:`.tuner`): the keyword NNI's dispatcher passes to
  ``generate_multiple_parameters``; calling it later fills a requested slot, which is how a
  strategy waiting at a generation barrier keeps NNI's slots instead of losing them.
* ``nni.runtime.msg_dispatcher_base.MsgDispatcherBase.report_error``, found with
  ``gc.get_objects()`` (:mod:`.tuner`): a tuner has no reference to its dispatcher, and a hook that
  raises kills the dispatcher silently; reporting the error makes the experiment show ERROR.
* ``Tuner._on_exit`` / ``_on_error`` (:mod:`.tuner`): the only hooks NNI calls on stop
  (``save_checkpoint`` is never called); the state is written there too.
* The dispatcher's quirk of replacing the remembered parameters of a request answered in part
  by ``''`` (:mod:`.tuner`): results are matched by the echoed candidate key, not those parameters.
* ``NNI_TUNER_COMMAND_CHANNEL`` (``ws://localhost:PORT[/prefix]/tuner``) in the tuner's environment
  (:mod:`.tuner`, :mod:`.rest`): the manager's port and URL prefix, to lower ``maxTrialNumber`` when the
  strategy finishes (``PUT experiment?update_type=MAX_TRIAL_NUM``, what the web UI does), to
  read ``trial-jobs`` after a resume (orphans), when a trial ended without success (how) and when
  a successful one's result is missing, and to cancel trials after a fatal error: ``GET
  check-status`` (``status`` ERROR) and ``DELETE trial-jobs/<id>``. From ``trial-jobs`` it reads
  ``hyperParameters[]`` (the JSON of ``parameter_id``, ``parameter_index``, ``parameters``) and
  ``finalMetricData[].data``.
* Resuming (:mod:`.experiment`): ``search --resume`` does what ``nnictl resume`` does, through
  ``Experiment._action = "resume"`` before ``start`` (NNI's manager then reloads the experiment),
  with the config from ``nni.experiment.launcher.get_stopped_experiment_config`` (which reads
  ``db/nni.sqlite`` and may raise sqlite3 errors, or OSError from ``os.path.samefile`` when the saved
  working directory moved), and the ``status`` and ``pid`` fields of nnictl's experiments manifest
  (``nni.tools.nnictl.config_utils.Experiments``) to refuse an experiment still running.
* ``NNI_MODE=resume``: the dispatcher calls the tuner's ``load_checkpoint`` before the manager
  listens for the tuner's errors, so an error reported from there is lost; the tuner keeps its
  refusal of a resume and reports it when the manager initialises it (``update_search_space``).
* The dispatcher's ``send`` and the command codes ``NO`` (NO_MORE_TRIAL_JOBS) and ``KI``
  (KILL_TRIAL_JOB), and its ``handle_trial_end`` (looked up on the instance for every command by
  ``MsgDispatcherBase.process_command``; its ``data`` has the ``trial_job_id`` that
  ``tuner.trial_end`` is not given) (:mod:`.dispatcher_hooks`), the dispatcher found as ``st_callback.__self__``
  (NNI passes its bound ``send_trial_callback``): ``handle_request_trial_jobs`` says "no more
  trials" whenever a tuner answers fewer than asked, which the manager shows as
  TUNER_NO_MORE_TRIAL; an assessor's Bad verdict is only a kill sent to the manager, and NNI 3.0's
  local service may then list the trial as USER_CANCELED (``cancelTrialJob`` in
  ``training_service/v3/compat.js`` marks it early-stopped only after the stop it awaits).
* The manager's ``trial-jobs`` (``hyperParameters``, ``status``, ``sequenceId``, ``logPath``) and
  ``metric-data/<job>`` (``parameterId``, ``type``, ``sequence``, ``data`` as the JSON of the JSON
  string the trial sent) (:mod:`.trial_outcome`), and the same rows in the experiment's
  ``db/nni.sqlite`` (tables ``TrialJobEvent``, ``MetricData``, ``ExperimentProfile``; :mod:`.nni_records`).
  The manager stores a job's terminal event (``requestTrialJobsStatus`` in
  ``nni_node/core/nnimanager.js``) and a trial's metrics before it sends the dispatcher TRIAL_END or
  the metric, so the record the tuner reads on ``trial_end`` already holds the job's end.
* ``trial-jobs`` is NNI's replay of ``TrialJobEvent`` in stored order (``getTrialJobsByReplayEvents``
  in ``nni_node/core/nniDataStore.js``), which :mod:`.nni_records` repeats on the database: a row
  without a job id (``IMPORT_DATA``, ``ADD_CUSTOMIZED``) is no trial; a job's status is its last
  event, ``USER_TO_CANCEL`` read as ``USER_CANCELED``, ``ADD_CUSTOMIZED`` as ``WAITING``,
  ``ADD_HYPERPARAMETER`` leaving it as it was; its first ``sequenceId`` (the Trial No.) is kept, and
  every parameter set with a ``parameter_index`` not seen before is appended to ``hyperParameters``.
* Numbering after a resume: the manager re-submits the jobs that were waiting or running (event
  ``ADD_RESUMED``, same job id) and numbers new jobs from one past the largest Trial No. it
  re-submitted (``addRecoveredTrialJob``; from 1 when it re-submitted none), and the dispatcher hands
  out parameter ids from one past the largest re-submitted one (``handle_add_customized_trial``),
  so both Trial Nos. and parameter ids repeat those of earlier trials (:mod:`.nni_records` keeps the
  runs apart; the tuner asks about a trial's end by its job id, never by its parameter id).
* Where the dispatcher runs the tuner's hooks (``MsgDispatcherBase.enqueue_command``): with an
  assessor, TRIAL_END and per-epoch metrics go to a second thread, so ``trial_end`` runs on the
  assessor's thread, concurrently with ``receive_trial_result`` and ``generate_*`` on the main one
  (:mod:`.tuner` holds one lock and keeps REST calls outside it); the assessor's KILL_TRIAL_JOB for
  a job is sent from that same thread while it handles a per-epoch result, before the job's
  TRIAL_END, so the kill is noted (:mod:`.dispatcher_hooks`) before the tuner asks how the job ended.
* ``NNI_INCLUDE_INTERMEDIATE_RESULTS=true`` in the manager's environment: the dispatcher's
  ``_earlystop_notify_tuner`` passes a stopped trial's last per-epoch result to the tuner as a final
  result (it is not stored as one); :mod:`.tuner` tells it from a real final by its missing ``status``.
* ``NNIManager.prototype.initTrainingService`` and its ``pollInterval`` field in NNI's node code
  (``manager_poll.js``): the 0.5 s loop on which the manager notices ended trials and starts
  queued ones is hard-coded; the shim lowers it after the training service sets it.
* NNI's node server calling ``net.Server.prototype.listen`` without a host (``loopback.js``): the
  shim passes the host, since NNI has no option for it and listens unauthenticated on every interface.
* ``nni.experiment.launcher._check_rest_server`` (:mod:`.experiment`): NNI's launcher gives its
  manager three 1 s tries to answer and then fails with "Create experiment failed"; on a loaded
  machine the manager boots slower, so our launch replaces it, for the launch only, with a 120 s wait.
* ``getTunerServer()``'s ``TunerServer.prototype.init`` and its ``connect`` deferred in NNI's node
  code (``tuner_wait.js``): the manager fails the experiment when the tuner process has not
  connected within a fixed 10 s, which a loaded machine exceeds while Python imports NNI and the tuner.
* ``NNIManager.prototype.addEventListeners``, its ``dispatcher`` (the TunerServer, whose
  ``onError`` listeners get ``new Error(content)`` for the tuner's ``ER`` command and the channel's
  own errors alike) and ``status.errors`` (``tuner_error.js``, loaded by ``tuner_wait.js``): the
  manager replaces every error the tuner reports by "Dispatcher stream error, tuner may have
  crashed."; the shim shows the tuner's own line instead (e.g. why a resume was refused). Which
  errors are the tuner's own is told by ``tuner_wait.js``: the TunerServer's ``server.onReceive``
  callbacks (attached to a channel before the TunerServer's own listener, in
  ``WsChannelServer.handleConnection``) see the ``ER`` command just before its ``emitter`` emits the
  error, which is then tagged; a channel failure ("WsChannel terminated") keeps NNI's line.
"""
