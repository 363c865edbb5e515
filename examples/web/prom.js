// Reading the Prometheus text exposition (format 0.0.4) of GET /metrics in
// the browser, and histogram_quantile() over bucket deltas, the way
// Prometheus computes it (linear interpolation inside the bucket).
'use strict';

(function () {
  function number(s) {
    if (s === '+Inf' || s === 'Inf') return Infinity;
    if (s === '-Inf') return -Infinity;
    if (s === 'NaN') return NaN;
    return Number(s);
  }

  // Label block body: name="value",... with \\ \" \n escapes in values.
  function parseLabels(s, i, out) {
    for (;;) {
      while (s[i] === ' ' || s[i] === ',') i++;
      if (s[i] === '}') return i + 1;
      const eq = s.indexOf('=', i);
      if (eq < 0 || s[eq + 1] !== '"') return -1;
      const name = s.slice(i, eq).trim();
      let v = '';
      let j = eq + 2;
      for (; j < s.length && s[j] !== '"'; j++) {
        if (s[j] === '\\' && j + 1 < s.length) {
          j++;
          v += s[j] === 'n' ? '\n' : s[j];
        } else {
          v += s[j];
        }
      }
      if (j >= s.length) return -1;
      out[name] = v;
      i = j + 1;
    }
  }

  // Returns {samples: Map(name -> [{labels, value}]), types: Map(name -> type)}.
  function parse(text) {
    const samples = new Map();
    const types = new Map();
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (line === '') continue;
      if (line[0] === '#') {
        const m = /^#\s+TYPE\s+(\S+)\s+(\S+)/.exec(line);
        if (m) types.set(m[1], m[2]);
        continue;
      }
      const m = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
      if (!m) continue;
      const name = m[0];
      const labels = {};
      let i = name.length;
      if (line[i] === '{') {
        i = parseLabels(line, i + 1, labels);
        if (i < 0) continue;
      }
      const rest = line.slice(i).trim().split(/\s+/);
      if (rest.length < 1 || rest[0] === '') continue;
      if (!samples.has(name)) samples.set(name, []);
      samples.get(name).push({ labels, value: number(rest[0]) });
    }
    return { samples, types };
  }

  // The sum of every sample of |name| whose labels include |match|.
  function value(m, name, match) {
    const list = m.samples.get(name);
    if (!list) return undefined;
    let sum = 0;
    let seen = false;
    for (const s of list) {
      if (match && !Object.entries(match).every(([k, v]) => s.labels[k] === v)) continue;
      sum += s.value;
      seen = true;
    }
    return seen ? sum : undefined;
  }

  // {labelValue: value} of |name| by label |key|.
  function byLabel(m, name, key) {
    const out = {};
    for (const s of m.samples.get(name) || []) {
      if (s.labels[key] !== undefined) out[s.labels[key]] = (out[s.labels[key]] || 0) + s.value;
    }
    return out;
  }

  // Cumulative buckets of histogram |base| as [[le, count], ...] sorted by le.
  function buckets(m, base) {
    const out = [];
    for (const s of m.samples.get(base + '_bucket') || []) {
      if (s.labels.le !== undefined) out.push([number(s.labels.le), s.value]);
    }
    out.sort((a, b) => a[0] - b[0]);
    return out;
  }

  // The bucket counts of |now| minus those of |before| (same bounds), so a
  // quantile describes only the samples taken between two scrapes.
  function delta(now, before) {
    if (!before) return now;
    const old = new Map(before);
    return now.map(([le, c]) => [le, Math.max(0, c - (old.get(le) || 0))]);
  }

  // histogram_quantile(q, buckets): null without samples.
  function quantile(q, bs) {
    if (bs.length === 0) return null;
    const total = bs[bs.length - 1][1];
    if (!(total > 0)) return null;
    const rank = q * total;
    let prevLe = 0;
    let prevCount = 0;
    for (const [le, count] of bs) {
      if (count >= rank) {
        // In the +Inf bucket the best answer is the highest finite bound.
        if (le === Infinity) return prevLe;
        const inBucket = count - prevCount;
        if (inBucket <= 0) return le;
        return prevLe + (le - prevLe) * ((rank - prevCount) / inBucket);
      }
      prevLe = le;
      prevCount = count;
    }
    return prevLe;
  }

  window.Prom = { parse, value, byLabel, buckets, delta, quantile };
})();
