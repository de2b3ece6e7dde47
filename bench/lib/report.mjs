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
    const ratio = b?.rps && k?.rps ? k.rps / b.rps : null;
    const ok = ratio === null ? null : check(ratio, p.target);
    const perCpu = perCpuRatio(b, k, p);
    const why = p.note || (!k ? 'Karasu not measured' : !b ? `${p.base} not measured` : '');
    verdicts.push({ scenario: p.scenario, size: p.size, base: p.base, subject: p.subject, ratio, per_cpu_ratio: perCpu, target: p.target, ok, note: why || undefined });
    lines.push(
      `| ${p.scenario}${p.label ? ` ${p.label}` : ''} | ${p.size} | ${p.base} | ${fmtInt(b?.rps)} | ${fmtMs(b?.p50_ms)} / ${fmtMs(b?.p99_ms)} | ${fmtCpu(b?.cpu)} ` +
        `| ${fmtInt(k?.rps)} | ${fmtMs(k?.p50_ms)} / ${fmtMs(k?.p99_ms)} | ${fmtCpu(k?.cpu)} ` +
        `| ${fmtRatio(ratio)} | ${p.target.op} ${p.target.value} | ${verdictText(ok, why)} | ${fmtRatio(perCpu)} |`,
    );
  }
  return { lines, verdicts };
}

/** Requests per CPU-second of the subject's own process over the baseline's (hot-hit: proxy vs proxy). */
function perCpuRatio(b, k, p) {
  const own = (a, name) => (a?.rps && a.cpu?.[name] > 0 ? a.rps / a.cpu[name] : null);
  const kb = own(k, p.proc ?? p.subject);
  const bb = own(b, p.proc ?? p.base);
  return p.perCpu && kb && bb ? kb / bb : null;
}

export const check = (x, t) => (t.op === '>=' ? x >= t.value : x <= t.value);
const verdictText = (ok, why) => (ok === null ? why || 'n/a' : ok ? 'pass' : 'BELOW TARGET');

export function bigTable(big) {
  const s = (x) => (x === null || x === undefined ? '–' : `${x.toFixed(3)} s`);
  const lines = [
    '| object | direct TTFB | direct total | Karasu TTFB | Karasu total | total ratio | target | Karasu RSS growth | target | |',
    '| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | --- |',
  ];
  const ratioOk = big.ratio === null ? null : big.ratio <= 2;
  const rssOk = big.rss_growth_mib === null ? null : big.rss_growth_mib <= 64;
  const verdict = ratioOk === null || rssOk === null ? big.note || 'n/a' : ratioOk && rssOk ? 'pass' : 'BELOW TARGET';
  lines.push(
    `| 256 MiB | ${s(big.direct.ttfb_s)} | ${s(big.direct.total_s)} | ${s(big.karasu.ttfb_s)} | ${s(big.karasu.total_s)} ` +
      `| ${fmtRatio(big.ratio)} | <= 2 | ${big.rss_growth_mib === null ? '–' : `${big.rss_growth_mib.toFixed(1)} MiB`} | <= 64 MiB | ${verdict} |`,
  );
  return lines;
}
