// Loaded into NNI's node process with NODE_OPTIONS="--require <this file>".
// NNI 3.0's manager answers every error its tuner reports (the dispatcher's ER command, e.g. our
// tuner's one-line reason for refusing to resume) with a fixed "Dispatcher stream error, tuner may
// have crashed." in the experiment's errors (REST check-status, web UI); the tuner's own message
// reaches nnimanager.log only. This puts the tuner's message in that line's place, as
// "Tuner error: <message>", so the person running the experiment sees why it stopped. Only errors
// that tuner_wait.js tagged as the tuner's own report are rewritten: a failure of the channel
// itself ("WsChannel terminated: ...") keeps NNI's hint that the tuner may have crashed.
'use strict';
const { onNniModule } = require('./nni_module_hook.js');

const NNI_LINE = 'Dispatcher stream error, tuner may have crashed.';
const TUNER_REPORTED = Symbol.for('nas_core.tunerReported'); // set by tuner_wait.js

function patch(NNIManager) {
  const proto = NNIManager.prototype;
  const original = proto.addEventListeners;
  if (typeof original !== 'function') {
    process.stderr.write('nas_core: this NNI has no NNIManager.addEventListeners; tuner errors keep NNI\'s wording\n');
    return;
  }
  proto.addEventListeners = function (...args) {
    const manager = this;
    const dispatcher = this.dispatcher;
    if (dispatcher !== undefined && typeof dispatcher.onError === 'function') {
      const register = dispatcher.onError;
      dispatcher.onError = function (listener) {
        return register.call(this, (error) => {
          listener(error);
          const reported = Boolean(error && error[TUNER_REPORTED]);
          const message = reported && typeof error.message === 'string' ? error.message.trim() : '';
          const errors = manager.status && manager.status.errors;
          if (message && Array.isArray(errors)) {
            const at = errors.lastIndexOf(NNI_LINE);
            const line = `Tuner error: ${message}`;
            if (at >= 0) {
              errors[at] = line;
            } else {
              errors.push(line);
            }
          }
        });
      };
    }
    return original.apply(this, args);
  };
  proto.addEventListeners.nasCoreTunerErrors = true;
}

onNniModule((exported) => typeof exported.NNIManager === 'function', (exported) => patch(exported.NNIManager));
