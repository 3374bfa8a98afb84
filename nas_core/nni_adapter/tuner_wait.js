// Loaded into NNI's node process with NODE_OPTIONS="--require <this file>".
// NNI 3.0's manager gives the tuner process 10 s to connect (TunerServer.init in
// core/tuner_command_channel) and otherwise fails the experiment ("Tuner did not connect in 10
// seconds"). On a loaded machine starting Python, NNI and the tuner's imports can take longer;
// this waits NAS_CORE_TUNER_CONNECT_S seconds instead (default 120).
'use strict';
const Module = require('module');
require('./tuner_error.js'); // the tuner's reported error, not NNI's fixed line, in the experiment's errors

const raw = process.env.NAS_CORE_TUNER_CONNECT_S;
const seconds = raw === undefined || raw === '' ? 120 : Number(raw);
const valid = Number.isFinite(seconds) && seconds > 0;
if (!valid) {
  process.stderr.write(`nas_core: NAS_CORE_TUNER_CONNECT_S=${raw} is not a positive number of seconds; `
    + `NNI keeps its own 10 s\n`);
}

function patch(exported) {
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

if (valid) {
  const originalLoad = Module._load;
  let patched = false;
  Module._load = function (...args) {
    const exported = originalLoad.apply(this, args);
    if (!patched && exported !== null && typeof exported === 'object'
        && typeof exported.getTunerServer === 'function') {
      patched = true;
      patch(exported);
    }
    return exported;
  };
}
