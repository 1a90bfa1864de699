#!/usr/bin/env node
// A Stylecast client in Node: list the served models, or stylise one image file.
//
//   node stylise.js [--server HOST:PORT] [--token T] list
//   node stylise.js [--server HOST:PORT] [--token T] stylise --model NAME --in IN --out OUT
//                   [--strength 0..1] [--style NAME | --mix NAME:W,NAME:W]
//
// The API is loaded at run time from the project's proto/ folder (no generated code). Exit
// codes: 0 done, 1 a gRPC error (its status code name and details on stderr), 2 bad arguments,
// 3 the input file cannot be read or the output file cannot be written.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'proto');
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024; // as the Python client: the server sets the limit
const OUTPUT_ENCODINGS = {
  '.jpg': 'ENCODING_JPEG',
  '.jpeg': 'ENCODING_JPEG',
  '.png': 'ENCODING_PNG',
  '.webp': 'ENCODING_WEBP',
};
const USAGE = `usage: node stylise.js [--server HOST:PORT] [--token T] [--timeout S] list
       node stylise.js [--server HOST:PORT] [--token T] [--timeout S] stylise --model NAME
                       --in IMAGE --out OUT.jpg|.png|.webp [--strength 0..1]
                       [--style NAME | --mix NAME:WEIGHT,NAME:WEIGHT]
--style and --mix pick or blend the styles of a multi-style model (list shows them).
--server defaults to 127.0.0.1:50051, --token to $STYLECAST_TOKEN, --timeout to 60 seconds.`;

class Failure extends Error {
  constructor(message, exitCode) {
    super(message);
    this.exitCode = exitCode;
  }
}

const usageError = (message) => new Failure(`${message} (usage: node stylise.js --help)`, 2);

function parseCommandLine(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        server: { type: 'string', default: '127.0.0.1:50051' },
        token: { type: 'string', default: process.env.STYLECAST_TOKEN || '' },
        timeout: { type: 'string', default: '60' },
        model: { type: 'string' },
        in: { type: 'string' },
        out: { type: 'string' },
        strength: { type: 'string' },
        style: { type: 'string' },
        mix: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw usageError(err.message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const [command, ...extra] = positionals;
  if (!['list', 'stylise'].includes(command) || extra.length > 0) {
    throw usageError(`expected one command, list or stylise (got: ${positionals.join(' ') || 'none'})`);
  }
  const timeout = Number(values.timeout);
  if (!(timeout > 0)) throw usageError(`--timeout must be a positive number of seconds`);
  if (command === 'stylise') {
    for (const name of ['model', 'in', 'out']) {
      if (!values[name]) throw usageError(`stylise needs --${name}`);
    }
    if (!OUTPUT_ENCODINGS[path.extname(values.out).toLowerCase()]) {
      throw usageError(`--out must end in .jpg, .jpeg, .png or .webp (got ${values.out})`);
    }
    if (values.strength !== undefined) {
      const strength = Number(values.strength);
      if (values.strength.trim() === '' || !(strength >= 0 && strength <= 1)) {
        throw usageError(`--strength must be a number in [0, 1] (got ${values.strength})`);
      }
    }
    if (values.style !== undefined && values.mix !== undefined) {
      throw usageError('give either --style or --mix, not both');
    }
    if (values.style !== undefined && values.style.trim() === '') {
      throw usageError('--style needs a style name');
    }
  } else if (values.model || values.in || values.out || values.strength !== undefined ||
             values.style !== undefined || values.mix !== undefined) {
    throw usageError('list takes no --model, --in, --out, --strength, --style or --mix');
  }
  const mix = values.mix === undefined ? undefined : parseMix(values.mix);
  return { command, ...values, mix, timeout };
}

// "starry_night:0.7,great_wave:0.3" as {starry_night: 0.7, great_wave: 0.3} (the proto's
// style_mix map); the server checks the names against the model and normalises the weights.
function parseMix(text) {
  const mix = {};
  for (const pair of text.split(',')) {
    const [name, weight, ...rest] = pair.split(':');
    const value = Number(weight);
    if (!name || rest.length > 0 || weight === undefined || weight.trim() === '' ||
        !Number.isFinite(value) || value < 0) {
      throw usageError(`bad --mix ${JSON.stringify(text)}: write NAME:WEIGHT pairs separated ` +
                       'by commas, weights >= 0');
    }
    if (name in mix) throw usageError(`style ${name} appears twice in --mix`);
    mix[name] = value;
  }
  return mix;
}

function connect(server) {
  const definition = protoLoader.loadSync('stylecast/v1/stylise.proto', {
    includeDirs: [PROTO_ROOT],
    keepCase: true, // field names as in the .proto (output_encoding), not outputEncoding
    enums: String, // enum values as names ("ENCODING_JPEG") in replies
    longs: String,
    defaults: true, // unset fields of replies appear with their default values
  });
  const { Stylecast } = grpc.loadPackageDefinition(definition).stylecast.v1;
  return new Stylecast(server, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  });
}

// One unary call as a promise; a gRPC error becomes a Failure naming its status code.
function call(client, method, request, args) {
  const metadata = new grpc.Metadata();
  if (args.token) metadata.set('authorization', `Bearer ${args.token}`);
  const deadline = Date.now() + args.timeout * 1000;
  return new Promise((resolve, reject) => {
    client[method](request, metadata, { deadline }, (err, reply) => {
      if (!err) return resolve(reply);
      const code = grpc.status[err.code] || `code ${err.code}`;
      reject(new Failure(`${method} failed: ${code}: ${err.details || err.message}`, 1));
    });
  });
}

async function list(client, args) {
  const { models } = await call(client, 'ListModels', {}, args);
  if (models.length === 0) console.error('the server has no models loaded');
  for (const card of models) {
    const notes = card.testing_only ? '\ttesting only' : '';
    const styles = card.styles.length ? `\tstyles: ${card.styles.map((s) => s.name).join(',')}` : '';
    console.log(`${card.name}\tv${card.version}\t${card.provider}${notes}${styles}`);
  }
}

async function stylise(client, args) {
  let data;
  try {
    data = fs.readFileSync(args.in);
  } catch (err) {
    throw new Failure(`cannot read ${args.in}: ${err.message}`, 3);
  }
  const options = { output_encoding: OUTPUT_ENCODINGS[path.extname(args.out).toLowerCase()] };
  // `strength` is a proto3 `optional` field: left out, the server applies the full style (1).
  if (args.strength !== undefined) options.strength = Number(args.strength);
  if (args.style !== undefined) options.style = args.style; // a multi-style model's style
  if (args.mix !== undefined) options.style_mix = args.mix; // or a blend of its styles
  // encoding ENCODING_UNSPECIFIED (the default): the server detects JPEG, PNG or WebP.
  const request = { model: args.model, image: { data }, options };
  const reply = await call(client, 'Stylise', request, args);
  try {
    fs.writeFileSync(args.out, reply.image.data);
  } catch (err) {
    throw new Failure(`cannot write ${args.out}: ${err.message}`, 3);
  }
  const { width, height } = reply.image;
  const ms = reply.timings.total_ms.toFixed(1);
  console.log(`${args.out}: ${width}x${height}, ${reply.model} v${reply.model_version}, ${ms} ms`);
}

async function main() {
  const args = parseCommandLine(process.argv.slice(2));
  const client = connect(args.server);
  try {
    await (args.command === 'list' ? list : stylise)(client, args);
  } finally {
    client.close();
  }
}

main().catch((err) => {
  console.error(`stylise.js: ${err instanceof Failure ? err.message : err.stack}`);
  process.exitCode = err instanceof Failure ? err.exitCode : 1;
});
