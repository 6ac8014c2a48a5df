// The types that the TypeScript which check.mjs generates gives each dashboard's literals:
// Grafana's own generated types (@grafana/schema) read as JSON (Json, Partly), corrected
// narrowly where they are stricter or looser than what Grafana reads; each correction says why.
import type { Dashboard, DataTransformerConfig, FieldConfig, Panel, VariableModel } from "@grafana/schema";
// Not exported where an import could name them: @grafana/data's own ids, read from its files.
import type { FieldMatcherID, MatcherID } from "./node_modules/@grafana/data/dist/types/transformations/matchers/ids";
import type { DataTransformerID } from "./node_modules/@grafana/data/dist/types/transformations/transformers/ids";

// Grafana's generated types declare enums (`enum LegendDisplayMode { List = "list", ... }`,
// `enum VariableRefresh { onDashboardLoad = 1, ... }`), and TypeScript lets no plain string or
// number stand for an enum member, though a plain value is exactly what the dashboard JSON
// stores and Grafana reads. Json<T> is T with every enum replaced by the union of its values:
// "list" is accepted, "lisst" is not, 7 is no VariableRefresh. Nothing else of T changes:
// object types stay closed, so a key that T lacks is an error in an object literal.
type IsAny<T> = 0 extends 1 & T ? true : false;
type Value<E> = E extends string
  ? `${E}`
  : E extends number
    ? `${E}` extends `${infer N extends number}` ? N : never
    : E;
export type Json<T> = IsAny<T> extends true
  ? T
  : T extends string | number
    ? Value<T>
    : T extends boolean | null | undefined
      ? T
      : T extends readonly (infer U)[]
        ? Json<U>[]
        : T extends object
          ? { [K in keyof T]: Json<T[K]> }
          : T;

// A panel plugin's options and its custom field config, as a dashboard may store them: Json<T>
// with every property optional, at every depth. The types mark some as required (the heatmap's
// color.exponent, exemplars, showValue ...), but Grafana fills whatever a panel leaves out
// from the plugin's defaults when it loads the panel, so no option must be in the JSON.
export type Partly<T> = IsAny<T> extends true
  ? T
  : T extends string | number
    ? Value<T>
    : T extends boolean | null | undefined
      ? T
      : T extends readonly (infer U)[]
        ? Partly<U>[]
        : T extends object
          ? { [K in keyof T]?: Partly<T[K]> }
          : T;

// fieldConfig.defaults, and the standard properties an override sets (unit, min, color ...).
// The dashboard schema's FieldConfig lacks one standard option that Grafana's field editor
// writes: fieldMinMax ("Field min/max": FieldConfigProperty.FieldMinMax in @grafana/data, and
// in the schema's own dashboard v2 FieldConfig). It is added here, and nothing else.
export type StandardFieldConfig = Json<FieldConfig> & { fieldMinMax?: boolean };

// The dashboard. The schema's VariableModel lacks `definition`, which Grafana writes for every
// query variable (QueryVariableModel in @grafana/data: the query as the editor shows it); it
// is added to the variables, and nothing else.
export type GrafanaDashboard = Json<Omit<Dashboard, "templating">> & {
  templating?: { list?: Json<VariableModel & { definition?: string }>[] };
};

// A panel. The schema types an override's matcher id and a transformation's id as any string;
// here they are the ids of Grafana's registries (@grafana/data's FieldMatcherID, MatcherID
// and DataTransformerID), so that "byNmae" or "organise" fails. Nothing else changes.
export type GrafanaPanel = Json<Omit<Panel, "fieldConfig" | "transformations">> & {
  fieldConfig?: {
    defaults: StandardFieldConfig;
    overrides: {
      matcher: { id: `${FieldMatcherID | MatcherID}`; options?: unknown };
      properties: { id: string; value?: unknown }[];
    }[];
  };
  transformations?: (Json<DataTransformerConfig> & { id: `${DataTransformerID}` })[];
};
