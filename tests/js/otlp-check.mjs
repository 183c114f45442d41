// Checks OTLP/JSON trace requests the way a collector would read them, and
// their attributes against the semantic conventions:
//
//   node otlp-check.mjs FILE...
//
// Each FILE holds one ExportTraceServiceRequest (OTLP/JSON). Every object
// is walked against the message types of the OTLP .proto files
// (tests/otel/proto, parsed by protobufjs): an unknown field, a wrong
// type, a bad enum or an id that is not hex of the right length fails.
// Then every attribute named gen_ai.*, server.* or error.* must be in the
// registry (tests/otel/semconv, parsed by yaml) with its type. Prints a
// summary as JSON ({spans, traces, names, kinds, errors, attributes});
// exits 1 with each problem on stderr.
import fs from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import protobuf from 'protobufjs';
import YAML from 'yaml';

const here = path.dirname(fileURLToPath(import.meta.url));
const otel = path.join(here, '..', 'otel');
const problems = [];
const bad = (where, msg) => problems.push(`${where}: ${msg}`);

// ---- the protocol ----
const root = new protobuf.Root();
root.resolvePath = (origin, target) => path.join(otel, 'proto', target);
root.loadSync('opentelemetry/proto/collector/trace/v1/trace_service.proto', {keepCase: false});
root.resolveAll();
const Request = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');

// OTLP/JSON differs from proto3's JSON mapping in one place: trace and
// span ids are hex, not base64.
const HEX_IDS = {traceId: 16, spanId: 8, parentSpanId: 8};
const INT64 = new Set(['int64', 'uint64', 'fixed64', 'sfixed64', 'sint64']);
const INT32 = new Set(['int32', 'uint32', 'fixed32', 'sfixed32', 'sint32']);

function walk(type, obj, where) {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    bad(where, `a ${type.name} must be an object`);
    return;
  }
  for (const [key, val] of Object.entries(obj)) {
    const field = type.fields[key] || Object.values(type.fields).find((f) => f.name === key);
    if (!field) { bad(where, `${type.name} has no field "${key}"`); continue; }
    const at = `${where}.${key}`;
    if (field.repeated) {
      if (!Array.isArray(val)) { bad(at, 'must be an array'); continue; }
      val.forEach((v, i) => one(field, v, `${at}[${i}]`));
    } else {
      one(field, val, at);
    }
  }
}

function one(field, val, at) {
  const t = field.resolvedType;
  if (HEX_IDS[field.name] !== undefined) {
    const n = HEX_IDS[field.name];
    if (typeof val !== 'string' || !new RegExp(`^[0-9a-fA-F]{${2 * n}}$`).test(val))
      bad(at, `must be ${2 * n} hex digits, not ${JSON.stringify(val)}`);
    else if (/^0+$/.test(val))
      bad(at, 'an all-zero id is invalid');
    return;
  }
  if (t instanceof protobuf.Type) return walk(t, val, at);
  if (t instanceof protobuf.Enum) {
    if (!Object.values(t.values).includes(val) && !(val in t.values))
      bad(at, `${JSON.stringify(val)} is not a ${t.name}`);
    return;
  }
  const ty = field.type;
  if (INT64.has(ty)) {
    if (!(typeof val === 'string' && /^-?\d+$/.test(val)) && !Number.isInteger(val))
      bad(at, `an int64 is a decimal string or an integer, not ${JSON.stringify(val)}`);
  } else if (INT32.has(ty)) {
    if (!Number.isInteger(val)) bad(at, `must be an integer, not ${JSON.stringify(val)}`);
  } else if (ty === 'double' || ty === 'float') {
    if (typeof val !== 'number') bad(at, `must be a number, not ${JSON.stringify(val)}`);
  } else if (ty === 'bool') {
    if (typeof val !== 'boolean') bad(at, `must be true or false, not ${JSON.stringify(val)}`);
  } else if (ty === 'string') {
    if (typeof val !== 'string') bad(at, `must be a string, not ${JSON.stringify(val)}`);
  } else if (ty === 'bytes') {
    if (typeof val !== 'string') bad(at, 'bytes must be a string');
  } else {
    bad(at, `unexpected field type ${ty}`);
  }
}

// ---- the conventions ----
const registry = new Map();
for (const dir of ['gen-ai', 'server', 'error']) {
  const doc = YAML.parse(fs.readFileSync(path.join(otel, 'semconv', dir, 'registry.yaml'), 'utf8'));
  for (const g of doc.groups || [])
    for (const a of g.attributes || [])
      registry.set(a.id, typeof a.type === 'object' ? 'string' : a.type);
}
const VALUE_TYPE = {stringValue: 'string', intValue: 'int', doubleValue: 'double', boolValue: 'boolean'};

function valueType(v) {
  const k = Object.keys(v || {})[0];
  if (k === 'arrayValue') {
    const inner = (v.arrayValue.values || []).map(valueType);
    return inner.length && inner.every((x) => x === inner[0]) ? `${inner[0]}[]` : 'any[]';
  }
  return VALUE_TYPE[k] || k;
}

function checkAttrs(attrs, where, seen) {
  for (const a of attrs || []) {
    seen.add(a.key);
    if (!/^(gen_ai|server|error)\./.test(a.key)) continue;
    const want = registry.get(a.key);
    if (!want) { bad(where, `attribute ${a.key} is not in the semantic conventions`); continue; }
    const got = valueType(a.value);
    if (want !== 'any' && want !== got) bad(where, `attribute ${a.key} is ${got}, the conventions say ${want}`);
  }
}

// ---- each file ----
const summary = {spans: 0, traces: [], names: {}, kinds: {}, errors: 0, attributes: []};
const attrsSeen = new Set();
for (const file of process.argv.slice(2)) {
  let req;
  try {
    req = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    bad(file, `not JSON: ${e.message}`);
    continue;
  }
  walk(Request, req, file);
  for (const rs of req.resourceSpans || []) {
    checkAttrs(rs.resource && rs.resource.attributes, `${file} resource`, attrsSeen);
    for (const ss of rs.scopeSpans || []) {
      for (const s of ss.spans || []) {
        summary.spans++;
        if (!summary.traces.includes(s.traceId)) summary.traces.push(s.traceId);
        const kind = s.name.split(' ')[0];
        summary.names[kind] = (summary.names[kind] || 0) + 1;
        summary.kinds[s.kind] = (summary.kinds[s.kind] || 0) + 1;
        if (s.status && s.status.code === 2) summary.errors++;
        if (BigInt(s.endTimeUnixNano) < BigInt(s.startTimeUnixNano))
          bad(`${file} span ${s.name}`, 'ends before it starts');
        checkAttrs(s.attributes, `${file} span ${s.name}`, attrsSeen);
        for (const e of s.events || []) checkAttrs(e.attributes, `${file} span ${s.name} event ${e.name}`, attrsSeen);
      }
    }
  }
}
summary.attributes = [...attrsSeen].sort();
for (const p of problems) console.error(`otlp-check: ${p}`);
console.log(JSON.stringify(summary));
process.exit(problems.length ? 1 : 0);
