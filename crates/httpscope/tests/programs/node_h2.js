// Node.js `http2` server and client for the httpscope HTTP/2 tests.
//   node node_h2.js server h2c|tls [KEY CERT]      prints "listening on <port>" on stderr
//   node node_h2.js client h2c|tls PORT N PREFIX [CA]
//   node node_h2.js session h2c PORT                 one session, kept open; each stdin line
//                                                    "N PREFIX" makes N requests on it
// The server answers every request with its X-Request-Id echoed and a body naming it; a POST
// gets its body echoed. The client makes N requests on one session, 8 in flight at a time
// (every third a POST with a body), and prints {"requests","ok","mismatch"} as JSON.
'use strict';
const fs = require('fs');
const http2 = require('http2');
const [role, mode] = process.argv.slice(2, 4);

function serve() {
  const handler = (req, res) => {
    const rid = req.headers['x-request-id'] || '';
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = req.method === 'POST' ? Buffer.concat(chunks) : Buffer.from(`hello ${rid}\n`);
      const headers = { 'content-type': 'text/plain' };
      if (rid) headers['x-request-id'] = rid;
      res.writeHead(200, headers);
      res.end(body);
    });
  };
  const server = mode === 'tls'
    ? http2.createSecureServer({ key: fs.readFileSync(process.argv[4]), cert: fs.readFileSync(process.argv[5]) }, handler)
    : http2.createServer(handler);
  server.listen(0, '127.0.0.1', () => {
    process.stderr.write(`listening on ${server.address().port}\n`);
  });
}

function request(session, rid, post) {
  return new Promise((resolve) => {
    const headers = { ':path': `/?id=${rid}`, 'x-request-id': rid };
    if (post) headers[':method'] = 'POST';
    const stream = session.request(headers, { endStream: !post });
    if (post) stream.end(`posted ${rid}`);
    let status = 0, echoed = '';
    stream.on('response', (h) => { status = h[':status']; echoed = h['x-request-id']; });
    stream.on('data', () => {});
    stream.on('end', () => resolve(status === 200 && echoed === rid));
    stream.on('error', () => resolve(false));
  });
}

function connect(port, ca) {
  const session = mode === 'tls'
    ? http2.connect(`https://localhost:${port}`, { ca: fs.readFileSync(ca) })
    : http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', (e) => { console.error(e); process.exit(1); });
  return session;
}

// N requests PREFIX0.., 8 in flight; prints {"requests","ok","mismatch"}.
async function requests(session, n, prefix) {
  let ok = 0, mismatch = 0;
  for (let i = 0; i < n; i += 8) {
    const batch = [];
    for (let j = i; j < Math.min(i + 8, n); j++) batch.push(request(session, `${prefix}${j}`, j % 3 === 2));
    for (const good of await Promise.all(batch)) good ? ok++ : mismatch++;
  }
  console.log(JSON.stringify({ requests: n, ok, mismatch }));
}

async function client() {
  const session = connect(process.argv[4], process.argv[7]);
  await requests(session, Number(process.argv[5]), process.argv[6]);
  session.close();
}

async function longSession() {
  const session = connect(process.argv[4]);
  const lines = require('readline').createInterface({ input: process.stdin });
  for await (const line of lines) {
    const [n, prefix] = line.trim().split(' ');
    await requests(session, Number(n), prefix);
  }
  session.close();
}

if (role === 'server') serve(); else if (role === 'session') longSession(); else client();
