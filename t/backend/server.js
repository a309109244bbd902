#!/usr/bin/env node
'use strict';
// Test backend for ngx_safedelete_module: json-server 0.17.4 used as a
// library over an in-memory lowdb, plus control routes that the Perl
// harness (t/lib/Test/SafeDelete.pm) uses to reset state, read the log of
// requests nginx sent, and inject faults.
//
//   node server.js --port P [--host 127.0.0.1] [--seed seed.json] [--gzip]
//
// Control routes (never logged, never faulted):
//   POST   /__reset      db back to the seed, request log and faults cleared
//   GET    /__requests   [{method, url, headers, body, raw_body, ts}, ...]
//   DELETE /__requests   clear the request log
//   POST   /__faults     JSON array of rules, replaces the current ones
//   GET    /__faults     current rules with their remaining counts
//   GET    /__db         the whole db state
//
// Requests carrying "X-SafeDelete-Harness: 1" are the harness reading the
// backend directly: they are neither logged nor faulted, so checking the
// db after a test does not disturb what the test asserts about nginx.

const fs = require('fs');
const path = require('path');
const querystring = require('querystring');
const jsonServer = require('json-server');
const low = require('lowdb');
const Memory = require('lowdb/adapters/Memory');

function parseArgs(argv) {
  const opts = {
    port: 3000,
    host: '127.0.0.1',
    seed: path.join(__dirname, 'seed.json'),
    gzip: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port') opts.port = parseInt(argv[++i], 10);
    else if (a === '--host') opts.host = argv[++i];
    else if (a === '--seed') opts.seed = argv[++i];
    else if (a === '--gzip') opts.gzip = true;
    else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: node server.js --port P [--host H] ' +
        '[--seed seed.json] [--gzip]\n');
      process.exit(0);
    } else {
      process.stderr.write(`server.js: unknown argument ${a}\n`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    process.stderr.write('server.js: --port needs a number\n');
    process.exit(2);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const seedText = fs.readFileSync(opts.seed, 'utf8');
JSON.parse(seedText); // fail early on a broken seed
const freshSeed = () => JSON.parse(seedText); // a deep copy every time

// The router keeps a reference to this lowdb instance; a reset replaces
// its state, so routes created for the seed's tables stay valid.
const db = low(new Memory());
db.setState(freshSeed());

let requestLog = [];
let faults = [];
// Bumped by /__reset: a request still held by a delay rule from an
// earlier test must not reach the fresh db of the next one.
let generation = 0;

const app = jsonServer.create();
const router = jsonServer.router(db);

// --- raw body capture -----------------------------------------------------
// Read every body ourselves so the log holds exactly what nginx sent, even
// for content types json-server ignores.
app.use((req, res, next) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    req.rawBody = Buffer.concat(chunks).toString('utf8');
    next();
  });
  req.on('error', next);
});

// --- control routes -------------------------------------------------------
function sendJson(res, status, value) {
  res.status(status).type('application/json').send(JSON.stringify(value, null, 2));
}

function parseJsonBody(req) {
  if (req.rawBody === '') return undefined;
  return JSON.parse(req.rawBody);
}

app.use((req, res, next) => {
  if (!req.path.startsWith('/__')) return next();
  const route = `${req.method} ${req.path}`;
  try {
    switch (route) {
      case 'POST /__reset':
        db.setState(freshSeed());
        requestLog = [];
        faults = [];
        generation += 1;
        return sendJson(res, 200, { reset: true });
      case 'GET /__requests':
        return sendJson(res, 200, requestLog);
      case 'DELETE /__requests':
        requestLog = [];
        return sendJson(res, 200, { cleared: true });
      case 'GET /__faults':
        return sendJson(res, 200, faults);
      case 'POST /__faults': {
        const rules = parseJsonBody(req);
        if (!Array.isArray(rules)) {
          return sendJson(res, 400, { error: '/__faults wants a JSON array' });
        }
        faults = rules.map(normalizeRule);
        return sendJson(res, 200, { faults: faults.length });
      }
      case 'GET /__db':
        return sendJson(res, 200, db.getState());
      default:
        return sendJson(res, 404, { error: `no control route ${route}` });
    }
  } catch (e) {
    return sendJson(res, 400, { error: String(e.message || e) });
  }
});

// --- request log ----------------------------------------------------------
const isHarness = (req) => req.headers['x-safedelete-harness'] === '1';

function bodyForLog(raw) {
  if (raw === '') return null;
  try {
    return JSON.parse(raw);
  } catch (e) {
    return raw;
  }
}

app.use((req, res, next) => {
  if (isHarness(req)) return next();
  requestLog.push({
    method: req.method,
    url: req.originalUrl,
    headers: req.headers,
    body: bodyForLog(req.rawBody),
    raw_body: req.rawBody,
    ts: Date.now(),
  });
  next();
});

// --- faults ---------------------------------------------------------------
function normalizeRule(r) {
  if (r === null || typeof r !== 'object' || Array.isArray(r)) {
    throw new Error('a fault rule is a JSON object');
  }
  const rule = Object.assign({}, r);
  if (rule.path_regex !== undefined) rule._re = new RegExp(rule.path_regex);
  if (rule.times === undefined || rule.times === null) rule.times = -1;
  return rule;
}

// "path" is compared with the url path without its query string;
// "path_regex" is tested against the whole url (path and query).
function ruleMatches(rule, req) {
  if (rule.times === 0) return false;
  if (rule.method && rule.method.toUpperCase() !== req.method) return false;
  if (rule.path !== undefined && rule.path !== req.path) return false;
  if (rule._re && !rule._re.test(req.originalUrl)) return false;
  return true;
}

function answerFault(rule, req, res) {
  if (rule.drop) {
    // Destroy the socket without a byte of response: what a crashed
    // backend looks like to nginx.
    req.socket.destroy();
    return;
  }
  let body = rule.body === undefined ? '' : rule.body;
  let type = rule.content_type;
  if (typeof body !== 'string') {
    body = JSON.stringify(body);
    type = type || 'application/json';
  }
  // Plain node calls, not express's res.send: the answer is exactly the
  // rule (no ETag, no charset added to the content type).
  res.statusCode = rule.status;
  res.setHeader('Content-Type', type || 'text/plain');
  for (const [k, v] of Object.entries(rule.headers || {})) res.setHeader(k, v);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

app.use((req, res, next) => {
  if (isHarness(req)) return next();
  const rule = faults.find((r) => ruleMatches(r, req));
  if (!rule) return next();
  if (rule.times > 0) rule.times -= 1;
  const gen = generation;
  const act = () => {
    // A client (nginx) that gave up meanwhile does not cancel the request:
    // like a real slow backend, json-server still applies it.
    if (gen !== generation) {
      res.statusCode = 503;
      res.end('backend was reset while this request was delayed\n');
      return;
    }
    if (rule.drop || rule.status !== undefined) answerFault(rule, req, res);
    else next(); // delay-only rule: json-server answers after the delay
  };
  if (rule.delay_ms > 0) setTimeout(act, rule.delay_ms);
  else act();
});

// --- body parsing for json-server -----------------------------------------
// The body was consumed above, so parse it here the way json-server's
// body-parser would and mark it parsed (body-parser skips when req._body).
app.use((req, res, next) => {
  req._body = true;
  req.body = {};
  if (req.rawBody === '') return next();
  if (req.is('json')) {
    try {
      req.body = JSON.parse(req.rawBody);
    } catch (e) {
      return sendJson(res, 400, { error: `invalid JSON body: ${e.message}` });
    }
    if (req.body === null || typeof req.body !== 'object') {
      return sendJson(res, 400, { error: 'JSON body must be an object or array' });
    }
  } else if (req.is('urlencoded')) {
    req.body = querystring.parse(req.rawBody);
  }
  next();
});

// --- json-server ----------------------------------------------------------
app.use(jsonServer.defaults({
  logger: false,
  noCors: true,
  noGzip: !opts.gzip,
  static: path.join(__dirname, 'no-static-files'),
}));
app.use(router);

const server = app.listen(opts.port, opts.host, () => {
  process.stdout.write(`listening on ${opts.host}:${server.address().port}\n`);
});
server.on('error', (e) => {
  process.stderr.write(`server.js: ${e.message}\n`);
  process.exit(1);
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', () => { stop(); setTimeout(() => process.exit(0), 500).unref(); });
process.on('SIGINT', () => { stop(); setTimeout(() => process.exit(0), 500).unref(); });
