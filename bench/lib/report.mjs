// Aggregation of the measured rounds and the printed tables (GitHub-flavoured Markdown, pasteable into docs).

export const median = (xs) => {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};

/** One aggregate per (scenario, size, target): medians over the rounds. */
export function aggregate(samples) {
  const groups = new Map();
  for (const s of samples) {
    const k = `${s.scenario}|${s.size}|${s.target}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(s);
  }
  return [...groups.values()].map((g) => ({
    scenario: g[0].scenario,
    size: g[0].size,
    target: g[0].target,
    rounds: g.length,
    rps: median(g.map((s) => s.rps)),
    rps_each: g.map((s) => Math.round(s.rps)),
    /** Per round, for paired ratios: round number → { rps, cpu }. */
    by_round: Object.fromEntries(g.map((s) => [s.round, { rps: s.rps, cpu: s.cpu_pct || {} }])),
    p50_ms: median(g.map((s) => s.p50_ms)),
    p99_ms: median(g.map((s) => s.p99_ms)),
    cpu: medianCpu(g),
    errors: g.reduce((a, s) => a + (s.errors || 0), 0),
    failed: g.filter((s) => s.error).map((s) => s.error),
  }));
}

function medianCpu(g) {
  const names = new Set(g.flatMap((s) => Object.keys(s.cpu_pct || {})));
  return Object.fromEntries([...names].map((n) => [n, median(g.map((s) => s.cpu_pct?.[n]))]));
}

const fmtInt = (x) => (x === null || x === undefined ? '–' : Math.round(x).toLocaleString('en-US'));
const fmtMs = (x) => (x === null || x === undefined ? '–' : x < 10 ? x.toFixed(2) : x.toFixed(1));
const fmtRatio = (x) => (x === null || x === undefined ? '–' : x.toFixed(2));
const fmtCpu = (cpu) =>
  Object.entries(cpu || {})
    .filter(([, v]) => v !== null)
    .map(([n, v]) => `${n} ${Math.round(v)}`)
    .join(', ') || '–';

/**
 * Comparison rows: `pairs` = [{ scenario, size, base, subject, target: { op: '>=' | '<=', value }, note }];
 * optional `label` (shown after the scenario, e.g. the subject's variant) and `proc` (the process name in the
 * CPU columns when base and subject are targets of the same program, for "per CPU-s").
 * Returns { lines, verdicts } where verdicts carry the numbers for the JSON.
 */
export function comparisonTable(aggs, pairs) {
  const find = (p, t) => aggs.find((a) => a.scenario === p.scenario && a.size === p.size && a.target === t);
  const lines = [
    '| scenario | size | baseline | req/s | p50 / p99 ms | CPU % | Karasu req/s | p50 / p99 ms | CPU % | Karasu / baseline | target | | per CPU-s |',
    '| --- | --- | --- | ---: | ---: | --- | ---: | ---: | --- | ---: | --- | --- | ---: |',
  ];
  const verdicts = [];
  for (const p of pairs) {
    const b = find(p, p.base);
    const k = find(p, p.subject);
    const ratio = pairedRatio(b, k, (a) => a.rps);
    // A reference row (another proxy beside the same baseline) shows a ratio and judges nothing.
    const ok = ratio === null || p.reference ? null : check(ratio, p.target);
    const perCpu = perCpuRatio(b, k, p);
    const why = p.note || (!k ? `${p.subject} not measured` : !b ? `${p.base} not measured` : p.reference ? 'reference' : '');
    verdicts.push({ scenario: p.scenario, size: p.size, base: p.base, subject: p.subject, ratio, per_cpu_ratio: perCpu, target: p.target, ok, note: why || undefined });
    lines.push(
      `| ${p.scenario}${p.label ? ` ${p.label}` : ''}${p.reference ? ` (${p.subject} in Karasu's columns)` : ''} | ${p.size} | ${p.base} | ${fmtInt(b?.rps)} | ${fmtMs(b?.p50_ms)} / ${fmtMs(b?.p99_ms)} | ${fmtCpu(b?.cpu)} ` +
        `| ${fmtInt(k?.rps)} | ${fmtMs(k?.p50_ms)} / ${fmtMs(k?.p99_ms)} | ${fmtCpu(k?.cpu)} ` +
        `| ${fmtRatio(ratio)} | ${p.target ? `${p.target.op} ${p.target.value}` : '–'} | ${verdictText(ok, why)} | ${fmtRatio(perCpu)} |`,
    );
  }
  return { lines, verdicts };
}

/**
 * The median over rounds of subject/baseline measured in the same round. The two runs of a round are
 * back to back, so a slow phase of a shared machine (which can last several runs) weighs on both sides
 * of each ratio instead of on whichever target happened to run in it.
 */
function pairedRatio(b, k, subjectValue, baseValue = subjectValue) {
  if (!b?.by_round || !k?.by_round) return null;
  const ratios = [];
  for (const [round, kr] of Object.entries(k.by_round)) {
    const br = b.by_round[round];
    const kv = kr.rps ? subjectValue(kr) : null;
    const bv = br?.rps ? baseValue(br) : null;
    if (kv && bv) ratios.push(kv / bv);
  }
  return median(ratios);
}

/** Requests per CPU-second of the subject's own process over the baseline's (hot-hit: proxy vs proxy). */
function perCpuRatio(b, k, p) {
  if (!p.perCpu) return null;
  const own = (name) => (r) => (r.cpu[name] > 0 ? r.rps / r.cpu[name] : null);
  return pairedRatio(b, k, own(p.proc ?? p.subject), own(p.proc ?? p.base));
}

export const check = (x, t) => (t.op === '>=' ? x >= t.value : x <= t.value);
const verdictText = (ok, why) => (ok === null ? why || 'n/a' : ok ? 'pass' : 'BELOW TARGET');

export function bigTable(big) {
  const s = (x) => (x === null || x === undefined ? '–' : `${x.toFixed(3)} s`);
  const ms = (x) => (x === null || x === undefined ? '–' : `${x >= 0 ? '+' : ''}${(x * 1000).toFixed(1)} ms`);
  const lines = [
    `big: ${big.samples} downloads of 256 MiB per row, interleaved, by ${big.client}; medians. A ratio and "added" are against the row ` +
      `named in "vs"; "added" = median over rounds of (this TTFB - that row's TTFB in the same round).`,
    '',
    '| 256 MiB | TTFB | vs | TTFB ratio | added | target | total | total ratio | RSS growth | target | |',
    '| --- | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: | --- | --- |',
  ];
  // The issue's targets: TTFB <= 2x direct and RSS growth <= 64 MiB; the total time is shown, not judged.
  const ttfbOk = big.ttfb_ratio === null || big.ttfb_ratio === undefined ? null : big.ttfb_ratio <= 2;
  const rssOk = big.rss_growth_mib === null ? null : big.rss_growth_mib <= 64;
  const verdict = ttfbOk === null || rssOk === null ? big.note || 'n/a' : ttfbOk && rssOk ? 'pass' : 'BELOW TARGET';
  for (const r of big.rows) {
    const judged = r.judged
      ? [`<= 2`, s(r.total_s), fmtRatio(r.total_ratio), big.rss_growth_mib === null ? '–' : `${big.rss_growth_mib.toFixed(1)} MiB`, '<= 64 MiB', verdict]
      : ['', s(r.total_s), r.base ? fmtRatio(r.total_ratio) : '', '', '', ''];
    lines.push(`| ${r.label} | ${s(r.ttfb_s)} | ${r.base ?? ''} | ${r.base ? fmtRatio(r.ttfb_ratio) : ''} | ${r.base ? ms(r.ttfb_added_s) : ''} | ${judged.join(' | ')} |`);
  }
  return lines;
}

/**
 * The zipf scenario: one row per proxy and offline reference; Karasu's row carries the verdict against the
 * target. Returns { lines, verdict }.
 */
export function zipfTable(z) {
  const mib = (b) => (b === null || b === undefined ? '–' : (b / 1048576).toLocaleString('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 }));
  const pct = (x) => (x === null || x === undefined ? '–' : x.toFixed(1));
  const prefix = z.requests < z.full_trace;
  const infinite = z.rows.find((r) => r.proxy === 'sim:infinite');
  const lines = [
    `zipf: Zipf(1.0) GET trace, ${prefix ? `the first ${fmtInt(z.requests)} of` : 'all'} the cost bench's ${fmtInt(z.full_trace)} GETs (SEED ${z.seed}), ` +
      `${fmtInt(z.objects)} objects (${mib(z.data_bytes)} MiB, ${fmtInt(z.distinct_objects)} of them requested), ${z.concurrency} in flight; ` +
      `cache = 10 % of the data set = ${fmtInt(z.cache_bytes)} B (${mib(z.cache_bytes)} MiB).` +
      (z.seeding ? ` Seeded ${mib(z.seeding.bytes)} MiB in ${z.seeding.seconds.toFixed(1)} s.` : ''),
    '',
    '| zipf | client GETs | origin GETs | % GETs saved | client MiB | origin MiB | byte hit ratio | failed | replay s | target | |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |',
  ];
  const label = {
    karasu: `karasu (memory tier held at ${mib(z.cache_bytes)} MiB)`,
    nginx: `nginx proxy_cache (max_size ${mib(z.cache_bytes)} MiB), reference`,
    'sim:lru': 'sim: plain LRU at the byte budget',
    'sim:belady-size': 'sim: belady-size (offline, size-aware)',
    'sim:infinite': 'sim: infinite cache (compulsory misses only)',
  };
  let verdict = null;
  for (const r of z.rows) {
    let target = '';
    let v = '';
    if (r.proxy === 'karasu') {
      target = `${z.target.op} ${z.target.value}`;
      const ok = r.pct_gets_saved === null || r.pct_gets_saved === undefined || r.truncated_by_time ? null : check(r.pct_gets_saved, z.target);
      v = r.error ? 'did not start' : r.truncated_by_time ? 'stopped by time bound' : ok ? 'pass' : 'BELOW TARGET';
      if (prefix && ok !== null) v += ` (${fmtInt(z.requests)}-GET prefix, see below)`;
      verdict = { scenario: 'zipf', subject: 'karasu', metric: 'pct_gets_saved', value: r.pct_gets_saved ?? null, target: z.target, ok, requests: z.requests, whole_trace: !prefix, note: r.error };
    }
    lines.push(
      `| ${label[r.proxy] ?? r.proxy} | ${fmtInt(r.client_gets)} | ${fmtInt(r.origin_gets)} | ${pct(r.pct_gets_saved)} | ${mib(r.client_bytes)} | ${mib(r.origin_bytes)} ` +
        `| ${r.byte_hit_ratio === null || r.byte_hit_ratio === undefined ? '–' : r.byte_hit_ratio.toFixed(3)} | ${r.failed ?? '–'} | ${r.elapsed_s === undefined ? '–' : r.elapsed_s.toFixed(1)} | ${target} | ${v} |`,
    );
  }
  lines.push('');
  const notes = [];
  if (prefix && infinite)
    notes.push(
      `The ${z.target.value} % target is the product's figure for the whole ${fmtInt(z.full_trace)}-GET trace (LRU 67.2 %, belady-size 87.5 %, infinite 95.2 % there). ` +
        `On this prefix even an infinite cache saves only ${pct(infinite.pct_gets_saved)} % (first-time misses), so expect Karasu lower than on the whole trace ` +
        `(\`--zipf-requests ${z.full_trace}\`).`,
    );
  for (const r of z.rows) {
    if (r.proxy === 'karasu' && r.cache_peak_bytes !== undefined)
      notes.push(
        `Karasu memory tier: peak ${fmtInt(r.cache_peak_bytes)} B as charged (bodies + per-entry overhead; karasu_cache_bytes sampled every second), ` +
          `budget ${fmtInt(r.cache_budget_bytes)} B${r.cache_peak_bytes !== null && r.cache_budget_bytes !== null ? (r.cache_peak_bytes <= r.cache_budget_bytes ? ': held' : ': EXCEEDED') : ''}.`,
      );
    if (r.proxy === 'nginx')
      notes.push(
        'nginx is a reference, not a like-for-like competitor: its cache manager trims to max_size only between passes (it sleeps up to 10 s), ' +
          'so the disk cache overshoots max_size and its hit ratio follows the real footprint and the request rate (see the cost bench\'s RESULTS.md).' +
          (r.cache_samples ? ` Here its cache files took mean ${mib(r.cache_mean_bytes)} MiB, peak ${mib(r.cache_peak_bytes)} MiB (${(r.cache_peak_bytes / z.cache_bytes).toFixed(1)}× max_size; ${r.cache_samples_over} of ${r.cache_samples} one-second samples over).` : ''),
      );
    if (r.failed) notes.push(`${r.proxy}: ${r.failed} failed requests: ${JSON.stringify(r.failures)}; first: ${r.first_failures.join('; ')}`);
    if (r.origin_other) notes.push(`${r.proxy}: ${r.origin_other} origin requests other than GET`);
    if (r.distinct_keys_fetched !== undefined && r.distinct_keys_fetched !== z.distinct_objects && !r.truncated_by_time)
      notes.push(`${r.proxy}: COUNTING CHECK: the relay saw ${fmtInt(r.distinct_keys_fetched)} distinct keys, the trace has ${fmtInt(z.distinct_objects)}`);
    if (r.origin_body_bytes !== undefined && r.origin_body_bytes !== r.origin_bytes)
      notes.push(`${r.proxy}: origin bytes streamed (${fmtInt(r.origin_body_bytes)}) differ from the Content-Length sum (${fmtInt(r.origin_bytes)})`);
    if (r.relay_retries) notes.push(`${r.proxy}: the relay retried ${r.relay_retries} GET(s) on a stale keep-alive socket to s3rver (not counted twice)`);
  }
  for (const n of z.notes) notes.push(n);
  notes.push('Origin = GETs and Content-Length bytes counted by a relay in front of s3rver; byte hit ratio = 1 − origin bytes / client bytes.');
  lines.push(...notes.map((n) => `- zipf: ${n}`));
  return { lines, verdict };
}
