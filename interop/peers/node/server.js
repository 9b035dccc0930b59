#!/usr/bin/env node
// grpc.testing.TestService on @grpc/grpc-js, the peer server.
//
//   node server.js --port=N     serves plaintext on 0.0.0.0:N until killed
//   node server.js --port=N --use_tls=true --cert_file=F --key_file=F
//                               serves TLS with that certificate chain and key (PEM)
//
// Limitations (see PEER_LIMITATIONS in ../../run-matrix.sh): grpc-js's server neither
// compresses responses nor tells a handler whether a received message was compressed, so
// response_compressed and expect_compressed are not honoured; the four compression cases
// are covered against other peers.
'use strict';

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', '..', 'proto');
const ECHO_INITIAL = 'x-grpc-test-echo-initial';
const ECHO_TRAILING = 'x-grpc-test-echo-trailing-bin';

const def = protoLoader.loadSync(['grpc/testing/test.proto'], {
  includeDirs: [PROTO_ROOT], keepCase: true, longs: Number, enums: String, defaults: true,
});
const testing = grpc.loadPackageDefinition(def).grpc.testing;

// Sends the echo-initial key now; returns the trailers to end the call with.
function echo(call) {
  const initial = call.metadata.get(ECHO_INITIAL);
  if (initial.length) {
    const md = new grpc.Metadata();
    for (const v of initial) md.add(ECHO_INITIAL, v);
    call.sendMetadata(md);
  }
  const trailer = new grpc.Metadata();
  for (const v of call.metadata.get(ECHO_TRAILING)) trailer.add(ECHO_TRAILING, v);
  return trailer;
}

function statusError(status, trailer) {
  if (!status || !status.code) return null;
  return { code: status.code, details: status.message, metadata: trailer };
}

function payload(type, size, trailer) {
  if (type !== 'COMPRESSABLE') {
    return [null, { code: grpc.status.INVALID_ARGUMENT, details: 'unsupported response_type', metadata: trailer }];
  }
  return [{ type, body: Buffer.alloc(size) }, null];
}

const sleep = (us) => new Promise((resolve) => setTimeout(resolve, us / 1000));

// Writes the responses one StreamingOutputCallRequest asks for; returns an error or null.
async function respond(call, req, trailer) {
  for (const p of req.response_parameters) {
    if (p.interval_us > 0) await sleep(p.interval_us);
    if (call.cancelled) return null;
    const [body, err] = payload(req.response_type, p.size, trailer);
    if (err) return err;
    await new Promise((resolve) => call.write({ payload: body }, resolve));
  }
  return null;
}

const service = {
  EmptyCall(call, callback) {
    callback(null, {}, echo(call));
  },

  UnaryCall(call, callback) {
    const trailer = echo(call);
    const req = call.request;
    const err = statusError(req.response_status, trailer);
    if (err) return callback(err);
    const [body, perr] = payload(req.response_type, req.response_size, trailer);
    if (perr) return callback(perr);
    return callback(null, { payload: body }, trailer);
  },

  CacheableUnaryCall(call, callback) {
    const trailer = echo(call);
    callback(null, { payload: { body: Buffer.from(String(process.hrtime.bigint())) } }, trailer);
  },

  async StreamingOutputCall(call) {
    const trailer = echo(call);
    const err = statusError(call.request.response_status, trailer)
      || await respond(call, call.request, trailer);
    if (err) call.emit('error', err);
    else call.end(trailer);
  },

  StreamingInputCall(call, callback) {
    const trailer = echo(call);
    let total = 0;
    call.on('data', (req) => { total += req.payload ? req.payload.body.length : 0; });
    call.on('end', () => callback(null, { aggregated_payload_size: total }, trailer));
    call.on('error', () => {});
  },

  FullDuplexCall(call) {
    const trailer = echo(call);
    // Requests are answered one after another, in order.
    let chain = Promise.resolve(null);
    let failed = false;
    call.on('data', (req) => {
      chain = chain.then(async (err) => {
        if (err || failed) return err;
        const e = statusError(req.response_status, trailer) || await respond(call, req, trailer);
        if (e) {
          failed = true;
          call.emit('error', e);
        }
        return e;
      });
    });
    call.on('end', () => {
      chain.then((err) => { if (!err && !failed) call.end(trailer); });
    });
    call.on('error', () => {});
  },

  HalfDuplexCall(call) {
    const trailer = echo(call);
    const reqs = [];
    call.on('data', (req) => reqs.push(req));
    call.on('end', async () => {
      for (const req of reqs) {
        const err = statusError(req.response_status, trailer) || await respond(call, req, trailer);
        if (err) {
          call.emit('error', err);
          return;
        }
      }
      call.end(trailer);
    });
    call.on('error', () => {});
  },
};

function usage(msg) {
  process.stderr.write(`${msg}\nusage: server.js --port=N [--use_tls=true --cert_file=F --key_file=F]\n`);
  process.exit(2);
}

// --port=N [--use_tls=true --cert_file=F --key_file=F] (also `--flag value`).
function parseArgs(argv) {
  const opts = { port: null, use_tls: 'false', cert_file: '', key_file: '' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) usage(`unexpected argument: ${arg}`);
    let [name, value] = [arg.slice(2), undefined];
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    if (!(name in opts)) usage(`unknown flag --${name}`);
    if (value === undefined) {
      if (name === 'use_tls') value = 'true';
      else if (i + 1 < argv.length) value = argv[++i];
      else usage(`missing value for --${name}`);
    }
    opts[name] = value;
  }
  if (!opts.port) usage('--port is required');
  if (!['true', 'false'].includes(opts.use_tls.toLowerCase())) usage('--use_tls must be true or false');
  return opts;
}

// The server credentials the TLS flags ask for.
function credentials(opts) {
  if (opts.use_tls.toLowerCase() !== 'true') return grpc.ServerCredentials.createInsecure();
  if (!opts.cert_file || !opts.key_file) usage('--use_tls=true needs --cert_file and --key_file');
  return grpc.ServerCredentials.createSsl(null, [{
    cert_chain: fs.readFileSync(opts.cert_file), private_key: fs.readFileSync(opts.key_file),
  }], false);
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const port = opts.port;
  const tls = opts.use_tls.toLowerCase() === 'true';
  const server = new grpc.Server();
  // UnimplementedCall is left out: grpc-js answers it UNIMPLEMENTED.
  const impl = { ...service };
  server.addService(testing.TestService.service, impl);
  server.bindAsync(`0.0.0.0:${port}`, credentials(opts), (err) => {
    if (err) {
      process.stderr.write(`cannot listen on ${port}: ${err.message}\n`);
      process.exit(1);
    }
    process.stderr.write(`node interop server listening on ${port} (${tls ? 'tls' : 'plaintext'})\n`);
  });
  for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => { server.forceShutdown(); process.exit(0); });
}

main();
