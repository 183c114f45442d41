// metrics-check.mjs FILE: parses a /metrics answer with a third-party
// Prometheus text-format parser (parse-prometheus-text-format, prom2json's
// shape) and checks each histogram: buckets cumulative in le order, the
// +Inf bucket equal to _count (in the parsed shape and in the text, where
// +Inf must be each series' last bucket). Prints {NAME: {type, series:
// [{labels, value} or {labels, count, sum, buckets}]}} on stdout; exits 1
// with the problems on stderr.
import fs from 'fs';
import parse from 'parse-prometheus-text-format';

const text = fs.readFileSync(process.argv[2], 'utf8');
const families = parse(text);
const out = {};
const problems = [];

// The parser flattens a histogram's series into one, dropping every label
// but le (and _sum and _count with labels): so it reads the samples again
// with the TYPE lines taken out, each sample name a family of its own with
// its labels, and the histograms are put together from those.
const types = {};
for (const f of families) types[f.name] = f.type;
const samples = parse(text.split('\n').filter((l) => !l.startsWith('# TYPE ')).join('\n'));
const byName = {};
for (const f of samples) byName[f.name] = (byName[f.name] || []).concat(f.metrics);
const key = (labels) => JSON.stringify(Object.entries(labels || {}).filter(([k]) => k !== 'le').sort());

for (const [name, type] of Object.entries(types)) {
  const series = [];
  if (type !== 'HISTOGRAM') {
    for (const m of byName[name] || [])
      series.push({ labels: m.labels || {}, value: Number(m.value) });
    out[name] = { type, series };
    continue;
  }
  const hs = new Map();
  const get = (labels) => {
    const k = key(labels);
    if (!hs.has(k)) {
      const l = { ...(labels || {}) };
      delete l.le;
      hs.set(k, { labels: l, buckets: {}, order: [] });
    }
    return hs.get(k);
  };
  for (const m of byName[name + '_bucket'] || []) {
    const h = get(m.labels);
    h.buckets[m.labels.le] = Number(m.value);
    h.order.push(m.labels.le);
  }
  for (const m of byName[name + '_sum'] || []) get(m.labels).sum = Number(m.value);
  for (const m of byName[name + '_count'] || []) get(m.labels).count = Number(m.value);
  for (const h of hs.values()) {
    const what = `${name} ${JSON.stringify(h.labels)}`;
    let prev = -Infinity, prevCount = 0;
    for (const le of h.order) {
      const bound = le === '+Inf' ? Infinity : Number(le);
      if (!(bound > prev)) problems.push(`${what}: le=${le} out of order`);
      if (h.buckets[le] < prevCount)
        problems.push(`${what}: bucket le=${le} ${h.buckets[le]} < ${prevCount} (not cumulative)`);
      prev = bound;
      prevCount = h.buckets[le];
    }
    if (h.order[h.order.length - 1] !== '+Inf')
      problems.push(`${what}: the last bucket is not +Inf`);
    else if (h.buckets['+Inf'] !== h.count)
      problems.push(`${what}: +Inf ${h.buckets['+Inf']} != _count ${h.count}`);
    if (h.sum === undefined || h.count === undefined)
      problems.push(`${what}: no _sum or _count`);
    series.push({ labels: h.labels, count: h.count, sum: h.sum, buckets: h.buckets });
  }
  out[name] = { type, series };
}

if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log(JSON.stringify(out));
