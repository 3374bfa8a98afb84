// Shared by the node shims that NNI's node process loads with NODE_OPTIONS="--require <shim>":
// NNI's manager modules are loaded after the shims, so a shim cannot patch them at once. This
// calls patch(exports) once, on the first module loaded whose exports match.
'use strict';
const Module = require('module');

function onNniModule(matches, patch) {
  const originalLoad = Module._load;
  let patched = false;
  Module._load = function (...args) {
    const exported = originalLoad.apply(this, args);
    if (!patched && exported !== null && typeof exported === 'object' && matches(exported)) {
      patched = true;
      patch(exported);
    }
    return exported;
  };
}

module.exports = { onNniModule };
