/**
 * SPIRE-compatible configuration files: HCL v1 and its JSON form parsed into one generic tree with
 * positions, a declarative schema that reports every problem with file, line and a "did you mean"
 * suggestion, a plugin registry for SPIRE's `plugins { … }` section, Go durations and `-expandEnv`.
 * Pure: no I/O (callers read files). Errors: `ERR_CONFIG_INVALID`, `ERR_DURATION_INVALID`.
 */
export {
  formatDuration,
  formatDurationNanos,
  parseDuration,
  parseDurationNanos,
} from './duration.js';
export { type Environment, expandEnv } from './expand-env.js';
export { type ParseOptions, parseHcl, printHcl, quoteHcl } from './hcl.js';
export { parseHclJson } from './hcl-json.js';
export {
  type DecodedPlugins,
  definePlugin,
  type PluginConfig,
  type PluginDefinition,
  type PluginRef,
  PluginRegistry,
  type PluginRegistryOptions,
  type PluginsFieldOptions,
  type PluginTypeSpec,
  pluginsField,
} from './plugin-registry.js';
export {
  type AnyField,
  type BlockCheckHelpers,
  type BlockOptions,
  type BlockValue,
  block,
  boolean,
  type ConfigProblem,
  DecodeContext,
  type DocumentSchema,
  type DurationOptions,
  decodeBody,
  decodeDocument,
  duration,
  type Field,
  type FieldKind,
  type Fields,
  type FieldValue,
  formatProblem,
  type IntegerOptions,
  integer,
  joinPath,
  MAX_REPORTED_PROBLEMS,
  optionalBlock,
  parseGoInt,
  problemsError,
  type StringListOptions,
  type StringOptions,
  singleBody,
  string,
  stringList,
  suggest,
} from './schema.js';
export {
  type ConfigBool,
  type ConfigEntry,
  type ConfigFormat,
  type ConfigList,
  type ConfigNumber,
  type ConfigObject,
  type ConfigString,
  type ConfigValue,
  configError,
  describeKind,
  isObjectLike,
  MAX_CONFIG_DEPTH,
  MAX_CONFIG_SIZE,
  objectsOf,
  type PlainEntry,
  type PlainObject,
  type PlainValue,
  type Position,
  toPlain,
} from './tree.js';
