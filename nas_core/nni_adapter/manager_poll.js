// Loaded into NNI's node process with NODE_OPTIONS="--require <this file>".
// NNI 3.0's manager notices finished trials, and starts the next ones, on a fixed loop of
// 0.5 s for the local training service (NNIManager.pollInterval, set in initTrainingService).
// With trials of a few seconds that loop costs ~10 % of every slot's time. This lowers that
// 0.5 s to NAS_CORE_NNI_POLL_S seconds (default and allowed range in manager_poll.json, which the
// Python side reads too). Other values (the 5 s of reuse-mode training services, which query
// remote machines) are left as NNI sets them.
'use strict';
const { onNniModule } = require('./nni_module_hook.js');
const limits = require('./manager_poll.json');

const NNI_LOCAL_INTERVAL = limits.nni;
const raw = process.env.NAS_CORE_NNI_POLL_S;
const seconds = raw === undefined || raw === '' ? limits.default : Number(raw);
const valid = Number.isFinite(seconds) && seconds >= limits.min && seconds <= limits.max;
if (!valid) {
  process.stderr.write(`nas_core: NAS_CORE_NNI_POLL_S=${raw} is not a number of seconds in [${limits.min}, `
    + `${limits.max}]; NNI keeps its own poll interval\n`);
}

function patch(NNIManager) {
  const proto = NNIManager.prototype;
  const original = proto.initTrainingService;
  if (typeof original !== 'function') {
    process.stderr.write('nas_core: this NNI has no NNIManager.initTrainingService; its poll interval is unchanged\n');
    return;
  }
  proto.initTrainingService = async function (...args) {
    const service = await original.apply(this, args);
    if (this.pollInterval === NNI_LOCAL_INTERVAL) {
      this.pollInterval = seconds;
    }
    return service;
  };
  proto.initTrainingService.nasCorePollSeconds = seconds;
}

if (valid) {
  onNniModule((exported) => typeof exported.NNIManager === 'function', (exported) => patch(exported.NNIManager));
}
