// Loaded into NNI's node process with NODE_OPTIONS="--require <this file>".
// NNI's web server listens on every interface without authentication and has no host option;
// this makes every server the process opens listen on NAS_CORE_BIND_HOST (default 127.0.0.1).
'use strict';
const net = require('net');
const host = process.env.NAS_CORE_BIND_HOST || '127.0.0.1';
const original = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (args.length > 0 && typeof args[0] === 'object' && args[0] !== null && !Array.isArray(args[0])) {
    if (args[0].path === undefined) {
      args[0] = Object.assign({}, args[0], { host });
    }
  } else if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))) {
    const port = args[0];
    const rest = args.slice(1).filter((a) => typeof a === 'function' || typeof a === 'number');
    const callback = rest.find((a) => typeof a === 'function');
    const backlog = rest.find((a) => typeof a === 'number');
    const options = { port: Number(port), host };
    if (backlog !== undefined) options.backlog = backlog;
    return callback ? original.call(this, options, callback) : original.call(this, options);
  }
  return original.apply(this, args);
};
