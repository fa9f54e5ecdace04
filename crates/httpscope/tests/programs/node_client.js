// Node.js `http` client for the httpscope matrix: N keep-alive requests, one at a time.
// Usage: node node_client.js PORT N PREFIX. Prints {"requests","ok","mismatch"} as JSON.
'use strict';
const http = require('http');
const [port, n, prefix] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4]];
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
let ok = 0, mismatch = 0;
function one(i) {
  if (i === n) {
    agent.destroy();
    console.log(JSON.stringify({ requests: n, ok, mismatch }));
    return;
  }
  const rid = `${prefix}${i}`;
  http.get({ host: '127.0.0.1', port, path: `/?id=${rid}`, agent, headers: { 'X-Request-Id': rid } }, (res) => {
    res.resume();
    res.on('end', () => {
      if (res.statusCode === 200) ok++;
      if (res.headers['x-request-id'] !== rid) mismatch++;
      one(i + 1);
    });
  }).on('error', (e) => { console.error(e); process.exit(1); });
}
one(0);
