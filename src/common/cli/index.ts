/**
 * Building blocks shared by the `spire-server` and `spire-agent` command lines, which must
 * accept and print exactly what SPIRE's Go CLIs do: a Go-`flag`-compatible parser, a
 * mitchellh/cli-compatible command tree, SPIRE's `-output` flag and Go's text formats (`%q`,
 * `encoding/json`, `protojson`, `time.Time.String()`, `time.Duration`).
 */
export {
  type CliApp,
  type CliCommand,
  type CommandSpec,
  RUN_RESULT_HELP,
  runCliApp,
} from './command-tree.js';
export {
  compareBytes,
  type Flag,
  type FlagErrorCode,
  FlagSet,
  type FlagValue,
  goSprintStrings,
  isFlagError,
} from './flag-set.js';
export { goJsonMarshal, type JsonValue, protoToGoJson, removeNulls } from './go-json.js';
export { goQuote } from './go-quote.js';
export { formatGoTime, formatRfc3339Utc, type GoZone, localZone, UTC_ZONE } from './go-time.js';
export {
  formatGoDuration,
  type GoParseFailure,
  type GoParseResult,
  parseGoBool,
  parseGoDuration,
  parseGoInt,
} from './go-value.js';
export {
  type CliIo,
  type CliWriter,
  MAX_CLI_INPUT_BYTES,
  readAllInput,
  StringWriter,
} from './io.js';
export { OUTPUT_FLAG_USAGE, type OutputFormat, outputFlag } from './output-flag.js';
export { describeCliError, formatRpcError, grpcCodeName } from './rpc-error.js';
