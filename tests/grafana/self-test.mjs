// Proves that check.mjs fails where it must. Copies the first of grafana/dashboards/*.json to
// a temporary directory, once clean and once per planted fault, runs the check on each copy
// as scripts/check-grafana does, and asserts: the clean copy passes (exit 0, no problem); each
// fault makes the check exit 1 with exactly the expected problems, each naming the file, the
// panel's title and where in the panel. Faults planted:
//   option-key  a misspelled key in a panel's options (legend.displayMode -> dispalyMode)
//   unit        a unit that is not Grafana's ("secs")
//   promql      a PromQL expression without its closing parenthesis
//   lint        at once: a wrong enum value, an undefined variable, a data source uid that is
//               not provisioned, a panel id used twice, a panel over another one, and a
//               misspelled field of a query (exemplars for exemplar)
//   histogram   at once: classic buckets summed without by (le), a native histogram summed
//               by (le), a classic heatmap without format "heatmap" and one that calculates
//
//   node tests/grafana/self-test.mjs
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const here = path.dirname(new URL(import.meta.url).pathname);
const dashboards = path.resolve(here, "../../grafana/dashboards");
const file = fs.readdirSync(dashboards).filter((f) => f.endsWith(".json")).sort()[0];
const clean = JSON.parse(fs.readFileSync(path.join(dashboards, file), "utf8"));

// The first panel (rows' panels included) for which has() holds.
const panelWith = (dashboard, has) => dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).find((p) => { try { return has(p); } catch { return false; } });

// name -> (dashboard) => the problems it must produce, as "panel 'TITLE': PATH: TEXT" prefixes.
const FAULTS = {
  "option-key": (d) => {
    const panel = panelWith(d, (p) => p.options.legend.displayMode !== undefined);
    const legend = panel.options.legend;
    legend.dispalyMode = legend.displayMode;
    delete legend.displayMode;
    return [`panel '${panel.title}': options.legend.dispalyMode: Object literal may only specify known properties`];
  },
  unit: (d) => {
    const panel = panelWith(d, (p) => p.fieldConfig.defaults.unit !== undefined);
    panel.fieldConfig.defaults.unit = "secs";
    return [`panel '${panel.title}': fieldConfig.defaults.unit: "secs" is not a Grafana unit id`];
  },
  promql: (d) => {
    const panel = panelWith(d, (p) => p.targets[0].expr.endsWith(")"));
    panel.targets[0].expr = panel.targets[0].expr.slice(0, -1);
    return [`panel '${panel.title}': targets[0] (${panel.targets[0].refId}).expr: PromQL syntax error`];
  },
  lint: (d) => {
    const tooltip = panelWith(d, (p) => p.type === "timeseries" && p.options.tooltip.mode !== undefined);
    tooltip.options.tooltip.mode = "multiple";
    const variable = panelWith(d, (p) => p !== tooltip && p.targets[0].legendFormat !== undefined);
    variable.targets[0].legendFormat += " $undefined_variable";
    const source = panelWith(d, (p) => p !== tooltip && p !== variable && p.datasource.uid !== undefined);
    source.datasource.uid = "not-provisioned";
    const [first, second] = d.panels.filter((p) => p.type !== "row" && ![tooltip, variable, source].includes(p));
    second.id = first.id;
    const [above, below] = d.panels.filter((p) => p.type !== "row" && p.gridPos.x === 0).slice(-2);
    below.gridPos.y = above.gridPos.y; // onto the panel above it, and maybe that one's neighbours
    const traced = panelWith(d, (p) => p.targets?.[0]?.exemplar === true);
    delete traced.targets[0].exemplar;
    traced.targets[0].exemplars = true; // Grafana's field is `exemplar`
    return [
      `panel '${traced.title}': targets[0] (${traced.targets[0].refId}).exemplars: not a field of a Prometheus query`,
      `panel '${tooltip.title}': options.tooltip.mode: Type '"multiple"' is not assignable`,
      `panel '${variable.title}': targets[0] (${variable.targets[0].refId}).legendFormat: $undefined_variable is not a variable`,
      `panel '${source.title}': datasource: data source uid "not-provisioned" is not provisioned`,
      `panel '${second.title}': id: id ${first.id} is also the id of panel '${first.title}'`,
      `panel '${below.title}': gridPos: overlaps panel '`,
    ];
  },
  histogram: (d) => {
    const classic = panelWith(d, (p) => p.type === "timeseries" && /histogram_quantile.*by \(le\).*_bucket/.test(p.targets[0].expr));
    classic.targets[0].expr = classic.targets[0].expr.replace("sum by (le) (", "sum(");
    const native = panelWith(d, (p) => p.type === "timeseries" && /histogram_quantile/.test(p.targets[0].expr) && !/_bucket/.test(p.targets.at(-1).expr));
    const last = native.targets.at(-1);
    last.expr = last.expr.replace("sum(rate(", "sum by (le) (rate(");
    const heatmap = panelWith(d, (p) => p.type === "heatmap" && p.targets[0].format === "heatmap");
    delete heatmap.targets[0].format;
    heatmap.options.calculate = true;
    return [
      `panel '${classic.title}': targets[0] (${classic.targets[0].refId}).expr: a quantile of classic buckets (_bucket) aggregated without by (le)`,
      `panel '${native.title}': targets[${native.targets.length - 1}] (${last.refId}).expr: a quantile of a native histogram (no _bucket) aggregated by (le)`,
      `panel '${heatmap.title}': targets[0] (${heatmap.targets[0].refId}).format: undefined: a heatmap of classic buckets needs format "heatmap"`,
      `panel '${heatmap.title}': options.calculate: true: a histogram's buckets are already there`,
    ];
  },
};

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "check-grafana-"));
const failures = [];
try {
  for (const [name, plant] of [["clean", () => []], ...Object.entries(FAULTS)]) {
    const dashboard = structuredClone(clean);
    const expected = plant(dashboard).map((line) => `${name}.json: ${line}`);
    const copy = path.join(dir, `${name}.json`);
    fs.writeFileSync(copy, JSON.stringify(dashboard, null, 2));
    const run = spawnSync(process.execPath, [path.join(here, "check.mjs"), copy], { encoding: "utf8" });
    const problems = run.stdout.split("\n").filter((line) => line.startsWith(`${name}.json: `));
    const missing = expected.filter((prefix) => !problems.some((line) => line.startsWith(prefix)));
    const extra = problems.filter((line) => !expected.some((prefix) => line.startsWith(prefix)));
    const status = expected.length ? 1 : 0;
    if (run.status !== status || missing.length || extra.length) {
      failures.push(`${name}: exit ${run.status} (expected ${status})` +
        missing.map((m) => `\n  not reported: ${m}`).join("") + extra.map((e) => `\n  not expected: ${e}`).join("") +
        (run.stderr ? `\n  stderr: ${run.stderr.trim()}` : ""));
    }
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
for (const failure of failures) console.log(`self-test FAILED: ${failure}`);
const count = Object.keys(FAULTS).length;
console.log(failures.length
  ? `check-grafana: self-test: ${failures.length} of ${count + 1} cases wrong`
  : `check-grafana: self-test: the clean copy of ${file} passes; each of its ${count} planted faults fails the check, named with its panel`);
process.exit(failures.length ? 1 : 0);
