// Checks OTLP/JSON requests the way a collector would read them, and their
// names, units and attributes against the semantic conventions:
//
//   node otlp-check.mjs FILE...
//
// Each FILE holds one ExportTraceServiceRequest or one
// ExportMetricsServiceRequest (OTLP/JSON; resourceSpans or resourceMetrics
// tells which). Every object is walked against the message types of the
// OTLP .proto files (tests/otel/proto, parsed by protobufjs): an unknown
// field, a wrong type, a bad enum or an id that is not hex of the right
// length fails. Then every attribute named gen_ai.*, server.* or error.*
// must be in the registry (tests/otel/semconv, parsed by yaml) with its
// type.
//
// Metrics also follow the data model: a histogram's bucket counts add up
// to its count, one more than its bounds, which ascend; sums and
// histograms are cumulative, each point starting no later than it ends.
// A gen_ai.* metric must be one the conventions define (metrics.yaml),
// with their instrument and unit, only their attributes and every
// required one, and a histogram the advised bucket boundaries
// (gen-ai-metrics.md). Across the files, in the order given, each
// process's (service.instance.id's) cumulative points never go down and
// keep their start time: each push carries the totals of the last.
//
// Prints a summary as JSON: for spans {spans, traces, names, kinds,
// errors, attributes}; for metrics also {pushes, instances, metrics}, the
// last file's metrics as {NAME: {type, unit, points: [{attributes,
// value} or {attributes, count, sum, bucketCounts, explicitBounds}]}}.
// Exits 1 with each problem on stderr.
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
root.loadSync(['opentelemetry/proto/collector/trace/v1/trace_service.proto',
  'opentelemetry/proto/collector/metrics/v1/metrics_service.proto'], {keepCase: false});
root.resolveAll();
const Request = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');
const MetricsRequest = root.lookupType('opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest');

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
// The GenAI metrics: instrument, unit, the attributes each may carry
// (its own and those of the groups it extends) and which are required;
// the advised bucket boundaries from the conventions' text.
const semconvMetrics = new Map();
{
  const doc = YAML.parse(fs.readFileSync(path.join(otel, 'semconv', 'gen-ai', 'metrics.yaml'), 'utf8'));
  const groups = new Map((doc.groups || []).map((g) => [g.id, g]));
  const attrsOf = (g) => {
    const base = g.extends && groups.has(g.extends) ? attrsOf(groups.get(g.extends)) : new Map();
    for (const a of g.attributes || []) base.set(a.ref || a.id, a.requirement_level);
    return base;
  };
  for (const g of groups.values())
    if (g.type === 'metric')
      semconvMetrics.set(g.metric_name, {instrument: g.instrument, unit: g.unit, attributes: attrsOf(g)});
  const text = fs.readFileSync(path.join(otel, 'semconv', 'gen-ai', 'gen-ai-metrics.md'), 'utf8');
  const re = /ExplicitBucketBoundaries\]\s+of\s+\[([^\]]*)\]\.\s*<!-- semconv metric\.([\w.]+) -->/g;
  for (const m of text.matchAll(re))
    if (semconvMetrics.has(m[2])) semconvMetrics.get(m[2]).buckets = m[1].split(',').map(Number);
  if (!semconvMetrics.get('gen_ai.client.token.usage')?.buckets)
    bad('gen-ai-metrics.md', 'no advised buckets found for gen_ai.client.token.usage');
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

// ---- metrics ----
const TEMPORALITY_CUMULATIVE = 2;
const big = (v) => BigInt(v ?? 0);
const attrMap = (attrs) => Object.fromEntries((attrs || []).map((a) => [a.key, Object.values(a.value || {})[0]]));
const attrKey = (attrs) => JSON.stringify(Object.entries(attrMap(attrs)).sort());
const temporality = (t) => (typeof t === 'string' ? {AGGREGATION_TEMPORALITY_CUMULATIVE: 2, AGGREGATION_TEMPORALITY_DELTA: 1}[t] : t);
// instance/metric/attributes -> the last push's point, for the going-down check.
const lastPoints = new Map();

function checkPoint(where, kind, p) {
  if (p.startTimeUnixNano !== undefined && big(p.startTimeUnixNano) > big(p.timeUnixNano))
    bad(where, 'starts after it ends');
  if (!p.timeUnixNano || big(p.timeUnixNano) === 0n) bad(where, 'no timeUnixNano');
  if (kind !== 'histogram') {
    if (p.asDouble === undefined && p.asInt === undefined) bad(where, 'no value');
    return;
  }
  const counts = (p.bucketCounts || []).map(big);
  const bounds = p.explicitBounds || [];
  if (counts.length !== bounds.length + 1)
    bad(where, `${counts.length} bucket counts for ${bounds.length} bounds (want one more)`);
  if (counts.reduce((a, b) => a + b, 0n) !== big(p.count))
    bad(where, `bucket counts add up to ${counts.reduce((a, b) => a + b, 0n)}, count is ${p.count}`);
  for (let i = 1; i < bounds.length; i++)
    if (!(bounds[i] > bounds[i - 1])) bad(where, `bounds do not ascend at ${bounds[i]}`);
}

// A later push of the same process must not have less of any cumulative
// point than an earlier one, and must keep its start.
function checkCumulative(where, instance, name, kind, p) {
  const key = `${instance} ${name} ${attrKey(p.attributes)}`;
  const prev = lastPoints.get(key);
  lastPoints.set(key, p);
  if (!prev) return;
  if (big(prev.startTimeUnixNano) !== big(p.startTimeUnixNano))
    bad(where, `the start moved from ${prev.startTimeUnixNano} to ${p.startTimeUnixNano} (a reset?)`);
  if (big(p.timeUnixNano) < big(prev.timeUnixNano)) bad(where, 'ends before the previous push did');
  if (kind === 'sum') {
    const v = p.asDouble ?? Number(p.asInt), was = prev.asDouble ?? Number(prev.asInt);
    if (v < was) bad(where, `went down from ${was} to ${v}`);
  } else {
    if (big(p.count) < big(prev.count)) bad(where, `count went down from ${prev.count} to ${p.count}`);
    if (p.sum < prev.sum) bad(where, `sum went down from ${prev.sum} to ${p.sum}`);
    (p.bucketCounts || []).forEach((c, i) => {
      if (big(c) < big((prev.bucketCounts || [])[i])) bad(where, `bucket ${i} went down`);
    });
  }
}

function checkGenAi(where, m, kind, points) {
  const def = semconvMetrics.get(m.name);
  if (!def) return bad(where, 'is not a metric of the semantic conventions');
  const instrument = {histogram: 'histogram', sum: 'counter', gauge: 'gauge'}[kind];
  if (def.instrument !== instrument) bad(where, `is a ${instrument}, the conventions say ${def.instrument}`);
  if (m.unit !== def.unit) bad(where, `unit ${JSON.stringify(m.unit)}, the conventions say ${JSON.stringify(def.unit)}`);
  for (const p of points) {
    const keys = Object.keys(attrMap(p.attributes));
    for (const k of keys)
      if (!def.attributes.has(k)) bad(where, `attribute ${k} is not one the conventions give this metric`);
    for (const [k, level] of def.attributes)
      if (level === 'required' && !keys.includes(k)) bad(where, `required attribute ${k} is missing`);
    if (kind === 'histogram' && def.buckets &&
        JSON.stringify(p.explicitBounds) !== JSON.stringify(def.buckets))
      bad(where, `bounds ${JSON.stringify(p.explicitBounds)}, the conventions advise ${JSON.stringify(def.buckets)}`);
  }
}

function checkMetrics(req, file, summary) {
  const last = {};
  for (const rm of req.resourceMetrics || []) {
    const res = attrMap(rm.resource && rm.resource.attributes);
    checkAttrs(rm.resource && rm.resource.attributes, `${file} resource`, attrsSeen);
    if (!res['service.name']) bad(`${file} resource`, 'no service.name');
    const instance = res['service.instance.id'] || '';
    if (!summary.instances.includes(instance)) summary.instances.push(instance);
    for (const sm of rm.scopeMetrics || []) {
      for (const m of sm.metrics || []) {
        const where = `${file} metric ${m.name}`;
        const kind = ['sum', 'gauge', 'histogram'].find((k) => m[k]);
        if (!kind) { bad(where, 'is not a sum, a gauge or a histogram'); continue; }
        if (!/^[A-Za-z][\w.\-/]{0,254}$/.test(m.name)) bad(where, 'is not a valid instrument name');
        if (last[m.name]) bad(where, 'appears twice in one request');
        const points = m[kind].dataPoints || [];
        if (!points.length) bad(where, 'has no data points');
        if (kind !== 'gauge' && temporality(m[kind].aggregationTemporality) !== TEMPORALITY_CUMULATIVE)
          bad(where, `temporality ${m[kind].aggregationTemporality}, not cumulative`);
        if (kind === 'sum' && m.sum.isMonotonic !== true) bad(where, 'a counter must be a monotonic sum');
        if (m.name.startsWith('gen_ai.')) checkGenAi(where, m, kind, points);
        points.forEach((p, i) => {
          const at = `${where} point ${i}`;
          checkAttrs(p.attributes, at, attrsSeen);
          checkPoint(at, kind, p);
          if (kind !== 'gauge') checkCumulative(at, instance, m.name, kind, p);
        });
        last[m.name] = {
          type: kind, unit: m.unit,
          points: points.map((p) => kind === 'histogram'
            ? {attributes: attrMap(p.attributes), count: Number(p.count), sum: p.sum,
               bucketCounts: (p.bucketCounts || []).map(Number), explicitBounds: p.explicitBounds}
            : {attributes: attrMap(p.attributes), value: p.asDouble ?? Number(p.asInt)}),
        };
      }
    }
  }
  summary.pushes++;
  summary.metrics = last;
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
  if (req && req.resourceMetrics) {
    if (summary.pushes === undefined) Object.assign(summary, {pushes: 0, instances: [], metrics: {}});
    walk(MetricsRequest, req, file);
    checkMetrics(req, file, summary);
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
