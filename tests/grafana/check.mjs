// Checks Grafana dashboards without a Grafana:
//
//   node tests/grafana/check.mjs [--datasources DIR] [DASHBOARD.json ...]
//
// (by default grafana/dashboards/*.json, against grafana/provisioning/datasources/*.yml).
//
// Types: it writes each dashboard as TypeScript, the dashboard an object literal typed as
// @grafana/schema's Dashboard, each panel one typed as its Panel (or RowPanel), and each
// panel's options, fieldConfig.defaults.custom and override properties as literals typed with
// that panel plugin's generated Options and FieldConfig, then runs tsc --strict on it. In an
// object literal an unknown or misspelled key is an error, and so is a wrong enum value; each
// error is mapped back to its file, panel title and JSON path. types.ts says how Grafana's
// types are adapted to JSON, and why.
//
// Lint: unique panel ids; every gridPos inside the 24 columns, no two panels overlapping;
// every unit one of Grafana's (from @grafana/data's own list); every datasource the
// provisioned uid or a datasource variable; every $variable defined; every PromQL
// expression parses (@prometheus-io/lezer-promql, with the variables replaced); histograms
// read as their kind needs: classic buckets aggregated by (le) and heatmapped with format
// "heatmap", a native histogram without le; a heatmap of histograms does not calculate.
//
// Prints one line per problem, then a summary; exits 1 on any problem.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { parser as promql } from "@prometheus-io/lezer-promql";

const here = path.dirname(new URL(import.meta.url).pathname);
const root = path.resolve(here, "../..");
const modules = path.join(here, "node_modules");

// ---- Grafana's units, from the @grafana/data that matches the Grafana release --------------

// valueFormats/categories is the list Grafana's unit picker shows: each format an object
// literal with `id: "..."`. buildFormats() in valueFormats adds the aliases ({ from, to }).
function grafanaUnits() {
  const dir = path.join(modules, "@grafana/data/dist/esm/valueFormats");
  const ids = (file, re) => [...fs.readFileSync(path.join(dir, file), "utf8").matchAll(re)].map((m) => m[1]);
  const units = new Set([...ids("categories.mjs", /\bid: "([^"]+)"/g), ...ids("valueFormats.mjs", /\bfrom: "([^"]+)"/g)]);
  if (units.size < 200) throw new Error(`read only ${units.size} units from @grafana/data: has its layout changed?`);
  return units;
}
// Besides its ids, getValueFormat() reads "KIND:ARGUMENT" units of these kinds (custom units).
// Any other string it shows as a suffix, so a misspelled id still "works": that is what this
// check is for, and so it accepts only the ids and these forms.
const CUSTOM_UNIT = /^(prefix|suffix|si|count|currency|time|bool):/;

// ---- The provisioned data sources ------------------------------------------------------------

// uid -> type of every data source in the provisioning files. No YAML parser: each
// `- name:`-style list item of `datasources:` is read for its own `uid:` and `type:` keys.
function provisioned(dir) {
  const found = new Map();
  for (const file of fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    const items = fs.readFileSync(path.join(dir, file), "utf8").split(/^\s*- /m).slice(1);
    for (const item of items) {
      const key = (k) => item.match(new RegExp(`^\\s*${k}:\\s*["']?([^"'\\s#]+)`, "m"))?.[1];
      if (key("uid")) found.set(key("uid"), key("type"));
    }
  }
  return found;
}
// Data sources that Grafana itself provides, under these uids.
const BUILTIN_DATASOURCES = new Set(["-- Grafana --", "-- Mixed --", "-- Dashboard --", "grafana"]);

// ---- Variables -------------------------------------------------------------------------------

// Grafana's own pattern for a variable: $name, [[name]], [[name:format]], ${name},
// ${name.field}, ${name:format} (variableRegex in public/app/features/variables/utils.ts).
const VARIABLE = /\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}/g;
// Grafana's global variables, those of data links (Grafana's documentation: "Global
// variables", "Data link variables") and __cell_N (fieldDisplay in @grafana/data). A name of
// digits only ($1) is no variable: Grafana leaves it alone, and label_replace() needs it.
const BUILTIN_VARIABLES = new Set([
  "__dashboard", "__from", "__to", "__interval", "__interval_ms", "__name", "__org", "__user",
  "__range", "__range_s", "__range_ms", "__rate_interval", "__rate_interval_ms", "__timezone",
  "__auto", "__all_variables", "__url_time_range", "__url", "__data", "__field", "__series",
  "__value", "__cell", "__timeFilter", "timeFilter",
]);
const builtin = (name) => BUILTIN_VARIABLES.has(name) || /^(\d+|__cell_\d+)$/.test(name);
const variablesIn = (text) => [...String(text).matchAll(VARIABLE)].map((m) => m[1] ?? m[2] ?? m[4]);

// ---- PromQL ----------------------------------------------------------------------------------

// expr with each variable replaced by something of the right kind for where it stands: left
// alone in a string, a duration in [range] or after offset, an identifier elsewhere.
function placeholders(expr) {
  let quote = null, brackets = 0;
  const state = []; // per character: [inside a string, open brackets]
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i];
    state.push([quote !== null, brackets]);
    if (quote) { if (c === "\\") { state.push([true, brackets]); i++; } else if (c === quote) quote = null; }
    else if (c === '"' || c === "'" || c === "`") quote = c;
    else if (c === "[") brackets++;
    else if (c === "]") brackets--;
  }
  return expr.replace(VARIABLE, (match, a, b, c, d, e, f, at) => {
    const [inString, inBrackets] = state[at];
    if (inString) return match;
    if (inBrackets > 0 || /offset\s*-?$/i.test(expr.slice(0, at))) return "5m";
    return `v_${a ?? b ?? d}`;
  });
}
// The first syntax error of expr, as "at column N: ...", or null.
function promqlError(expr) {
  if (!String(expr).trim()) return "an empty expression";
  const text = placeholders(String(expr));
  let at = null;
  promql.parse(text).iterate({ enter: (node) => { if (at === null && node.type.isError) at = node.from; } });
  return at === null ? null : `PromQL syntax error at column ${at + 1}: ${JSON.stringify(text.slice(Math.max(0, at - 25), at + 25))}`;
}
// Histograms, classic and native: a classic histogram is a series per bucket, told apart by
// `le`, which histogram_quantile() reads, so an aggregation of its buckets must keep `le` (sum
// by (le)); a native histogram is one series with all its buckets, and no `le`, so an
// aggregation by le of it means nothing (sum(rate(...)) instead). Problems of expr, as text.
function histogramProblems(expr) {
  const text = String(expr);
  if (!/\bhistogram_(quantile|fraction)\s*\(/.test(text)) return [];
  const classic = /_bucket\b/.test(text);
  const aggregated = /\b(sum|avg|min|max)\b/.test(text);
  const byLe = /\bby\s*\([^)]*\ble\b[^)]*\)/.test(text);
  if (classic && aggregated && !byLe) return ["a quantile of classic buckets (_bucket) aggregated without by (le): every bucket summed into one"];
  if (!classic && byLe) return ["a quantile of a native histogram (no _bucket) aggregated by (le): a native histogram has no le; sum(rate(...)) without it"];
  return [];
}
// A Prometheus variable query is not PromQL itself: the forms of Grafana's Prometheus data
// source (the regexes of its migrations/variableMigration.ts), each with its PromQL, if any.
function variableQueryPromql(query) {
  if (/^label_names\(\)\s*$/.test(query)) return null;
  const forms = [/^label_names\((.+)\)\s*$/, /^label_values\((?:(.+),\s*)?[a-zA-Z_$][a-zA-Z0-9_]*\)\s*$/, /^query_result\((.+)\)\s*$/];
  for (const form of forms) {
    const match = query.match(form);
    if (match) return match[1] ?? null;
  }
  if (/^metrics\((.+)\)\s*$/.test(query)) return null; // a regex, not PromQL
  return query; // anything else Grafana runs as a series query
}

// ---- The TypeScript ---------------------------------------------------------------------------

// Panel types whose directory in @grafana/schema is not their id without dashes.
const PLUGIN_DIRS = { annolist: "annotationslist", dashlist: "dashboardlist" };
const schemaExports = JSON.parse(fs.readFileSync(path.join(modules, "@grafana/schema/package.json"), "utf8")).exports;

// The generated module of a panel type's options: { name, specifier, options, fieldConfig }.
function pluginTypes(type) {
  const dir = PLUGIN_DIRS[type] ?? type.replace(/-/g, "").toLowerCase();
  const key = Object.keys(schemaExports).find((k) => k.includes(`/raw/composable/${dir}/panelcfg/x/`));
  if (!key) return null;
  const types = fs.readFileSync(path.join(modules, "@grafana/schema", schemaExports[key].types), "utf8");
  return {
    name: `plugin_${dir}`,
    specifier: `@grafana/schema${key.slice(1)}`,
    options: /^export interface Options\b/m.test(types),
    fieldConfig: /^export interface FieldConfig\b/m.test(types),
  };
}

// A reference to another generated constant, written as its name inside a literal.
class Ref { constructor(name) { this.name = name; } }

// A generated source file that remembers, for each of its lines, which panel and JSON path
// it came from.
class Source {
  lines = [];
  origins = [];
  add(text, origin) { this.lines.push(text); this.origins.push(origin); }
  // `const NAME: TYPE = <value as a literal, a key a line>;`, the value at path of panel.
  constant(name, type, value, panel, path) {
    this.literal(value, panel, path, "", `const ${name}: ${type} = `, ";");
  }
  literal(value, panel, at, indent, head, tail) {
    const origin = { panel, path: at };
    const entries = value instanceof Ref || value === null || typeof value !== "object" ? null
      : Array.isArray(value) ? value.map((v, i) => [`${at}[${i}]`, "", v])
      : Object.entries(value).map(([k, v]) => [at ? `${at}.${k}` : k, `${/^[A-Za-z_$][\w$]*$/.test(k) ? k : JSON.stringify(k)}: `, v]);
    if (!entries?.length) {
      const text = value instanceof Ref ? value.name : JSON.stringify(value);
      this.add(`${indent}${head}${text}${tail}`, origin);
      return;
    }
    const [open, close] = Array.isArray(value) ? ["[", "]"] : ["{", "}"];
    this.add(`${indent}${head}${open}`, origin);
    for (const [where, key, v] of entries) this.literal(v, panel, where, `${indent}  `, key, ",");
    this.add(`${indent}${close}${tail}`, origin);
  }
}

// The TypeScript of one dashboard; problems found on the way are pushed to problems.
function typescript(dashboard, panels, problems) {
  const source = new Source();
  const imports = new Map();
  const refs = new Map(); // panel -> Ref to its constant
  panels.forEach((panel, i) => refs.set(panel, new Ref(`panel${i}`)));
  // Rows last: a collapsed row names the constants of its panels.
  const rowsLast = [...panels.entries()].sort(([, a], [, b]) => (a.type === "row") - (b.type === "row"));
  for (const [i, panel] of rowsLast) {
    const name = `panel${i}`;
    if (panel.type === "row") {
      const nested = (panel.panels ?? []).map((p) => refs.get(p));
      source.constant(name, "Json<RowPanel>", { ...panel, panels: nested }, panel, "");
      continue;
    }
    const plugin = pluginTypes(String(panel.type));
    if (!plugin) problems.push([panel, "type", `@grafana/schema has no types for the panel type '${panel.type}'`]);
    else imports.set(plugin.name, plugin.specifier);
    const copy = { ...panel };
    if (plugin?.options && panel.options !== undefined) {
      source.constant(`${name}_options`, `Partly<${plugin.name}.Options>`, panel.options, panel, "options");
      copy.options = new Ref(`${name}_options`);
    }
    const config = panel.fieldConfig;
    if (config && typeof config === "object") {
      const custom = plugin?.fieldConfig ? `Partly<${plugin.name}.FieldConfig>` : null;
      const defaults = { ...config.defaults };
      const customIds = (config.overrides ?? []).flatMap((o) => o?.properties ?? []).filter((p) => String(p?.id).startsWith("custom."));
      if (plugin && !custom && (Object.keys(defaults.custom ?? {}).length || customIds.length)) {
        problems.push([panel, "fieldConfig", `custom field config, but the ${panel.type} plugin has none (no FieldConfig in its types)`]);
      }
      if (defaults.custom !== undefined && custom) {
        source.constant(`${name}_custom`, custom, defaults.custom, panel, "fieldConfig.defaults.custom");
        defaults.custom = new Ref(`${name}_custom`);
      }
      source.constant(`${name}_defaults`, "StandardFieldConfig", defaults, panel, "fieldConfig.defaults");
      // Each override property's value, typed by its id: custom.a.b is custom's a's b.
      const overrides = (config.overrides ?? []).map((override, j) => ({
        ...override,
        properties: (override?.properties ?? []).map((property, k) => {
          const id = String(property?.id);
          const [base, keys] = id.startsWith("custom.") ? [custom, id.split(".").slice(1)] : ["StandardFieldConfig", [id]];
          const type = base ? keys.reduce((t, key) => `NonNullable<${t}>[${JSON.stringify(key)}]`, base) : "unknown";
          const constant = `${name}_override${j}_${k}`;
          source.constant(constant, type, property?.value, panel, `fieldConfig.overrides[${j}].properties[${k}] (${id})`);
          return { ...property, value: new Ref(constant) };
        }),
      }));
      copy.fieldConfig = { ...config, defaults: new Ref(`${name}_defaults`), overrides };
    }
    source.constant(name, "GrafanaPanel", copy, panel, "");
  }
  const top = panels.filter((p) => dashboard.panels?.includes(p));
  source.constant("dashboard", "GrafanaDashboard", { ...dashboard, panels: top.map((p) => refs.get(p)) }, null, "");
  const header = [
    "// Generated by tests/grafana/check.mjs: the dashboard, its panels, their options.",
    'import type { RowPanel } from "@grafana/schema";',
    'import type { GrafanaDashboard, GrafanaPanel, Json, Partly, StandardFieldConfig } from "../types";',
    ...[...imports].sort().map(([name, specifier]) => `import type * as ${name} from "${specifier}";`),
    "",
  ];
  source.lines.unshift(...header);
  source.origins.unshift(...header.map(() => ({ panel: null, path: "" })));
  source.lines.push("export {};", "");
  return source;
}

// Runs tsc on the generated files: [{ file, line, message }] of its errors.
function compile(files) {
  const dir = fs.mkdtempSync(path.join(here, ".tsc-"));
  try {
    const names = files.map((source, i) => {
      const name = `dashboard${i}.ts`;
      fs.writeFileSync(path.join(dir, name), source.lines.join("\n"));
      return name;
    });
    const config = { compilerOptions: { strict: true, noEmit: true, module: "preserve", moduleResolution: "bundler", target: "es2022", types: [], skipLibCheck: true }, files: names };
    fs.writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify(config));
    let output = "";
    try {
      execFileSync(process.execPath, [path.join(modules, "typescript/bin/tsc"), "-p", dir, "--pretty", "false"], { encoding: "utf8", stdio: "pipe" });
    } catch (error) {
      output = `${error.stdout ?? ""}${error.stderr ?? ""}`;
      if (!output.trim()) throw error;
    }
    const errors = [];
    for (const line of output.split("\n")) {
      const match = line.match(/^(?:.*[\\/])?dashboard(\d+)\.ts\((\d+),\d+\): error (TS\d+): (.*)$/);
      if (match) errors.push({ file: Number(match[1]), line: Number(match[2]), message: `${match[4]} (${match[3]})` });
      else if (line.trim() && !line.startsWith(" ")) errors.push({ file: null, line: 0, message: `tsc: ${line}` });
    }
    return errors;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
// A compiler message without the long types it spells out.
const shorten = (message) => message.replace(/type '[^']{50,}'/g, "the expected type");

// ---- The lint ----------------------------------------------------------------------------------

// The fields of a Prometheus query as a dashboard stores them: DataQuery's (@grafana/schema's
// common types) and the Prometheus plugin's own (its dataquery.gen.ts, which @grafana/schema does
// not ship). Targets are otherwise untyped in the dashboard schema, so a misspelled one would
// pass the type check.
const PROMETHEUS_QUERY_KEYS = new Set([
  "refId", "hide", "key", "queryType", "datasource",
  "expr", "editorMode", "exemplar", "format", "instant", "interval", "intervalFactor",
  "legendFormat", "range", "scope", "adhocFilters", "groupByKeys",
]);

function lint(dashboard, panels, datasources, units, problems) {
  const variables = new Map((dashboard.templating?.list ?? []).map((v) => [v?.name, v]));
  const report = (panel, where, message) => { problems.push([panel, where, message]); };

  const checkVariables = (panel, where, text) => {
    for (const name of variablesIn(text)) {
      if (!variables.has(name) && !builtin(name)) {
        report(panel, where, `$${name} is not a variable of this dashboard (templating.list) nor one of Grafana's`);
      }
    }
  };
  // The type of the data source a reference names, or undefined after reporting it.
  const checkDatasource = (panel, where, ref) => {
    if (ref === undefined || ref === null) return undefined; // the default data source
    if (typeof ref !== "object") return report(panel, where, `a data source by name (${JSON.stringify(ref)}): use { "type", "uid" }`);
    const uid = String(ref.uid);
    const variable = uid.match(/^\$\{?(\w+)\}?$/)?.[1];
    if (variable) {
      const v = variables.get(variable);
      if (v?.type !== "datasource") return report(panel, where, `data source ${uid}: no datasource variable ${variable} in templating`);
      return v.query;
    }
    if (BUILTIN_DATASOURCES.has(uid)) return ref.type;
    if (!datasources.has(uid)) return report(panel, where, `data source uid ${JSON.stringify(uid)} is not provisioned (provisioned: ${[...datasources.keys()].join(", ")})`);
    if (ref.type !== undefined && ref.type !== datasources.get(uid)) return report(panel, where, `data source ${uid} is of type ${datasources.get(uid)}, not ${ref.type}`);
    return datasources.get(uid);
  };
  const checkUnit = (panel, where, unit) => {
    if (unit !== undefined && !(typeof unit === "string" && (units.has(unit) || CUSTOM_UNIT.test(unit)))) {
      report(panel, where, `${JSON.stringify(unit)} is not a Grafana unit id (nor prefix:, suffix:, si:, count:, currency:, time:, bool:)`);
    }
  };
  const defaultType = [...datasources.values()][0]; // of the first provisioned: the stack has one

  // Templating.
  for (const [i, v] of (dashboard.templating?.list ?? []).entries()) {
    const where = `templating.list[${i}] (${v?.name})`;
    const type = checkDatasource(null, `${where}.datasource`, v?.datasource);
    const query = typeof v?.query === "object" ? v.query?.query : v?.query;
    for (const [key, text] of [["query", query], ["definition", v?.definition]]) {
      if (typeof text !== "string") continue;
      checkVariables(null, `${where}.${key}`, text);
      const expr = v.type === "query" && (type ?? defaultType) === "prometheus" ? variableQueryPromql(text.trim()) : null;
      const error = expr === null ? null : promqlError(expr);
      if (error) report(null, `${where}.${key}`, error);
    }
    if (typeof query === "string" && typeof v.definition === "string" && query !== v.definition) {
      report(null, where, "definition (what Grafana shows) differs from query (what it runs)");
    }
  }
  for (const [i, a] of (dashboard.annotations?.list ?? []).entries()) checkDatasource(null, `annotations.list[${i}].datasource`, a?.datasource);
  for (const [i, link] of (dashboard.links ?? []).entries()) {
    for (const key of ["title", "url", "tooltip"]) checkVariables(null, `links[${i}].${key}`, link?.[key] ?? "");
  }

  // Panels.
  const ids = new Map();
  for (const panel of panels) {
    if (panel.id !== undefined) {
      if (ids.has(panel.id)) report(panel, "id", `id ${panel.id} is also the id of panel '${ids.get(panel.id).title}'`);
      else ids.set(panel.id, panel);
    }
    const g = panel.gridPos;
    if (!g || ![g.x, g.y, g.w, g.h].every(Number.isInteger)) report(panel, "gridPos", "no gridPos with integer x, y, w, h");
    else if (g.x < 0 || g.y < 0 || g.w < 1 || g.h < 1 || g.x + g.w > 24) report(panel, "gridPos", `x ${g.x} + w ${g.w} outside the 24 columns (or a negative or empty rectangle)`);
    for (const key of ["title", "description", "repeat"]) checkVariables(panel, key, panel[key] ?? "");
    for (const [i, link] of (panel.links ?? []).entries()) {
      for (const key of ["title", "url"]) checkVariables(panel, `links[${i}].${key}`, link?.[key] ?? "");
    }
    const panelType = checkDatasource(panel, "datasource", panel.datasource);
    const refIds = new Set();
    for (const [i, target] of (panel.targets ?? []).entries()) {
      const where = `targets[${i}] (${target?.refId})`;
      if (!target?.refId || refIds.has(target.refId)) report(panel, `targets[${i}].refId`, "missing, or the refId of another target: each query needs its own");
      refIds.add(target?.refId);
      const type = checkDatasource(panel, `${where}.datasource`, target?.datasource) ?? panelType ?? defaultType;
      for (const key of ["expr", "legendFormat", "interval"]) checkVariables(panel, `${where}.${key}`, target?.[key] ?? "");
      const error = type === "prometheus" && target?.expr !== undefined ? promqlError(target.expr) : null;
      if (error) report(panel, `${where}.expr`, error);
      if (type === "prometheus") for (const problem of histogramProblems(target?.expr ?? "")) report(panel, `${where}.expr`, problem);
      // A heatmap of a classic histogram needs Grafana to turn cumulative buckets into cells
      // (format heatmap); a native histogram comes as cells already, with no le to name.
      if (panel.type === "heatmap" && type === "prometheus") {
        const classic = /_bucket\b/.test(target?.expr ?? "");
        if (classic && target?.format !== "heatmap") report(panel, `${where}.format`, `${JSON.stringify(target?.format)}: a heatmap of classic buckets needs format "heatmap"`);
        if (!classic && /\{\{\s*le\s*\}\}/.test(target?.legendFormat ?? "")) report(panel, `${where}.legendFormat`, "{{le}}: a native histogram has no le");
      }
      if (type === "prometheus") {
        for (const key of Object.keys(target ?? {}).filter((k) => !PROMETHEUS_QUERY_KEYS.has(k))) {
          report(panel, `${where}.${key}`, "not a field of a Prometheus query");
        }
        for (const key of ["exemplar", "instant", "range"]) {
          if (target?.[key] !== undefined && typeof target[key] !== "boolean") report(panel, `${where}.${key}`, `${JSON.stringify(target[key])} is not true or false`);
        }
      }
    }
    const config = panel.fieldConfig ?? {};
    checkUnit(panel, "fieldConfig.defaults.unit", config.defaults?.unit);
    for (const link of config.defaults?.links ?? []) checkVariables(panel, "fieldConfig.defaults.links", `${link?.title} ${link?.url}`);
    for (const [j, override] of (config.overrides ?? []).entries()) {
      for (const [k, property] of (override?.properties ?? []).entries()) {
        if (property?.id === "unit") checkUnit(panel, `fieldConfig.overrides[${j}].properties[${k}] (unit)`, property.value);
      }
    }
    if (panel.type === "heatmap") {
      // Histograms come bucketed: a heatmap that calculates buckets again from them shows
      // buckets of buckets.
      if (panel.options?.calculate !== false) report(panel, "options.calculate", `${JSON.stringify(panel.options?.calculate)}: a histogram's buckets are already there; set calculate to false`);
      checkUnit(panel, "options.yAxis.unit", panel.options?.yAxis?.unit);
      checkUnit(panel, "options.cellValues.unit", panel.options?.cellValues?.unit);
      // In a heatmap fieldConfig's unit is the cells' (counts or rates per bucket), yAxis's
      // the buckets' (seconds, bytes): one unit for both is a mix-up.
      if (config.defaults?.unit !== undefined && config.defaults.unit === panel.options?.yAxis?.unit) {
        report(panel, "fieldConfig.defaults.unit", `${JSON.stringify(config.defaults.unit)}, as options.yAxis.unit: in a heatmap it is the unit of the cells (e.g. reqps for rates of histogram buckets), yAxis.unit that of the buckets`);
      }
    }
  }
  // No two panels of the dashboard (rows included) on the same cell. The panels of a collapsed
  // row are not on the grid until it opens: they are checked against each other only.
  const groups = [dashboard.panels ?? [], ...(dashboard.panels ?? []).filter((p) => p?.type === "row").map((row) => row.panels ?? [])];
  for (const group of groups) {
    const placed = group.filter((p) => p?.gridPos && [p.gridPos.x, p.gridPos.y, p.gridPos.w, p.gridPos.h].every(Number.isInteger));
    placed.forEach((a, i) => placed.slice(0, i).forEach((b) => {
      const [p, q] = [a.gridPos, b.gridPos];
      if (p.x < q.x + q.w && q.x < p.x + p.w && p.y < q.y + q.h && q.y < p.y + p.h) report(a, "gridPos", `overlaps panel '${b.title}'`);
    }));
  }
}

// ---- Main --------------------------------------------------------------------------------------

const args = process.argv.slice(2);
let datasourceDir = path.join(root, "grafana/provisioning/datasources");
if (args[0] === "--datasources") datasourceDir = path.resolve(args.splice(0, 2)[1]);
const files = args.length ? args : fs.readdirSync(path.join(root, "grafana/dashboards"))
  .filter((f) => f.endsWith(".json")).sort().map((f) => path.join(root, "grafana/dashboards", f));

const units = grafanaUnits();
const datasources = provisioned(datasourceDir);
const describe = (panel, where, message) =>
  `${panel ? `panel '${panel.title ?? `id ${panel.id}`}': ` : ""}${where ? `${where}: ` : ""}${message}`;

// Per dashboard: its name, its problems ([panel or null, where, message]) and its TypeScript.
const checked = files.map((file) => {
  const name = path.basename(file);
  let dashboard;
  try {
    dashboard = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (error) {
    return { name, panels: [], problems: [[null, "", error.message]] };
  }
  // Every panel, those inside rows after their row.
  const panels = (dashboard.panels ?? []).flatMap((p) => [p, ...(p?.type === "row" ? p.panels ?? [] : [])])
    .filter((p) => p && typeof p === "object");
  const problems = [];
  lint(dashboard, panels, datasources, units, problems);
  return { name, panels, problems, source: typescript(dashboard, panels, problems) };
});
const compiled = checked.filter((c) => c.source);
for (const error of compiled.length ? compile(compiled.map((c) => c.source)) : []) {
  const into = error.file === null ? checked[0] : compiled[error.file];
  const origin = into.source?.origins[error.line - 1] ?? { panel: null, path: "" };
  into.problems.push([origin.panel, origin.path, shorten(error.message)]);
}

let problems = 0;
for (const { name, problems: found } of checked) {
  for (const [panel, where, message] of found) console.log(`${name}: ${describe(panel, where, message)}`);
  problems += found.length;
}
const count = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const panels = checked.reduce((n, c) => n + c.panels.length, 0);
console.log(`check-grafana: ${count(files.length, "dashboard")}, ${count(panels, "panel")} ` +
  `(${units.size} Grafana units; data sources ${[...datasources.keys()].join(", ")}): ${count(problems, "problem")}`);
process.exit(problems ? 1 : 0);
