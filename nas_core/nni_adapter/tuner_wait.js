// Loaded into NNI's node process with NODE_OPTIONS="--require <this file>".
// NNI 3.0's manager gives the tuner process 10 s to connect (TunerServer.init in
// core/tuner_command_channel) and otherwise fails the experiment ("Tuner did not connect in 10
// seconds"). On a loaded machine starting Python, NNI and the tuner's imports can take longer;
// this waits NAS_CORE_TUNER_CONNECT_S seconds instead (default 120).
// It also tags the errors the tuner itself reported (its ER command), which NNI's TunerServer
// emits as `new Error(content)` on the same 'error' event as the channel's own failures
// ("WsChannel terminated: ..."), so that tuner_error.js rewrites only those.
'use strict';
const { onNniModule } = require('./nni_module_hook.js');
require('./tuner_error.js'); // the tuner's reported error, not NNI's fixed line, in the experiment's errors

const raw = process.env.NAS_CORE_TUNER_CONNECT_S;
const seconds = raw === undefined || raw === '' ? 120 : Number(raw);
const valid = Number.isFinite(seconds) && seconds > 0;
if (!valid) {
  process.stderr.write(`nas_core: NAS_CORE_TUNER_CONNECT_S=${raw} is not a positive number of seconds; `
    + `NNI keeps its own 10 s\n`);
}

const TUNER_REPORTED = Symbol.for('nas_core.tunerReported');

function tagReportedErrors(server) {
  // The WebSocket server's onReceive callbacks are attached to a channel before the TunerServer's
  // own listener (WsChannelServer.handleConnection), so the ER command is seen just before
  // the TunerServer turns it into an error.
  const ws = server && server.server;
  const emitter = server && server.emitter;
  if (!ws || typeof ws.onReceive !== 'function' || !emitter || typeof emitter.emit !== 'function') {
    process.stderr.write('nas_core: this NNI\'s TunerServer has no server.onReceive or emitter; '
      + 'tuner errors keep NNI\'s wording\n');
    return;
  }
  let reported = null;
  ws.onReceive((_channelId, command) => {
    reported = command && command.type === 'ER' ? String(command.content ?? '') : null;
  });
  const emit = emitter.emit;
  emitter.emit = function (event, ...args) {
    const error = args[0];
    if (event === 'error' && reported !== null && error instanceof Error && error.message === reported) {
      error[TUNER_REPORTED] = true;
      reported = null;
    }
    return emit.call(this, event, ...args);
  };
  emitter.emit.nasCoreTagsTunerErrors = true;
}

function patch(exported) {
  tagReportedErrors(exported.getTunerServer());
  if (!valid) {
    return;
  }
  const proto = Object.getPrototypeOf(exported.getTunerServer());
  if (typeof proto.init !== 'function') {
    process.stderr.write('nas_core: this NNI has no TunerServer.init; the tuner keeps 10 s to connect\n');
    return;
  }
  proto.init = function () {
    if (this.connect.settled) {
      return Promise.resolve();
    }
    setTimeout(() => {
      if (!this.connect.settled) {
        this.connect.reject(new Error(`tuner_command_channel: Tuner did not connect in ${seconds} seconds. `
          + 'Please check tuner (dispatcher) log.'));
      }
    }, seconds * 1000);
    return this.connect.promise;
  };
  proto.init.nasCoreConnectSeconds = seconds;
}

onNniModule((exported) => typeof exported.getTunerServer === 'function', patch);
