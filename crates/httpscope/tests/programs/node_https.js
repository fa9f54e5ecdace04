// Node.js HTTPS for the httpscope TLS tests.
// node node_https.js server CERT KEY: an `https` keep-alive server echoing X-Request-Id
//   (a POST gets "echo:<body>"); prints "listening on <port>" on stderr.
// node node_https.js client CA PORT N PREFIX: N requests, one at a time, over one
//   keep-alive connection (every third a POST with a body); prints
//   {"requests","ok","mismatch"} as JSON. With NODE_HTTPS_HOLD=1 it waits for a line on
//   stdin before the first request.
'use strict';
const fs = require('fs');
const https = require('https');
const [mode, a, b, c, d] = process.argv.slice(2);
if (mode === 'server') {
  const server = https.createServer({ cert: fs.readFileSync(a), key: fs.readFileSync(b), keepAliveTimeout: 60000 }, (req, res) => {
    const rid = req.headers['x-request-id'] || '';
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.from(req.method === 'POST' ? `echo:${Buffer.concat(chunks)}` : `hello ${rid}`);
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length, 'X-Request-Id': rid });
      res.end(body);
    });
  });
  server.listen(0, '127.0.0.1', () => process.stderr.write(`listening on ${server.address().port}\n`));
} else {
  const [ca, port, n, prefix] = [fs.readFileSync(a), Number(b), Number(c), d];
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca });
  let ok = 0, mismatch = 0;
  const one = (i) => {
    if (i === n) {
      agent.destroy();
      console.log(JSON.stringify({ requests: n, ok, mismatch }));
      return;
    }
    const rid = `${prefix}${i}`;
    const post = i % 3 === 2;
    const body = `body-${rid}`;
    const headers = { 'X-Request-Id': rid };
    if (post) headers['Content-Length'] = body.length;
    const req = https.request({ host: '127.0.0.1', servername: 'localhost', port, path: `/?id=${rid}`, method: post ? 'POST' : 'GET', agent, headers }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        if (res.statusCode === 200 && text === (post ? `echo:${body}` : `hello ${rid}`)) ok++;
        if (res.headers['x-request-id'] !== rid) mismatch++;
        one(i + 1);
      });
    });
    req.on('error', (e) => { console.error(e); process.exit(1); });
    req.end(post ? body : undefined);
  };
  setTimeout(() => { console.error('node_https client: timed out'); process.exit(2); }, 60000).unref();
  if (process.env.NODE_HTTPS_HOLD === '1') {
    process.stdin.once('data', () => { process.stdin.pause(); one(0); });
  } else {
    one(0);
  }
}
