// A slow lookup backend for bench/run.sh (the "parallel" scenario).
//
//   node bench/slow-upstream.js PORT        (SLOW_MS=20 by default)
//
// Listens on 127.0.0.1:PORT.  Any GET is answered with `[]` and
// `X-Total-Count: 0` after SLOW_MS milliseconds (a lookup that takes that
// long on the backend); PATCH, PUT, POST and DELETE are answered at once
// with `{}`.  nginx cannot delay an answer by itself, hence node.
'use strict';

const http = require('http');

const port = parseInt(process.argv[2] || process.env.SLOW_PORT || '', 10);
const slowMs = parseInt(process.env.SLOW_MS || '20', 10);
if (!(port > 0) || !(slowMs >= 0)) {
    console.error('usage: SLOW_MS=20 node slow-upstream.js PORT');
    process.exit(2);
}

const server = http.createServer((req, res) => {
    // read (and drop) any request body before answering
    req.resume();
    req.on('end', () => {
        if (req.method === 'GET' || req.method === 'HEAD') {
            setTimeout(() => {
                res.writeHead(200, {
                    'Content-Type': 'application/json',
                    'Content-Length': 2,
                    'X-Total-Count': '0',
                });
                res.end(req.method === 'HEAD' ? undefined : '[]');
            }, slowMs);
        } else {
            res.writeHead(200, {
                'Content-Type': 'application/json',
                'Content-Length': 2,
            });
            res.end('{}');
        }
    });
});

// libcurl keeps its connections: never close an idle one under it
server.keepAliveTimeout = 120000;
server.headersTimeout = 125000;
server.requestTimeout = 0;

server.listen(port, '127.0.0.1', () => {
    console.log(`slow-upstream: 127.0.0.1:${port}, GET after ${slowMs} ms`);
});

for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    process.on(sig, () => {
        server.close();
        process.exit(0);
    });
}
