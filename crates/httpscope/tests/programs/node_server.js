// Node.js test server for the httpscope matrix. Usage: node node_server.js http|h2c
// Prints "listening on <port>" on stderr. http: echoes X-Request-Id; h2c: HTTP/2 cleartext
// with prior knowledge (http2.createServer).
'use strict';
const mode = process.argv[2] || 'http';
const handler = (req, res) => {
  const rid = req.headers['x-request-id'] || '';
  const body = Buffer.from(`hello ${rid}\n`);
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length, 'X-Request-Id': rid });
  res.end(body);
};
const server = mode === 'h2c'
  ? require('http2').createServer(handler)
  : require('http').createServer({ keepAliveTimeout: 60000 }, handler);
server.listen(0, '127.0.0.1', () => {
  process.stderr.write(`listening on ${server.address().port}\n`);
});
